"""Automatic folding: each ``lanes = "auto"`` layer's MAC lanes P, chosen to balance the
dataflow stages (the way FINN folds by hand).

A stage's period is its busy cycles per inference (:meth:`Handler.df_period`); the dataflow
II is the slowest stage's period plus a few hand-off cycles.  Two goals:

* ``target_ii``: every auto layer gets the fewest lanes whose period is at most the target;
* ``max_dsp``: the lowest target whose auto layers, with the hand-set ones, use at most this
  many multipliers (lanes), then the fewest lanes for it.

Only lane counts that change a layer's steps per row are worth trying, so the search is over
each layer's distinct periods.  A ``bank`` layer's P is its banks: only a P dividing its k and
its n is valid, and it is fixed before training (:func:`resolve_bank_lanes` folds the config's
layer specs the same way), so on the trained model it has one option.  No torch, no templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.ir import Model
from ..core.rules import bank_lanes
from .kinds import handler
from .plan import default_lanes

__all__ = ["Folding", "fold", "resolve_bank_lanes", "stream_values"]


@dataclass(frozen=True)
class Folding:
    """The chosen lanes per layer (``None`` for pools), each MAC layer's period, and the
    binding (slowest) layer."""

    lanes: tuple[int | None, ...]
    periods: tuple[tuple[str, int], ...]
    binding: str

    def describe(self) -> str:
        parts = [f"{name} P={p} ({c:,} cycles)" for (name, c), p in zip(self.periods, [x for x in self.lanes if x])]
        return "folding: " + ", ".join(parts) + f"; binding stage: {self.binding}"


def _best(pairs) -> list[tuple[int, int]]:
    """``(period, lanes)`` pairs reduced to the fewest lanes per period, by period."""
    best: dict[int, int] = {}
    for c, p in pairs:
        best[c] = min(p, best.get(c, p))
    return sorted(best.items())


def _options(layer) -> list[tuple[int, int]]:
    """``(period, lanes)`` for every lane count, keeping the fewest lanes per period (a
    banked layer: its banks only)."""
    h = handler(layer)
    banks = getattr(layer, "banks", 1)
    ps = [banks] if banks > 1 else range(1, h.entries_per_row(layer) + 1)
    return _best((h.df_period(layer, p), p) for p in ps)


def _fewest(opts: list[tuple[int, int]], target: int) -> int:
    """The fewest lanes whose period fits ``target`` (all lanes when none does)."""
    fits = [p for c, p in opts if c <= target]
    return min(fits) if fits else max(p for _, p in opts)


def _search(options: dict[int, list[tuple[int, int]]], fixed: int, target_ii: int, max_dsp: int) -> dict[int, int]:
    """Lanes of every auto layer (``options``: index -> its ``(period, lanes)``): the fewest fitting
    ``target_ii``, or under ``max_dsp`` (with ``fixed`` hand-set lanes) the lowest II's."""
    if options and max_dsp:
        targets = sorted({c for opts in options.values() for c, _ in opts})
        target_ii = 0
        for t in targets:  # ascending: the first that fits the budget is the lowest II
            if fixed + sum(_fewest(opts, t) for opts in options.values()) <= max_dsp:
                target_ii = t
                break
        if not target_ii:
            least = fixed + sum(min(p for _, p in opts) for opts in options.values())
            raise ValueError(f"hw.max_dsp = {max_dsp} multipliers cannot hold the design: it needs at least {least} "
                             f"(the fewest lanes of every auto layer plus the hand-set ones)")
    return {i: _fewest(opts, target_ii) for i, opts in options.items()}


def _given(layer, lanes: int | None) -> int:
    """The lanes a MAC layer that is not folded gets: its own, or the default rule's (a bank
    layer's banks, else :func:`~kofn.codegen.plan.default_lanes` of its entries per row)."""
    if lanes is not None:
        return lanes
    return layer.banks if getattr(layer, "banks", 1) > 1 else default_lanes(handler(layer).entries_per_row(layer))


def fold(model: Model, lanes: Sequence[int | str | None], target_ii: int = 0, max_dsp: int = 0) -> Folding:
    """Resolve ``"auto"`` entries of ``lanes`` (one per layer; ints and ``None`` stay)."""
    lanes = list(lanes)
    if len(lanes) != len(model.layers):
        raise ValueError(f"{len(lanes)} lane counts given for {len(model.layers)} layers")
    auto = [i for i, p in enumerate(lanes) if p == "auto"]
    if auto and not (target_ii or max_dsp):
        raise ValueError('lanes = "auto" needs a target II or a multiplier budget (hw.target_ii, hw.max_dsp)')
    for i in auto:
        if not handler(model.layers[i]).has_core:
            raise ValueError(f"layer {model.layers[i].name!r}: a pooling layer has no lanes to fold")
    # the hand-set layers' multipliers, those the default rule gives (lanes None) included, as
    # resolve_bank_lanes counts them: a max_dsp budget holds the whole design
    fixed = sum(_given(L, p) for i, (L, p) in enumerate(zip(model.layers, lanes))
                if i not in auto and handler(L).has_core)
    for i, p in _search({i: _options(model.layers[i]) for i in auto}, fixed, target_ii, max_dsp).items():
        lanes[i] = p
    periods = [(L.name, handler(L).df_period(L, _given(L, p))) for L, p in zip(model.layers, lanes)
               if handler(L).has_core]
    binding = max(periods, key=lambda x: x[1])[0]
    return Folding(tuple(lanes), tuple(periods), binding)


def stream_values(n_values: int, period: int) -> int:
    """Values per AXI beat for ``n_values`` per inference: the smallest power of two whose
    beats take at most half of ``period`` (the slowest stage's), so the stream never binds;
    ``n_values`` when one beat holds them all."""
    v = 1
    while -(-n_values // v) > max(1, period // 2) and v < n_values:
        v *= 2
    return min(v, n_values)  # one beat holds the whole frame: no lane beyond it


def _spec_options(spec, shape: tuple) -> list[tuple[int, int]]:
    """:func:`_options` from a layer spec and its input shape, before training (a ``bank``
    layer: the P dividing its k and n).  The periods are the handlers' ``df_period``, asked of
    a stand-in with the fields it reads."""
    from types import SimpleNamespace

    from ..core.ir import Conv2dLayer, DenseLayer
    from ..core.layers import ConvSpec
    from .kinds import HANDLERS

    n, row = spec.fan_in(shape), spec.row_entries(shape)
    if isinstance(spec, ConvSpec):
        h = HANDLERS[Conv2dLayer]
        stand_in = SimpleNamespace(out_shape=spec.out_shape(shape), k_eff=row, kernel=spec.kernel)
    else:
        h = HANDLERS[DenseLayer]
        stand_in = SimpleNamespace(rows=spec.k if spec.granularity == "feature_map" else spec.out_features, k=row)
    ps = bank_lanes(spec.k, n) if spec.granularity == "bank" else range(1, row + 1)
    return _best((h.df_period(stand_in, p), p) for p in ps)


def resolve_bank_lanes(layers: Sequence, input_shape: tuple, target_ii: int = 0, max_dsp: int = 0) -> tuple:
    """The layer specs with every ``bank`` layer's ``lanes = "auto"`` replaced by the P the
    folding picks (training needs it: the banks are the lanes).  All auto layers are folded
    together from the specs, as :func:`fold` does on the trained model; only the bank layers'
    choices are written (the others stay ``"auto"`` and are folded after training, when
    feature-map pruning has settled their sizes)."""
    from dataclasses import replace

    from ..core.layers import wiring

    shapes = [ins[0] for ins in wiring(layers, tuple(input_shape)).in_shapes]  # each layer's input (a graph too)
    auto = [i for i, s in enumerate(layers) if s.weighted and s.lanes == "auto"]
    if not any(layers[i].granularity == "bank" for i in auto):
        return tuple(layers)
    fixed = 0
    for s, sh in zip(layers, shapes):
        if s.weighted and s.lanes != "auto":
            fixed += s.lanes if isinstance(s.lanes, int) else (
                s.banks(s.fan_in(sh)) if s.granularity == "bank" else default_lanes(s.row_entries(sh)))
    chosen = _search({i: _spec_options(layers[i], shapes[i]) for i in auto}, fixed, target_ii, max_dsp)
    return tuple(replace(s, lanes=chosen[i]) if i in chosen and s.granularity == "bank" else s
                 for i, s in enumerate(layers))
