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

Resources, per layer and for the top module's own logic (``resources``):

* DSP: one DSP48 per MAC lane when the multiply fits the DSP's ports (25x18 on
  7-series, 27x18 on UltraScale+) and the product is at least 9 bits wide, else the
  multiplier is LUTs.  Exact against Yosys.
* Block RAM: the RTL places each ROM itself (``rom_style``) by one rule,
  :func:`kofn.codegen.packing.rom_in_bram`, and :func:`kofn.codegen.packing.bram_cells`
  tiles it into RAMB18/RAMB36 as Yosys does.  Exact against Yosys.
* LUT and FF: structural features of each block (mux inputs, LUT-ROM words, multiplier
  and adder bits, register bits; :func:`features`) weighted by per-family coefficients
  fitted to Yosys on the calibration corpus (:mod:`kofn.codegen.calibration`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.ir import Model
from ..core.rules import index_bits
from .packing import bram_cells, entries_per_row, rom_in_bram
from .plan import LayerPlan

__all__ = ["LayerLatency", "Latency", "latency", "LayerResources", "Resources", "resources", "rom_cost", "memory_bits", "csr_bits"]

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
    bram18: int  # BRAM18 equivalents (a RAMB36 counts two)
    lut: int
    ff: int
    rom_bits: int
    ramb18: int = 0
    ramb36: int = 0


@dataclass(frozen=True)
class Resources:
    layers: tuple[LayerResources, ...]
    top: LayerResources  # the top module's own logic: AXI-Stream FSM, collector, output select
    dsp: int
    bram18: int
    ramb18: int
    ramb36: int
    lut: int
    ff: int


def rom_cost(depth: int, width: int) -> tuple[int, int]:
    """``(bram18 equivalents, lut)`` of a ``depth x width`` ROM placed by the RTL's rule."""
    if rom_in_bram(depth, width):
        n18, n36 = bram_cells(depth, width)
        return n18 + 2 * n36, 0
    return 0, _rom_luts(depth, width)


DSP_PORTS = {"xc7": (25, 18), "xcup": (27, 18)}  # DSP48E1 25x18, DSP48E2 27x18 signed multipliers


def _operand_bits(L) -> int:
    """Bits of a lane's activation operand as a signed multiplier input."""
    return L.input_fmt.width + (0 if L.input_fmt.signed else 1)


def _uses_dsp(a_bits: int, w_bits: int, family: str = "xc7") -> bool:
    big, small = DSP_PORTS[family]
    lo, hi = sorted((a_bits, w_bits))
    return lo <= small and hi <= big and a_bits + w_bits >= 9


def _mux_luts(n: int) -> int:
    """LUT6s of one bit of an n:1 multiplexer built as a tree of 4:1 muxes (one LUT6
    each; Yosys's synth_xilinx does not use MUXF7/MUXF8 for wide muxes by default)."""
    t = 0
    while n > 1:
        n = math.ceil(n / 4)
        t += n
    return t


def _rom_luts(depth: int, width: int) -> int:
    """LUT6s of a ROM in logic: each output bit is a 64x1 LUT per 64 words, muxed by address."""
    if depth <= 1:
        return 0
    return width * (math.ceil(depth / 64) + _mux_luts(math.ceil(depth / 64))) if depth > 64 else width


def lane_inputs(p: LayerPlan) -> list[int]:
    """Per MAC lane, how many of the layer's inputs its multiplexer can select.

    Synthesis removes index bits that are the same in every ROM word of a lane (their
    register is a constant), and with them every input whose index disagrees.  In a
    kernel-level convolution the tap is a constant function of the step (one tap when P
    is a multiple of K*K) and the channel comes from the channel ROM."""
    from .packing import unpack_entries

    def reachable(vals, n):  # inputs below n that agree with every constant bit of vals
        vals = np.asarray(vals, dtype=np.int64).ravel()
        ones, zeros = int(np.bitwise_and.reduce(vals)), int(np.bitwise_and.reduce(~vals))
        i = np.arange(n)
        return int((((i & ones) == ones) & ((i & zeros) == 0)).sum())

    L = p.layer
    if L.kind == "conv" and L.granularity == "kernel":
        # lane q reads tap (s*P + q) % KK of kernel (s*P + q) // KK at step s: the taps are
        # constants of the step, the channel comes from the channel ROM
        ch = unpack_entries(p.roms.index, L.k)
        out = []
        for q in range(p.lanes):
            es = [s * p.lanes + q for s in range(p.steps)]
            taps = {e % L.taps for e in es}
            kerns = sorted({e // L.taps for e in es if e // L.taps < L.k})
            n_ch = reachable(ch[:, kerns], L.in_channels) if kerns else 1
            out.append(len(taps) * n_ch)
        return out
    idx = unpack_entries(p.roms.index, p.steps * p.lanes)
    return [reachable(idx[:, q :: p.lanes], L.n) for q in range(p.lanes)]


#: Calibration: per family and component, a coefficient per structural feature (see
#: :func:`features`), fitted to Yosys synth_xilinx on the calibration corpus
#: (``benchmarks/calibrate.py --fit`` writes ``codegen/coefficients.py``).
from .coefficients import COEFFICIENTS  # noqa: E402


def features(p: LayerPlan | None, family: str, model: Model | None = None) -> dict[str, dict[str, float]]:
    """Structural features, ``{component_resource: {feature: value}}``, of one layer's
    hardware (``p``: its MAC core ``core_*`` and, for a convolution, its front end
    ``conv_*``; a pool ``pool_*``) or of the top module's own logic (``p=None``:
    ``top_*``, needs ``model``).  Each feature counts something the RTL builds (mux
    inputs, ROM words, register bits); :data:`COEFFICIENTS` turns them into cells."""
    if p is None:
        first = next(L for L in model.layers if L.kind == "dense")
        n_out, out_w = model.n_outputs, model.output_fmt.width
        return {
            "top_lut": {"colwe": first.n, "outmux": out_w * _mux_luts(n_out), "one": 1.0},
            "top_ff": {"col": first.n * first.input_fmt.width, "ctr": index_bits(first.n) + index_bits(n_out), "one": 1.0},
        }
    L = p.layer
    if L.kind == "maxpool":
        h, w, c = L.in_shape
        depth = (w // 2) * c
        return {
            "pool_lut": {"buf": L.input_fmt.width * math.ceil(depth / 32), "cmp": L.input_fmt.width,
                         "ctr": index_bits(c) + index_bits(w) + index_bits(h), "one": 1.0},
            "pool_ff": {"ctr": index_bits(c) + index_bits(w) + index_bits(h), "one": 1.0},
        }
    a_bits = _operand_bits(L)
    dsp = _uses_dsp(a_bits, L.weight_fmt.width, family)
    roms = (p.roms.index, p.roms.weight, p.roms.bias)
    acc_w = L.accumulator.width
    rq_w = max(acc_w, L.output_fmt.width + 1) + 1
    prod_w = a_bits + L.weight_fmt.width
    kmode = L.kind == "conv" and L.granularity == "kernel"
    out = {
        "core_lut": {
            "mux": L.input_fmt.width * sum(_mux_luts(n) for n in lane_inputs(p)),
            "kmode": p.lanes * index_bits(L.n) if kmode else 0,
            "rom": sum(_rom_luts(r.depth, r.word_bits) for r in roms if not r.in_bram),
            "mul": 0 if dsp else p.lanes * L.input_fmt.width * L.weight_fmt.width,
            "add": (p.lanes + 1) * acc_w + rq_w,
            "outw": L.rows * L.output_fmt.width,
            "one": 1.0,
        },
        "core_ff": {
            # a ROM in logic keeps its read register on the address side (shared with the
            # counter); the DSP's A/B/M/P registers absorb the lanes' operands and products
            "idx_q": p.roms.index.word_bits if not p.roms.index.in_bram else 0,
            "w_q": p.roms.weight.word_bits if not p.roms.weight.in_bram else 0,
            "prod": 0 if dsp else p.lanes * prod_w,
            "out": L.rows * L.output_fmt.width,
            "acc": acc_w + rq_w,
            "ctrl": index_bits(p.depth) + index_bits(p.steps) + 4 * index_bits(L.rows),
            "kctr": p.lanes * (index_bits(L.taps) + index_bits(L.k)) if kmode else 0,
            "one": 1.0,
        },
    }
    if L.kind == "conv":
        h, w, c = L.in_shape
        k = L.kernel
        px = c * L.input_fmt.width
        c_out = L.out_shape[2]
        out["conv_lut"] = {"lbwe": k * w * c, "rowmux": k * w * px * _mux_luts(k), "pxmux": k * k * px * _mux_luts(w),
                           "ser": L.output_fmt.width * _mux_luts(c_out), "one": 1.0}
        out["conv_ff"] = {"lb": k * w * px, "win": k * k * px, "ctr": 6 * index_bits(max(h, w) + k), "one": 1.0}
    return out


def _predict(feats: dict[str, dict[str, float]], family: str) -> dict[str, float]:
    coef = COEFFICIENTS.get(family, {})
    out = {"lut": 0.0, "ff": 0.0}
    for comp, f in feats.items():
        c = coef.get(comp, {})
        out[comp.rsplit("_", 1)[1]] += sum(c.get(name, 1.0) * v for name, v in f.items())
    return out


def resources(model: Model, plans: Sequence[LayerPlan], family: str = "xc7") -> Resources:
    """Per-layer and total DSP, block RAM, LUT and FF estimates for ``family``.

    DSP and block RAM follow the synthesis rules exactly (one DSP48 per MAC lane whose
    multiply fits the DSP's ports, :func:`_uses_dsp`; ROMs placed by
    :func:`kofn.codegen.packing.rom_in_bram` and tiled by
    :func:`kofn.codegen.packing.bram_cells`).  LUT and FF are :func:`features` weighted
    by :data:`COEFFICIENTS`, fitted per family to Yosys on the calibration corpus."""
    if family not in DSP_PORTS:
        raise ValueError(f"family {family!r}: expected one of {', '.join(DSP_PORTS)}")
    out = []
    for p in plans:
        L = p.layer
        pred = _predict(features(p, family), family)
        if L.kind == "maxpool":
            out.append(LayerResources(L.name, 0, 0, round(pred["lut"]), round(pred["ff"]), 0))
            continue
        dsp = p.lanes if _uses_dsp(_operand_bits(L), L.weight_fmt.width, family) else 0
        roms = (p.roms.index, p.roms.weight, p.roms.bias)
        n18 = n36 = 0
        for r in roms:
            if r.in_bram:
                a18, a36 = bram_cells(r.depth, r.word_bits)
                n18, n36 = n18 + a18, n36 + a36
        out.append(LayerResources(L.name, dsp, n18 + 2 * n36, round(pred["lut"]), round(pred["ff"]),
                                  sum(r.bits for r in roms), n18, n36))
    t = _predict(features(None, family, model), family)
    top = LayerResources("top", 0, 0, round(t["lut"]), round(t["ff"]), 0)
    return Resources(
        layers=tuple(out),
        top=top,
        dsp=sum(l.dsp for l in out),
        bram18=sum(l.bram18 for l in out),
        ramb18=sum(l.ramb18 for l in out),
        ramb36=sum(l.ramb36 for l in out),
        lut=sum(l.lut for l in out) + top.lut,
        ff=sum(l.ff for l in out) + top.ff,
    )


def csr_bits(rows: int, n: int, nnz: int, weight_bits: int, bias_bits: int) -> int:
    """Compressed sparse rows at the same sparsity: a weight and a column index per nonzero,
    ``rows + 1`` row pointers, plus the biases (which every storage holds)."""
    return nnz * (weight_bits + index_bits(n)) + (rows + 1) * index_bits(nnz + 1) + rows * bias_bits


def memory_bits(plans: Sequence[LayerPlan]) -> dict:
    """``rom_bits``: every ROM image as packed (indices, weights, biases, lane padding
    included); ``dense_bits``: the same layers stored dense (every weight of every neuron
    or filter, plus biases); ``csr_bits``: compressed sparse rows at the same sparsity
    (:func:`csr_bits`); ``line_buffer_bits``: the convolutions' K-row line buffers
    and the pools' row of running maxima; ``window_bits``: the convolutions' window
    registers; ``per_layer``: rom, dense and CSR bits of each layer with weights."""
    rom = dense = csr = lb = win = 0
    per = []
    for p in plans:
        L = p.layer
        if L.kind == "maxpool":
            lb += (L.in_shape[1] // 2) * L.in_shape[2] * L.input_fmt.width
            continue
        r = p.roms.index.bits + p.roms.weight.bits + p.roms.bias.bits
        d = L.rows * (L.n * L.weight_fmt.width + L.bias_fmt.width)
        c = csr_bits(L.rows, L.n, L.rows * entries_per_row(L), L.weight_fmt.width, L.bias_fmt.width)
        rom, dense, csr = rom + r, dense + d, csr + c
        per.append({"name": L.name, "rom_bits": r, "dense_bits": d, "csr_bits": c})
        if L.kind == "conv":
            lb += L.kernel * L.in_shape[1] * L.in_shape[2] * L.input_fmt.width
            win += L.n * L.input_fmt.width
    return {"rom_bits": rom, "dense_bits": dense, "csr_bits": csr, "line_buffer_bits": lb, "window_bits": win,
            "per_layer": per}
