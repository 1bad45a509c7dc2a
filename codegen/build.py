"""A whole build laid out for hardware: the typed hand-off from planning to rendering,
simulation and the estimates.

:func:`plan_build` pairs every layer with its lanes and ROMs and computes the exact
schedule once; :func:`render_build` renders it.  Everything downstream reads a
:class:`BuildPlan`, never a loose ``(model, plans)`` pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.fixed import FixedFormat
from ..core.ir import Model
from .estimate import Latency, latency
from .plan import LayerPlan, plan_layers
from .folding import Folding, fold, stream_values
from .kinds import handler
from .render import Design, render, tdata_width

__all__ = ["BuildPlan", "plan_build", "render_build", "axis_args", "MAX_TDATA_BITS", "beat_limit", "beat_error",
           "stream_limits"]

MAX_TDATA_BITS = 1024  # the widest AXI4-Stream tdata kofn generates: values per beat x tdata_width(fmt)


def beat_limit(n_values: int, fmt: FixedFormat, banks: int = 1, image: bool = False,
               what: str = "input") -> tuple[int, str]:
    """The most values one AXI beat of a stream may carry, and what sets it: ``(values, why)``.

    The stream carries ``n_values`` ``fmt`` values per frame (``what``: ``"input"`` or
    ``"output"``), each in a ``tdata_width(fmt)``-bit lane.  An image model's first layer
    (``image``) takes one value per beat; a banked first
    layer (``banks`` P > 1) keeps its inputs in P memories, one write each per beat; no beat
    holds more values than a frame, nor more lanes than :data:`MAX_TDATA_BITS` carry.  The
    first bound in that order wins a tie, so ``why`` names the most specific one."""
    lane = tdata_width(fmt)
    bus = MAX_TDATA_BITS // lane
    bounds = [(n_values, f"a frame holds {n_values:,} {what} values"),
              (bus, f"{bus} lanes of {lane} bits fill the {MAX_TDATA_BITS:,}-bit tdata limit")]
    if banks > 1:
        bounds.insert(0, (banks, f"the first layer keeps its inputs in {banks} bank memories, one write each per beat"))
    if image:
        bounds.insert(0, (1, "an image model's first layer takes one value per beat"))
    return min(bounds, key=lambda b: b[0])


def beat_error(values: int, limit: tuple[int, str]) -> str | None:
    """``None`` when ``values`` per beat fit ``limit`` (:func:`beat_limit`), else why not: the
    message after the key, naming the largest allowed value."""
    most, why = limit
    return None if values <= most else f"must be at most {most:,} ({why}), got {values:,}"


def stream_limits(model: Model) -> tuple[tuple[int, str], tuple[int, str]]:
    """:func:`beat_limit` of ``model``'s input stream (``s_axis``) and output stream (``m_axis``)
    under the dataflow schedule."""
    first = handler(model.layers[0])
    banks = first.banks(model.layers[0]) if first.has_core and first.df_mem(model.layers[0]) else 1
    return (beat_limit(model.n_inputs, model.input_fmt, banks, first.image),
            beat_limit(model.n_outputs, model.output_fmt, what="output"))


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
        limits = stream_limits(model)
        for key, values, limit in (("hw.stream_in", stream_in, limits[0]), ("hw.stream_out", stream_out, limits[1])):
            if err := beat_error(values, limit):
                raise ValueError(f"{key}: {err}")

        def auto(n_values: int, most: int) -> int:  # a power of two that fits (the frame's n itself at most)
            v = stream_values(n_values, slowest)
            while v > most:
                v //= 2
            return v

        stream_in = stream_in or auto(model.n_inputs, limits[0][0])
        stream_out = stream_out or auto(model.n_outputs, limits[1][0])
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
