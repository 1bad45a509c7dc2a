"""Code generation for :class:`kofn.core.ir.GlobalAvgPoolLayer`: global average pooling as an
image stage (``hw_templates/verilog/kofn_gap.sv``) with no MAC core and no ROMs.  Like the max
pool it forwards beats combinationally (no cycles added, :class:`~kofn.codegen.handler.PoolHandler`): the sums of every pixel but the last
are kept, and the last pixel's C beats leave with the channels' rounded means
(:func:`kofn.core.fixed.avg_pool_codes`, divided as :func:`kofn.core.fixed.const_divider`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.fixed import ConstDivider, const_divider
from ..core.rules import index_bits
from .cells import DSP_PORTS, StagePath, lutram_levels, uses_dsp
from .dataflow import StreamFilter
from .handler import PoolHandler, param

__all__ = ["GapHandler", "GAP_MODULE", "GapFilter", "gap_divider", "gap_params"]

GAP_MODULE = "kofn_gap"


def gap_divider(L) -> tuple[int, ConstDivider]:
    """``(SHL, divider)`` of layer ``L``: the sum of a channel's codes is shifted left by SHL
    (the output's extra fraction bits) and divided by ``divider.den`` (the area, times 2 per
    fraction bit the output drops), for every sum the input format allows."""
    h, w, _ = L.in_shape
    n = h * w
    sh = L.output_fmt.frac - L.input_fmt.frac
    shl, den = max(sh, 0), n << max(-sh, 0)
    fi = L.input_fmt
    return shl, const_divider(den, (fi.min_int * n) << shl, (fi.max_int * n) << shl)


def sum_bits(L) -> int:
    """Width of a channel's running sum in kofn_gap (its S_W): the input width, the bits of the
    area and a sign."""
    return L.input_fmt.width + index_bits(L.in_shape[0] * L.in_shape[1] + 1) + 1


@dataclass(frozen=True)
class GapParams:
    """kofn_gap's parameters: widths and the divider's constants."""

    shl: int
    u_w: int
    offset: int
    m_w: int
    mult: int
    shift: int
    q_w: int
    bias: int
    omin: int
    omax: int


def gap_params(L) -> GapParams:
    shl, d = gap_divider(L)
    u_w = max(1, (d.hi + d.offset).bit_length())
    q_max = ((d.hi + d.offset) * d.mult) >> d.shift
    q_w = max(1, q_max.bit_length())
    o = L.output_fmt
    # y lies in [-BIAS, q_max - BIAS]: the clamp's bounds within Q_W + 1 signed bits change nothing
    omin, omax = max(o.min_int, -(1 << q_w)), min(o.max_int, (1 << q_w) - 1)
    return GapParams(shl, u_w, d.offset, max(1, d.mult.bit_length()), d.mult, d.shift, q_w, d.bias, omin, omax)


class GapFilter(StreamFilter):
    """Global average pooling on an HWC stream: the last pixel's C beats pass."""

    def passes_beat(self, i: int) -> bool:
        return i % self.frame >= (self.h * self.w - 1) * self.c


class GapHandler(PoolHandler):
    kind = "gap"
    module = GAP_MODULE
    component = "gap"
    modules = (GAP_MODULE,)
    df_modules = (GAP_MODULE,)
    hls_templates = {"cpp": "hls/layer_gap.cpp.j2", "h": "hls/layer_gap.h.j2"}

    def dsp(self, plan, family: str) -> int:
        """The divider's constant multiply: none where ``MULT`` is a power of two (a shift),
        else one DSP48 where the operands fit it, else the tiles of the split multiply."""
        g = gap_params(plan.layer)
        if g.mult & (g.mult - 1) == 0:
            return 0
        if uses_dsp(g.u_w + 1, g.m_w + 1, family):
            return 1
        big, small = DSP_PORTS[family]
        return math.ceil((g.u_w + 1) / (big - 1)) * math.ceil((g.m_w + 1) / (small - 1))

    def features(self, plan, family: str) -> dict[str, dict[str, float]]:
        """First-principles counts (not calibrated yet; within about 20 % of Yosys on the test
        designs): the sums' memory (distributed RAM, 32 words a LUT per bit), the adder, the
        divider's offset add (its multiply is a DSP or a shift, :meth:`dsp`), the clamp, the
        counters; the counters' and flags' registers."""
        L = plan.layer
        h, w, c = L.in_shape
        g = gap_params(L)
        s_w = sum_bits(L)
        return {
            "gap_lut": {"buf": s_w * math.ceil(c / 32), "add": s_w, "div": g.u_w, "clamp": g.q_w + 1,
                        "ctr": index_bits(c) + index_bits(h * w), "one": 1.0},
            "gap_ff": {"ctr": index_bits(c) + index_bits(h * w), "flags": 3.0, "one": 1.0},
        }

    def memory(self, plan) -> dict[str, int]:
        """The channels' running sums."""
        L = plan.layer
        return {"rom": 0, "dense": 0, "csr": 0, "line_buffer": L.in_shape[2] * sum_bits(L), "window": 0}

    def _desc(self, plan) -> str:
        (h, w, c), L = plan.layer.in_shape, plan.layer
        return f"global average pool, {h}x{w}x{c} -> 1x1x{c} ({L.input_fmt.describe()} -> {L.output_fmt.describe()})"

    def _params(self, plan) -> list:
        L = plan.layer
        h, w, c = L.in_shape
        g = gap_params(L)
        return [[param("H", h), param("W", w), param("C", c), param("A_W", L.input_fmt.width),
                 param("SIGNED", bool(L.input_fmt.signed)), param("O_W", L.output_fmt.width), param("SHL", g.shl),
                 param("U_W", g.u_w), param("OFFSET", g.offset, g.u_w), param("M_W", g.m_w),
                 param("MULT", g.mult, g.m_w), param("SHIFT", g.shift), param("Q_W", g.q_w),
                 param("BIAS", g.bias, g.q_w), param("OMIN", g.omin, g.q_w + 1), param("OMAX", g.omax, g.q_w + 1)]]

    def hls_ctx(self, plan, in_type_name: str) -> dict:
        L = plan.layer
        h, w, c = L.in_shape
        shl, d = gap_divider(L)
        fi, fo = L.input_fmt, L.output_fmt
        return {**self._hls_base(plan, in_type_name), "out_type_name": f"{L.name}_out_t",
                "out_type": fo.ap_type(), "h": h, "w": w, "c_in": c, "shl": shl, "den": d.den,
                "in_code_t": f"ap_{'' if fi.signed else 'u'}int<{fi.width}>",
                "out_code_t": f"ap_{'' if fo.signed else 'u'}int<{fo.width}>",
                "in_w": fi.width, "out_w": fo.width, "omin": fo.min_int, "omax": fo.max_int,
                "desc": self._desc(plan)}

    # -- dataflow ------------------------------------------------------------------------
    def df_paths(self, plan, values: int) -> list[StagePath]:
        """The sum (a distributed-RAM read, then the adder) into the divider: the add of the
        offset, the constant multiply and the clamp, all in the beat's own cycle."""
        L = plan.layer
        g = gap_params(L)
        c = L.in_shape[2]
        s_w = sum_bits(L)
        pow2 = g.mult & (g.mult - 1) == 0
        levels = lutram_levels(max(1, c)) + 2 + (0 if pow2 else math.ceil(math.log2(max(2, g.m_w)))) + 2
        return [StagePath(f"u_{L.name}", "sum and divide", levels, s_w, g.u_w + g.m_w)]

    def df_filter(self, plan) -> GapFilter:
        return GapFilter(plan.layer.in_shape)
