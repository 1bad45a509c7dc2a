"""Latency (exact, :mod:`kofn.codegen.timing`) and FPGA resource (first analytical model)
estimates.

Resources, per layer and for the top module's own logic (``resources``):

* DSP: one DSP48 per MAC lane when the multiply fits the DSP's ports (25x18 on
  7-series, 27x18 on UltraScale+) and the product is at least 9 bits wide, else the
  multiplier is LUTs.  Exact against Yosys.
* Block RAM: the RTL places each ROM itself (``rom_style``) by one rule,
  :func:`kofn.codegen.packing.rom_in_bram`, and :func:`kofn.codegen.packing.bram_cells`
  tiles it into RAMB18/RAMB36 as Yosys does.  Exact against Yosys.
* LUT and FF: structural features of each block (mux inputs, LUT-ROM words, multiplier
  and adder bits, register bits; :func:`features`) weighted by per-family coefficients
  fitted to Yosys on the calibration corpus (``benchmarks/calibration.py``).

Each kind's features, DSPs, ROMs and memory are its handler's (:mod:`kofn.codegen.kinds`);
the cell arithmetic they share is :mod:`kofn.codegen.cells`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.ir import Model
from ..core.rules import index_bits
from .cells import DSP_PORTS, csr_bits, mux_luts, rom_cost, vecbuf_features
from .coefficients import COEFFICIENTS
from .conv import WINDOW_CYCLES
from .dense import PIPELINE_CYCLES
from .kinds import handler
from .plan import LayerPlan
from .rom import bram_cells
from .timing import LayerLatency, Latency, latency, sequential_walk

__all__ = ["LayerLatency", "Latency", "latency", "sequential_walk", "LayerResources", "Resources", "resources",
           "df_instances", "vecbuf_features",
           "features", "lane_inputs", "rom_cost", "memory_bits", "csr_bits", "COEFFICIENTS", "DSP_PORTS",
           "PIPELINE_CYCLES", "WINDOW_CYCLES"]


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


def lane_inputs(p: LayerPlan) -> list[int]:
    """Per MAC lane, how many of the layer's inputs its multiplexer can select.

    Synthesis removes index bits that are the same in every ROM word of a lane (their
    register is a constant), and with them every input whose index disagrees.  In a
    kernel-level convolution the tap is a constant function of the step (one tap when P
    is a multiple of K*K) and the channel comes from the channel ROM."""
    return handler(p.layer).lane_inputs(p)


def features(p: LayerPlan | None, family: str, model: Model | None = None) -> dict[str, dict[str, float]]:
    """Structural features, ``{component_resource: {feature: value}}``, of one layer's
    hardware (``p``: its MAC core ``core_*`` and, for a convolution, its front end
    ``conv_*``; a pool ``pool_*``) or of the top module's own logic (``p=None``:
    ``top_*``, needs ``model``).  Each feature counts something the RTL builds (mux
    inputs, ROM words, register bits); :data:`COEFFICIENTS` turns them into cells."""
    if p is not None:
        return handler(p.layer).features(p, family)
    first = next(L for L in model.layers if not handler(L).image)  # the collector's vector
    n_out, out_w = model.n_outputs, model.output_fmt.width
    return {
        "top_lut": {"colwe": first.n, "outmux": out_w * mux_luts(n_out), "one": 1.0},
        "top_ff": {"col": first.n * first.input_fmt.width, "ctr": index_bits(first.n) + index_bits(n_out), "one": 1.0},
    }


def _predict(feats: dict[str, dict[str, float]], family: str) -> dict[str, float]:
    coef = COEFFICIENTS.get(family, {})
    out = {"lut": 0.0, "ff": 0.0}
    for comp, f in feats.items():
        c = coef.get(comp, {})
        out[comp.rsplit("_", 1)[1]] += sum(c.get(name, 1.0) * v for name, v in f.items())
    return out


def df_instances(model: Model, plans: Sequence[LayerPlan], family: str, stream_in: int = 1,
                 stream_out: int = 1) -> list[tuple[str, str, str, dict[str, dict[str, float]]]]:
    """The dataflow top's module instances with their features: ``(layer or "top", instance,
    component, {"lut": {...}, "ff": {...}})``, one per instance ``kofn synth`` reports.  The
    same list drives the estimate and the calibration (``benchmarks/calibration.py``)."""
    out = []
    values, tagged = stream_in, ""  # what the stream's beats carry (Handler.tags_results; a pool passes them on)
    for p in plans:
        h = handler(p.layer)
        for inst, comp, f in h.df_features(p, family, values, tagged):
            out.append((p.layer.name, inst, comp, f))
        if h.has_core:
            values, tagged = 1, h.tags_results
    n, o = model.n_outputs, model.output_fmt
    out.append(("top", "u_out_buf", "buf", vecbuf_features(n, o.width, 1, tagged)))
    beats = -(-n // stream_out)
    out.append(("top", "u_out", "axout", {
        "lut": {"bank": n * o.width, "mux": stream_out * o.width * mux_luts(beats), "one": 1.0},
        "ff": {"ctr": index_bits(beats) + 1, "one": 1.0}}))
    return out


def _df_resources(model: Model, plans: Sequence[LayerPlan], family: str, stream_in: int,
                  stream_out: int) -> Resources:
    insts = df_instances(model, plans, family, stream_in, stream_out)
    out = []
    for p in plans:
        h = handler(p.layer)
        lut = ff = 0
        for layer, _, comp, f in insts:
            if layer == p.layer.name:
                pred = _predict({f"{comp}_lut": f["lut"], f"{comp}_ff": f["ff"]}, family)
                lut, ff = lut + round(pred["lut"]), ff + round(pred["ff"])
        n18 = n36 = 0
        for depth, width in [(r.depth, r.word_bits) for r in h.roms(p) if r.in_bram] + h.df_brams(p):
            a18, a36 = bram_cells(depth, width)
            n18, n36 = n18 + a18, n36 + a36
        out.append(LayerResources(p.layer.name, h.dsp(p, family), n18 + 2 * n36, lut, ff,
                                  sum(r.bits for r in h.roms(p)), n18, n36))
    t_lut = t_ff = 0
    for layer, _, comp, f in insts:
        if layer == "top":
            pred = _predict({f"{comp}_lut": f["lut"], f"{comp}_ff": f["ff"]}, family)
            t_lut, t_ff = t_lut + round(pred["lut"]), t_ff + round(pred["ff"])
    top = LayerResources("top", 0, 0, t_lut, t_ff, 0)
    return Resources(layers=tuple(out), top=top, dsp=sum(l.dsp for l in out), bram18=sum(l.bram18 for l in out),
                     ramb18=sum(l.ramb18 for l in out), ramb36=sum(l.ramb36 for l in out),
                     lut=sum(l.lut for l in out) + top.lut, ff=sum(l.ff for l in out) + top.ff)


def resources(model: Model, plans: Sequence[LayerPlan], family: str = "xc7", schedule: str = "sequential",
              stream_in: int = 1, stream_out: int = 1) -> Resources:
    """Per-layer and total DSP, block RAM, LUT and FF estimates for ``family``.

    DSP and block RAM follow the synthesis rules exactly (one DSP48 per MAC lane whose
    multiply fits the DSP's ports, :func:`kofn.codegen.cells.uses_dsp`; ROMs placed by
    :func:`kofn.codegen.packing.rom_in_bram` and tiled by
    :func:`kofn.codegen.packing.bram_cells`).  LUT and FF are :func:`features` weighted
    by :data:`COEFFICIENTS`, fitted per family to Yosys on the calibration corpus."""
    if family not in DSP_PORTS:
        raise ValueError(f"family {family!r}: expected one of {', '.join(DSP_PORTS)}")
    if schedule == "dataflow":
        return _df_resources(model, plans, family, stream_in, stream_out)
    out = []
    for p in plans:
        h = handler(p.layer)
        pred = _predict(h.features(p, family), family)
        roms = h.roms(p)
        n18 = n36 = 0
        for r in roms:
            if r.in_bram:
                a18, a36 = bram_cells(r.depth, r.word_bits)
                n18, n36 = n18 + a18, n36 + a36
        out.append(LayerResources(p.layer.name, h.dsp(p, family), n18 + 2 * n36, round(pred["lut"]),
                                  round(pred["ff"]), sum(r.bits for r in roms), n18, n36))
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


def memory_bits(plans: Sequence[LayerPlan], schedule: str = "sequential") -> dict:
    """``rom_bits``: every ROM image as packed (indices, weights, biases, lane padding
    included); ``dense_bits``: the same layers stored dense (every weight of every neuron
    or filter, plus biases); ``csr_bits``: compressed sparse rows at the same sparsity
    (:func:`csr_bits`); ``line_buffer_bits``: the convolutions' K-row line buffers
    and the pools' row of running maxima; ``window_bits``: the convolutions' window
    registers; ``per_layer``: rom, dense and CSR bits of each layer with weights.  Under the
    dataflow schedule the line buffers are the stages' ping-pong buffers (two banks of a
    vector, or of a convolution's whole input frame) and the window registers are doubled."""
    total = {"rom": 0, "dense": 0, "csr": 0, "line_buffer": 0, "window": 0}
    per = []
    for p in plans:
        h = handler(p.layer)
        m = h.df_memory(p) if schedule == "dataflow" else h.memory(p)
        total = {k: v + m[k] for k, v in total.items()}
        if h.has_core:
            per.append({"name": p.layer.name, "rom_bits": m["rom"], "dense_bits": m["dense"], "csr_bits": m["csr"]})
    return {"rom_bits": total["rom"], "dense_bits": total["dense"], "csr_bits": total["csr"],
            "line_buffer_bits": total["line_buffer"], "window_bits": total["window"], "per_layer": per}
