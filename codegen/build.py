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
from .render import Design, render, tdata_width

__all__ = ["BuildPlan", "plan_build", "render_build", "axis_args"]


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
    schedule: str = "dataflow"
    stream_in: int = 1  # values per s_axis beat
    stream_out: int = 1  # values per m_axis beat

    @property
    def lanes(self) -> list[int]:
        return [p.lanes for p in self.layers]


def plan_build(model: Model, lanes: Sequence[int | None] | None = None, top: str = "kofn_top",
               part: str = "xc7z020clg400-1", clock_mhz: float = 100.0, schedule: str = "dataflow",
               stream_in: int = 1, stream_out: int = 1) -> BuildPlan:
    """Plan ``model`` with ``lanes`` per layer (``None``: the default rule) and schedule it
    (``schedule``: ``"dataflow"``, overlapped stages, or ``"sequential"``, one layer at a time)."""
    if schedule not in ("dataflow", "sequential"):
        raise ValueError(f"schedule must be 'dataflow' or 'sequential', got {schedule!r}")
    plans = tuple(plan_layers(model, lanes))
    return BuildPlan(model, plans, latency(model, plans, schedule, stream_in, stream_out), top, part, clock_mhz,
                     schedule, stream_in, stream_out)


def render_build(build: BuildPlan) -> Design:
    """The generated files of ``build`` (:func:`kofn.codegen.render.render`)."""
    return render(build.model, build.layers, build.latency, top=build.top, part=build.part,
                  clock_ns=1e3 / build.clock_mhz, schedule=build.schedule, stream_in=build.stream_in,
                  stream_out=build.stream_out)


def axis_args(build: BuildPlan) -> dict:
    """The stream layout :func:`kofn.sim.rtl.simulate_rtl` needs to drive ``build``'s top."""
    m = build.model
    return {"in_lane_w": tdata_width(m.input_fmt), "out_lane_w": tdata_width(m.output_fmt),
            "in_values": build.stream_in, "out_values": build.stream_out, "out_signed": bool(m.output_fmt.signed)}
