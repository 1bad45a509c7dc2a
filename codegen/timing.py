"""Latency, exact: the generated RTL's schedule (see ``hw_templates/verilog``).

* the top accepts ``n_in`` input beats, one per cycle without stalls;
* layer ``l`` issues ``D_l = rows_l * ceil(k_l / P_l)`` ROM words, then needs 3 pipeline
  cycles and one write-back cycle, and the next layer samples its ``start`` one cycle
  later: ``D_l + 4`` cycles from one layer's start to the next's;
* the output FSM takes one cycle to enter its state, then emits ``n_out`` beats.

Counting edges from the one that accepts the first input beat to the one that
accepts the last output beat gives ``n_in + sum_l (D_l + 4) + n_out``; the next
inference's first beat is accepted one edge after the last output beat, so the
initiation interval is that plus one (the layers run one inference at a time).
The tests check both numbers against cocotb simulation for equality.

Image models put streaming stages in front (``hw_templates/verilog/kofn_conv.sv``
and ``kofn_maxpool.sv``).  A stage starts work only while every later stage is
idle, so the work of all layers is serialized and simply adds up:

* each input beat takes one cycle;
* a convolution computes each of its ``OH * OW`` windows in ``D + 6 + C_out`` cycles
  (latch the window, start the core, ``D + 3`` core cycles, notice ``done``, emit
  ``C_out`` beats, return), ``D = C_out * ceil(k_eff / P)``;
* max pooling adds nothing (it forwards beats combinationally);
* the dense part adds ``sum_l (D_l + 4) + n_out + 1`` after its last input beat.

So ``II = n_in + sum_conv OH*OW*(D + 6 + C_out) + sum_dense (D_l + 4) + n_out + 1``,
which is the formula above for a model without images.  The latency is ``II - 1``
unless a stage drops trailing input (rows a strided "valid" convolution never
reads, odd rows and columns a pool drops): that input, and the work it causes, come
after the last output beat.  :func:`sequential_walk` walks one inference beat by beat
through the same rules as the RTL (which beat completes which row, which output rows
are then due, which pooled beats leave) and returns both numbers exactly.  Each
kind's cycles and its stage of the walk are its handler's (:mod:`kofn.codegen.kinds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.ir import Model
from .dataflow import simulate
from .kinds import handler
from .plan import LayerPlan

__all__ = ["LayerLatency", "Latency", "latency", "df_latency", "df_rel_early", "sequential_walk"]


@dataclass(frozen=True)
class LayerLatency:
    name: str
    issue_cycles: int  # rows * S per core activation (0 for pooling)
    cycles: int  # all cycles the layer adds to one inference


@dataclass(frozen=True)
class Latency:
    """``layers``: per layer its cycles (sequential: added to one inference; dataflow: the
    stage's busy cycles per inference); ``input_cycles``/``output_cycles``: the stream beats;
    ``total_cycles``: first input beat to last output beat of an isolated inference;
    ``ii_cycles``: between back-to-back inferences.  Dataflow also gives, for
    :data:`kofn.codegen.dataflow.DF_VECTORS` back-to-back inferences, the cycle of each one's
    first input beat (``first_in``) and last output beat (``last_out``)."""

    layers: tuple[LayerLatency, ...]
    input_cycles: int
    output_cycles: int
    total_cycles: int
    ii_cycles: int
    schedule: str = "sequential"
    first_in: tuple[int, ...] = ()
    last_out: tuple[int, ...] = ()
    stages: tuple[tuple[str, int], ...] = ()  # dataflow: (stage, busy cycles per inference), streams included

    def throughput(self, clock_mhz: float) -> float:
        """Inferences per second at ``clock_mhz`` when streamed back to back."""
        return clock_mhz * 1e6 / self.ii_cycles


class _Collector:
    """The top's collector: the last beat of a vector runs the whole dense part."""

    def __init__(self, n_col: int, dense_cycles: int):
        self.n_col, self.dense_cycles = n_col, dense_cycles
        self.i = 0
        self.last_out = None

    def feed(self, t, nxt):
        self.i = (self.i + 1) % self.n_col
        if self.i:
            return 0
        self.last_out = t + self.dense_cycles
        return self.dense_cycles


def sequential_walk(model: Model, plans: Sequence[LayerPlan]) -> tuple[int, int]:
    """``(latency, ii)`` in cycles, by walking one inference beat by beat (see the module doc)."""
    image = [p for p in plans if handler(p.layer).image]
    dense = [p for p in plans if not handler(p.layer).image]
    dense_cycles = sum(handler(p.layer).cycles(p) for p in dense) + model.n_outputs + 1
    collector = _Collector(dense[0].layer.n, dense_cycles)
    stages = [handler(p.layer).walker(p) for p in image] + [collector]

    def chain(i):
        return lambda t: stages[i].feed(t, chain(i + 1) if i + 1 < len(stages) else None)

    feed0 = chain(0)
    t = 0
    for _ in range(model.n_inputs):
        t += feed0(t) + 1
    return collector.last_out, t


def df_rel_early(plans: Sequence[LayerPlan]) -> dict[str, int]:
    """Per MAC layer, how many cycles before its last gather its core releases its input bank
    (``kofn_dense``'s ``REL_EARLY``).

    A dense stage's buffer is written by the previous MAC stage (through any pools) or by
    s_axis.  That producer starts a frame only once the bank is free, and its first result
    leaves ``S_p + 3 + X_p`` cycles after its start (``X_p``: its pipeline's extra depth), or
    later.  Releasing the bank ``E`` cycles early is safe while that first write still comes
    after the consumer's last read: ``E <= S_p + X_p + 4``; kofn takes one cycle less, capped
    at the consumer's issue cycles ``D``.  A consumer reading bank memories (``kofn_bankbuf``)
    reads one cycle later (its address is registered first): one cycle less again.  Without it, two slow neighbours with a deep
    pipeline between them would bind the II at ``(D_p + D_c + latency) / 2``.  s_axis writes as
    soon as a bank is free, and a convolution's frame buffer releases on its last read: 0."""
    out, prev = {}, None
    for p in plans:
        h = handler(p.layer)
        if not h.has_core:
            continue
        early = 0
        if prev is not None and h.df_banks == 2:
            late = 1 if h.df_mem(p.layer) else 0  # the memory read a cycle after stage 1
            early = min(p.depth, prev.steps + handler(prev.layer).df_pipeline(prev).extra + 3 - late)
        out[p.layer.name] = early
        prev = p
    return out


def df_latency(model: Model, plans: Sequence[LayerPlan], stream_in: int = 1, stream_out: int = 1) -> Latency:
    """The dataflow schedule's cycles (:mod:`kofn.codegen.dataflow`)."""
    in_beats, out_beats = -(-model.n_inputs // stream_in), -(-model.n_outputs // stream_out)
    in_filters, stages, stage_filters = [], [], []
    early = df_rel_early(plans)
    for p in plans:
        h = handler(p.layer)
        if h.has_core:
            stages.append(h.df_stage(p, early[p.layer.name]))
            stage_filters.append([])
        else:
            (stage_filters[-1] if stages else in_filters).append(h.df_filter(p))
    sched = simulate(in_beats, in_filters, stages, stage_filters, out_beats)
    per = dict(sched.stage_periods)
    layers = tuple(LayerLatency(p.layer.name, p.depth, per.get(p.layer.name, 0)) for p in plans)
    return Latency(layers=layers, input_cycles=in_beats, output_cycles=out_beats, total_cycles=sched.latency,
                   ii_cycles=sched.ii, schedule="dataflow", first_in=sched.first_in, last_out=sched.last_out,
                   stages=sched.stage_periods)


def latency(model: Model, plans: Sequence[LayerPlan], schedule: str = "sequential", stream_in: int = 1,
            stream_out: int = 1) -> Latency:
    """Cycles per layer, in total (first input beat to last output beat) and between inferences."""
    if schedule == "dataflow":
        return df_latency(model, plans, stream_in, stream_out)
    if stream_in != 1 or stream_out != 1:
        raise ValueError("the sequential schedule streams one value per beat (hw.stream_in = hw.stream_out = 1)")
    layers = tuple(LayerLatency(p.layer.name, p.depth, handler(p.layer).cycles(p)) for p in plans)
    ii = model.n_inputs + sum(l.cycles for l in layers) + model.n_outputs + 1
    total, ii_walk = sequential_walk(model, plans)  # exact for every model; MLPs give total = ii - 1
    if ii_walk != ii:  # the walk and the closed form count the same work
        raise AssertionError(f"schedule walk gives II {ii_walk}, the closed form {ii}")
    return Latency(
        layers=layers,
        input_cycles=model.n_inputs,
        output_cycles=model.n_outputs,
        total_cycles=total,
        ii_cycles=ii,
    )
