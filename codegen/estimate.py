"""Latency (exact) and FPGA resource (first analytical model) estimates.

Latency follows the generated RTL's schedule (see ``hw_templates/verilog``):

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

Image models put streaming stages in front (``hw_templates/verilog/conv_kofn.sv.j2``
and ``maxpool_kofn.sv.j2``).  A stage starts work only while every later stage is
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
after the last output beat.  :func:`schedule` walks one inference beat by beat
through the same rules as the RTL (which beat completes which row, which output rows
are then due, which pooled beats leave) and returns both numbers exactly.

Resources (7-series-style, first version; the synthesis-validated model comes later):

* DSP: one DSP48 per MAC lane when both operands fit 25x18 and the product is at
  least 9 bits wide, else the multiplier is LUTs.
* ROMs: BRAM18 when a ROM holds more than 4 Kib and is deeper than 64 words
  (width split by the BRAM18 aspect ratios), else distributed LUT ROM (64x1 per LUT6).
* LUT and FF: activation muxes, adders, requantization, buffers and pipeline registers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..ir import Model
from .packing import index_bits
from .render import LayerPlan

__all__ = ["LayerLatency", "Latency", "latency", "LayerResources", "Resources", "resources", "rom_cost", "memory_bits"]

PIPELINE_CYCLES = 4  # ROM read, multiply, accumulate, write-back (incl. start hand-off)
WINDOW_CYCLES = 6  # per convolution window: latch, start, 3 pipeline stages, done hand-off
_BRAM18_ASPECTS = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


@dataclass(frozen=True)
class LayerLatency:
    name: str
    issue_cycles: int  # rows * S per core activation (0 for pooling)
    cycles: int  # all cycles the layer adds to one inference


@dataclass(frozen=True)
class Latency:
    layers: tuple[LayerLatency, ...]
    input_cycles: int
    output_cycles: int
    total_cycles: int
    ii_cycles: int

    def throughput(self, clock_mhz: float) -> float:
        """Inferences per second at ``clock_mhz`` when streamed back to back."""
        return clock_mhz * 1e6 / self.ii_cycles


def schedule(model: Model, plans: Sequence[LayerPlan]) -> tuple[int, int]:
    """``(latency, ii)`` in cycles, by walking one inference beat by beat (see the module doc)."""
    image = [p for p in plans if p.kind != "dense"]
    dense = [p for p in plans if p.kind == "dense"]
    dense_cycles = sum(p.depth + PIPELINE_CYCLES for p in dense) + model.n_outputs + 1
    n_col = dense[0].layer.n
    last_out = [None]

    class Conv:
        def __init__(self, p):
            L = p.layer
            self.h, self.w, self.c = L.in_shape
            self.oh, self.ow, self.c_out = L.out_shape
            self.k, self.s, self.pad = L.kernel, L.stride, L.pad
            self.window = p.depth + WINDOW_CYCLES + self.c_out
            self.beat = self.rows = self.oy = 0
            self.out_done = False

        def due(self, rows):
            return self.oy * self.s - self.pad + self.k - 1 < rows or rows == self.h

        def feed(self, t, nxt):
            """The beat accepted on edge t; returns the edges it delays the next one by."""
            self.beat += 1
            if self.beat % (self.w * self.c):
                return 0
            self.rows += 1
            if self.out_done:
                if self.rows == self.h:
                    self.rows, self.out_done, self.beat = 0, False, 0
                return 0
            if self.rows == self.h:
                self.beat = 0
            a = t
            while self.oy < self.oh and self.due(self.rows):
                for _ in range(self.ow):
                    fire = a + 1 + self.window - self.c_out  # first result beat
                    for _ in range(self.c_out):
                        fire += nxt(fire)  # downstream work delays the following beats
                        fire += 1
                    a = fire - 1  # WIN again (or LOAD) on the last beat's edge plus its work
                self.oy += 1
            if self.oy == self.oh:
                self.oy = 0
                if self.rows == self.h:
                    self.rows = 0
                else:
                    self.out_done = True
            return a - t

    class Pool:
        def __init__(self, p):
            self.h, self.w, self.c = p.layer.in_shape
            self.i = 0

        def feed(self, t, nxt):
            i, self.i = self.i, (self.i + 1) % (self.h * self.w * self.c)
            y, x = divmod(i // self.c, self.w)
            if y < self.h // 2 * 2 and x < self.w // 2 * 2 and x % 2 and y % 2:
                return nxt(t)
            return 0

    class Collector:
        def __init__(self):
            self.i = 0

        def feed(self, t, nxt):
            self.i = (self.i + 1) % n_col
            if self.i:
                return 0
            last_out[0] = t + dense_cycles
            return dense_cycles

    stages = [Conv(p) if p.kind == "conv" else Pool(p) for p in image] + [Collector()]

    def chain(i):
        return lambda t: stages[i].feed(t, chain(i + 1) if i + 1 < len(stages) else None)

    feed0 = chain(0)
    t = 0
    for _ in range(model.n_inputs):
        t += feed0(t) + 1
    return last_out[0], t


def latency(model: Model, plans: Sequence[LayerPlan]) -> Latency:
    """Cycles per layer, in total (first input beat to last output beat) and between inferences."""
    layers = []
    for p in plans:
        L = p.layer
        if L.kind == "dense":
            cycles = p.depth + PIPELINE_CYCLES
        elif L.kind == "conv":
            oh, ow, c_out = L.out_shape
            cycles = oh * ow * (p.depth + WINDOW_CYCLES + c_out)
        else:
            cycles = 0
        layers.append(LayerLatency(L.name, p.depth, cycles))
    layers = tuple(layers)
    ii = model.n_inputs + sum(l.cycles for l in layers) + model.n_outputs + 1
    total, ii_walk = schedule(model, plans)  # exact for every model; MLPs give total = ii - 1
    if ii_walk != ii:  # the walk and the closed form count the same work
        raise AssertionError(f"schedule walk gives II {ii_walk}, the closed form {ii}")
    return Latency(
        layers=layers,
        input_cycles=model.n_inputs,
        output_cycles=model.n_outputs,
        total_cycles=total,
        ii_cycles=ii,
    )


@dataclass(frozen=True)
class LayerResources:
    name: str
    dsp: int
    bram18: int
    lut: int
    ff: int
    rom_bits: int


@dataclass(frozen=True)
class Resources:
    layers: tuple[LayerResources, ...]
    dsp: int
    bram18: int
    lut: int
    ff: int


def rom_cost(depth: int, width: int) -> tuple[int, int]:
    """``(bram18, lut)`` of a ``depth x width`` ROM."""
    if depth * width > 4096 and depth > 64:
        for max_depth, w in _BRAM18_ASPECTS:
            if depth <= max_depth:
                return math.ceil(width / w), 0
        return math.ceil(depth / 16384) * width, 0
    return 0, width * math.ceil(depth / 64)


DSP_PORTS = {"xc7": (25, 18), "xcup": (27, 18)}  # DSP48E1 25x18, DSP48E2 27x18 signed multipliers


def _uses_dsp(a_bits: int, w_bits: int, family: str = "xc7") -> bool:
    big, small = DSP_PORTS[family]
    lo, hi = sorted((a_bits, w_bits))
    return lo <= small and hi <= big and a_bits + w_bits >= 9


def _core_resources(p: LayerPlan, family: str = "xc7") -> tuple[bool, int, int, int, int]:
    """``(dsp_per_lane, bram18, lut, ff, rom_bits)`` of a MAC core (dense or conv)."""
    L = p.layer
    acc_w = L.accumulator.width
    a_bits = L.input_fmt.width + (0 if L.input_fmt.signed else 1)
    dsp_lane = _uses_dsp(a_bits, L.weight_fmt.width, family)
    roms = [(r.depth, r.word_bits) for r in (p.roms.index, p.roms.weight, p.roms.bias)]
    bram = lut_rom = 0
    for depth, width in roms:
        b, lr = rom_cost(depth, width)
        bram += b
        lut_rom += lr
    idx_w = p.roms.index.entry_bits
    mux = p.lanes * L.input_fmt.width * math.ceil(L.n / 4)
    mult = 0 if dsp_lane else p.lanes * a_bits * L.weight_fmt.width // 2
    adders = p.lanes * acc_w + 2 * (acc_w + 1)
    counters = 3 * (index_bits(p.depth) + 2)
    wb = L.rows  # output-buffer write enables
    lut = mux + mult + adders + counters + wb + lut_rom
    ff = (
        p.lanes * (idx_w + L.weight_fmt.width)
        + p.lanes * (a_bits + L.weight_fmt.width)
        + L.bias_fmt.width
        + acc_w
        + L.rows * L.output_fmt.width
        + 3 * index_bits(p.depth)
        + 8
    )
    return dsp_lane, bram, lut, ff, sum(d * w for d, w in roms)


def resources(model: Model, plans: Sequence[LayerPlan], family: str = "xc7") -> Resources:
    """Per-layer and total DSP, BRAM18, LUT and FF estimates.

    A convolution adds its front end to the core: the line buffer and the window
    register (flip-flops: the window generator reads a whole window in one cycle), the
    window multiplexers (one K*W-input mux per window bit, 4 inputs per LUT6) and
    counters.  A pool holds W/2 * C running maxima in flip-flops plus a comparator.
    """
    out = []
    for p in plans:
        L = p.layer
        if L.kind == "maxpool":
            h, w, c = L.in_shape
            bits = (w // 2) * c * L.input_fmt.width
            lut = L.input_fmt.width * (2 + math.ceil((w // 2) * c / 4)) + 16
            out.append(LayerResources(L.name, 0, 0, lut, bits + 16, 0))
            continue
        dsp_lane, bram, lut, ff, rom_bits = _core_resources(p, family)
        if L.kind == "conv":
            h, w, c = L.in_shape
            lb_bits = L.kernel * w * c * L.input_fmt.width
            win_bits = L.n * L.input_fmt.width
            lut += win_bits * math.ceil(L.kernel * w / 4) + L.out_shape[2] * L.output_fmt.width // 4 + 40
            ff += lb_bits + win_bits + 64
        out.append(LayerResources(L.name, p.lanes if dsp_lane else 0, bram, lut, ff, rom_bits))
    first_dense = next(p.layer for p in plans if p.kind == "dense")
    top_ff = first_dense.n * first_dense.input_fmt.width + 2 * index_bits(first_dense.n) + 4
    top_lut = first_dense.n + model.output_fmt.width * math.ceil(model.n_outputs / 4) + 8
    return Resources(
        layers=tuple(out),
        dsp=sum(l.dsp for l in out),
        bram18=sum(l.bram18 for l in out),
        lut=sum(l.lut for l in out) + top_lut,
        ff=sum(l.ff for l in out) + top_ff,
    )


def memory_bits(plans: Sequence[LayerPlan]) -> dict[str, int]:
    """``rom_bits``: every ROM image as packed (indices, weights, biases, lane padding
    included); ``dense_bits``: the same layers stored dense (every weight of every neuron
    or filter, plus biases); ``line_buffer_bits``: the convolutions' K-row line buffers
    and the pools' row of running maxima; ``window_bits``: the convolutions' window
    registers."""
    rom = dense = lb = win = 0
    for p in plans:
        L = p.layer
        if L.kind == "maxpool":
            lb += (L.in_shape[1] // 2) * L.in_shape[2] * L.input_fmt.width
            continue
        rom += p.roms.index.bits + p.roms.weight.bits + p.roms.bias.bits
        dense += L.rows * (L.n * L.weight_fmt.width + L.bias_fmt.width)
        if L.kind == "conv":
            lb += L.kernel * L.in_shape[1] * L.in_shape[2] * L.input_fmt.width
            win += L.n * L.input_fmt.width
    return {"rom_bits": rom, "dense_bits": dense, "line_buffer_bits": lb, "window_bits": win}
