"""A model laid out in hardware: every layer with its MAC lanes P and its packed ROMs.

The first step of code generation; rendering and the estimates read a list of
:class:`LayerPlan`.  No torch, no templates here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.ir import Conv2dLayer, DenseLayer, MaxPool2dLayer, Model
from ..core.names import check_identifier
from .kinds import handler
from .rom import LayerRoms

__all__ = ["LayerPlan", "plan_layers", "default_lanes"]


def default_lanes(k: int) -> int:
    """Default P: the largest divisor of k that is at most 8 (no padding, <= 8 DSPs a layer)."""
    return max(p for p in range(1, min(k, 8) + 1) if k % p == 0)


@dataclass(frozen=True)
class LayerPlan:
    """One layer with its hardware parameters (P lanes) and packed ROMs.

    A max-pooling layer has no MAC core: ``lanes`` is 0 and ``roms`` is ``None``."""

    layer: DenseLayer | Conv2dLayer | MaxPool2dLayer
    lanes: int
    roms: LayerRoms | None

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def has_core(self) -> bool:
        return self.roms is not None

    @property
    def steps(self) -> int:
        """ROM words (and MAC cycles) per output neuron or filter."""
        return self.roms.steps if self.roms else 0

    @property
    def depth(self) -> int:
        """Core issue cycles per activation of the core: ``rows * steps``."""
        return self.layer.rows * self.roms.steps if self.roms else 0


def check_buildable(model: Model) -> None:
    """A :class:`ValueError` naming the first layer code generation cannot build: a layer kind
    without a handler (add, global average pooling) or a layer that does not read the one
    before it (a residual graph).  Those models train and run in the integer reference."""
    from .kinds import HANDLERS

    prev = "input"
    for layer, srcs in zip(model.layers, model.inputs):
        if type(layer) not in HANDLERS or srcs != (prev,):
            what = f"a layer of kind {layer.kind!r}" if type(layer) not in HANDLERS else f"it reads {', '.join(map(repr, srcs))}"
            raise ValueError(f"layer {layer.name!r}: {what}; the hardware generator builds chains of "
                             f"{', '.join(h.kind for h in HANDLERS.values())} layers only (residual graphs train "
                             "and run in the integer reference, kofn.core.reference, but have no RTL yet)")
        prev = layer.name


def plan_layers(model: Model, lanes: Sequence[int | None] | None = None) -> list[LayerPlan]:
    """Pair every layer with its lane count (``None``: :func:`default_lanes`, or a bank layer's
    banks) and pack its ROMs.

    Pooling layers take ``None`` (they have no lanes)."""
    check_buildable(model)
    lanes = list(lanes) if lanes is not None else [None] * len(model.layers)
    if len(lanes) != len(model.layers):
        raise ValueError(f"{len(lanes)} lane counts given for {len(model.layers)} layers")
    plans = []
    for layer, p in zip(model.layers, lanes):
        check_identifier(layer.name, "layer name")
        h = handler(layer)
        if not h.has_core:
            if p not in (None, 0):
                raise ValueError(f"layer {layer.name!r}: a {h.kind} layer has no MAC lanes (got {p})")
            plans.append(LayerPlan(layer=layer, lanes=0, roms=None))
            continue
        if p is None:  # a bank layer's lanes are its banks
            banks = getattr(layer, "banks", 1)
            p = banks if banks > 1 else default_lanes(h.entries_per_row(layer))
        plans.append(LayerPlan(layer=layer, lanes=p, roms=h.pack(layer, p)))
    return plans
