"""A whole build laid out for hardware: the typed hand-off from planning to rendering,
simulation and the estimates.

:func:`plan_build` pairs every layer with its lanes and ROMs and computes the exact
schedule once; :func:`render_build` renders it.  Everything downstream reads a
:class:`BuildPlan`, never a loose ``(model, plans)`` pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.ir import Model
from .estimate import Latency, latency
from .plan import LayerPlan, plan_layers
from .render import Design, render

__all__ = ["BuildPlan", "plan_build", "render_build"]


@dataclass(frozen=True)
class BuildPlan:
    """``model`` laid out as ``layers`` (one :class:`LayerPlan` each), its exact ``latency``,
    and the names and clock the generated files carry."""

    model: Model
    layers: tuple[LayerPlan, ...]
    latency: Latency
    top: str = "kofn_top"
    part: str = "xc7z020clg400-1"
    clock_mhz: float = 100.0

    @property
    def lanes(self) -> list[int]:
        return [p.lanes for p in self.layers]


def plan_build(model: Model, lanes: Sequence[int | None] | None = None, top: str = "kofn_top",
               part: str = "xc7z020clg400-1", clock_mhz: float = 100.0) -> BuildPlan:
    """Plan ``model`` with ``lanes`` per layer (``None``: the default rule) and schedule it."""
    plans = tuple(plan_layers(model, lanes))
    return BuildPlan(model, plans, latency(model, plans), top, part, clock_mhz)


def render_build(build: BuildPlan) -> Design:
    """The generated files of ``build`` (:func:`kofn.codegen.render.render`)."""
    return render(build.model, build.layers, build.latency, top=build.top, part=build.part,
                  clock_ns=1e3 / build.clock_mhz)
