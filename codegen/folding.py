"""Automatic folding: each ``lanes = "auto"`` layer's MAC lanes P, chosen to balance the
dataflow stages (the way FINN folds by hand).

A stage's period is its busy cycles per inference (:meth:`Handler.df_period`); the dataflow
II is the slowest stage's period plus a few hand-off cycles.  Two goals:

* ``target_ii``: every auto layer gets the fewest lanes whose period is at most the target;
* ``max_dsp``: the lowest target whose auto layers, with the hand-set ones, use at most this
  many multipliers (lanes), then the fewest lanes for it.

Only lane counts that change a layer's steps per row are worth trying, so the search is over
each layer's distinct periods.  No torch, no templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.ir import Model
from .kinds import handler
from .plan import default_lanes

__all__ = ["Folding", "fold", "stream_values"]


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


def _options(layer) -> list[tuple[int, int]]:
    """``(period, lanes)`` for every lane count, keeping the fewest lanes per period."""
    h = handler(layer)
    best: dict[int, int] = {}
    for p in range(1, h.entries_per_row(layer) + 1):
        c = h.df_period(layer, p)
        best.setdefault(c, p)
    return sorted(best.items())


def _fewest(layer, target: int) -> int:
    """The fewest lanes whose period fits ``target`` (all lanes when none does)."""
    opts = _options(layer)
    fits = [p for c, p in opts if c <= target]
    return min(fits) if fits else max(p for _, p in opts)


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
    if auto and max_dsp:
        fixed = sum(p for i, p in enumerate(lanes) if i not in auto and isinstance(p, int))
        targets = sorted({c for i in auto for c, _ in _options(model.layers[i])})
        target_ii = 0
        for t in targets:  # ascending: the first that fits the budget is the lowest II
            if fixed + sum(_fewest(model.layers[i], t) for i in auto) <= max_dsp:
                target_ii = t
                break
        if not target_ii:
            least = fixed + len(auto)
            raise ValueError(f"hw.max_dsp = {max_dsp} multipliers cannot hold the design: it needs at least {least} "
                             f"(one lane per auto layer plus the hand-set ones)")
    for i in auto:
        lanes[i] = _fewest(model.layers[i], target_ii)
    periods = []
    for L, p in zip(model.layers, lanes):
        h = handler(L)
        if h.has_core:
            periods.append((L.name, h.df_period(L, p if p is not None else default_lanes(h.entries_per_row(L)))))
    binding = max(periods, key=lambda x: x[1])[0]
    return Folding(tuple(lanes), tuple(periods), binding)


def stream_values(n_values: int, period: int) -> int:
    """Values per AXI beat for ``n_values`` per inference: the smallest power of two whose
    beats take at most half of ``period`` (the slowest stage's), so the stream never binds."""
    v = 1
    while -(-n_values // v) > max(1, period // 2) and v < n_values:
        v *= 2
    return v
