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
from .folding import Folding, fold, stream_values
from .kinds import handler
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
    folding: Folding | None = None  # how "auto" lanes were chosen (None: all hand-set)

    @property
    def lanes(self) -> list[int]:
        return [p.lanes for p in self.layers]

    @property
    def efficiency(self) -> dict:
        """MAC efficiency: kept MACs per inference / (multipliers x II), and the II at which
        these multipliers would be busy every cycle (``limit_ii``)."""
        macs = sum(handler(p.layer).macs(p.layer) for p in self.layers)
        mult = sum(self.lanes)
        ii = self.latency.ii_cycles
        return {"macs": macs, "multipliers": mult, "ii": ii, "mac_efficiency": round(macs / (mult * ii), 4),
                "limit_ii": -(-macs // mult)}

    @property
    def fmax_estimate(self):
        """The Fmax model's prediction for ECP5-85 speed 6 (:mod:`kofn.codegen.fmax`;
        ``None`` for the sequential schedule, which it does not model)."""
        from .fmax import estimate_fmax

        return estimate_fmax(self.model, self.layers, self.schedule, self.stream_in, self.stream_out)


def plan_build(model: Model, lanes: Sequence[int | str | None] | None = None, top: str = "kofn_top",
               part: str = "xc7z020clg400-1", clock_mhz: float = 100.0, schedule: str = "dataflow",
               stream_in: int = 0, stream_out: int = 0, target_ii: int = 0, max_dsp: int = 0) -> BuildPlan:
    """Plan ``model`` with ``lanes`` per layer and schedule it.

    ``lanes``: per layer P, ``None`` (the default rule) or ``"auto"`` (folded to ``target_ii``
    or within ``max_dsp`` multipliers, :mod:`kofn.codegen.folding`).  ``schedule``:
    ``"dataflow"`` (overlapped stages) or ``"sequential"`` (one layer at a time, least area).
    ``stream_in``/``stream_out``: values per AXI beat, 0 for the fewest that do not bind the II."""
    if schedule not in ("dataflow", "sequential"):
        raise ValueError(f"schedule must be 'dataflow' or 'sequential', got {schedule!r}")
    folding = None
    if lanes is not None and any(p == "auto" for p in lanes):
        folding = fold(model, lanes, target_ii, max_dsp)
        lanes = folding.lanes
    plans = tuple(plan_layers(model, lanes))
    if schedule == "sequential":
        stream_in, stream_out = stream_in or 1, stream_out or 1
    else:
        slowest = max(handler(p.layer).df_period(p.layer, p.lanes) for p in plans if p.has_core)
        first = handler(plans[0].layer)
        image = first.image
        # a bank layer's memories take one value per bank and beat: at most P values per beat
        cap = plans[0].lanes if first.has_core and first.df_mem(plans[0].layer) else 0
        if stream_in and cap and stream_in > cap:
            raise ValueError(f"hw.stream_in = {stream_in}: layer {plans[0].layer.name!r} keeps its inputs in "
                             f"{cap} bank memories, one write each per beat: at most {cap} values per beat")
        stream_in = stream_in or (1 if image else stream_values(model.n_inputs, slowest))
        while cap and stream_in > cap:
            stream_in //= 2
        stream_out = stream_out or stream_values(model.n_outputs, slowest)
    return BuildPlan(model, plans, latency(model, plans, schedule, stream_in, stream_out), top, part, clock_mhz,
                     schedule, stream_in, stream_out, folding)


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
