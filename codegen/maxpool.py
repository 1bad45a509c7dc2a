"""Code generation for :class:`kofn.core.ir.MaxPool2dLayer`: a 2x2 max pool image stage
(``hw_templates/verilog/kofn_maxpool.sv``) with no MAC core and no ROMs.  It forwards beats
combinationally, so it adds no cycles; odd trailing rows and columns are dropped
(:class:`~kofn.codegen.handler.PoolHandler`)."""

from __future__ import annotations

import math

from ..core.rules import index_bits
from .cells import StagePath, lutram_levels
from .dataflow import PoolFilter
from .handler import PoolHandler, param

__all__ = ["MaxPoolHandler", "POOL_MODULE"]

POOL_MODULE = "kofn_maxpool"


class MaxPoolHandler(PoolHandler):
    kind = "maxpool"
    module = POOL_MODULE
    component = "pool"
    modules = (POOL_MODULE,)
    df_modules = (POOL_MODULE,)
    hls_templates = {"cpp": "hls/layer_maxpool.cpp.j2", "h": "hls/layer_maxpool.h.j2"}

    def features(self, plan, family: str) -> dict[str, dict[str, float]]:
        L = plan.layer
        h, w, c = L.in_shape
        depth = (w // 2) * c
        return {
            "pool_lut": {"buf": L.input_fmt.width * math.ceil(depth / 32), "cmp": L.input_fmt.width,
                         "ctr": index_bits(c) + index_bits(w) + index_bits(h), "one": 1.0},
            "pool_ff": {"ctr": index_bits(c) + index_bits(w) + index_bits(h), "addr": index_bits(depth), "one": 1.0},
        }

    def memory(self, plan) -> dict[str, int]:
        """The row of running maxima."""
        L = plan.layer
        return {"rom": 0, "dense": 0, "csr": 0, "line_buffer": (L.in_shape[1] // 2) * L.in_shape[2] * L.input_fmt.width,
                "window": 0}

    def _desc(self, plan) -> str:
        (h, w, c_in), (oh, ow, c_out) = plan.layer.in_shape, plan.layer.out_shape
        return f"2x2 max pool, {h}x{w}x{c_in} -> {oh}x{ow}x{c_out}"

    def _params(self, plan) -> list:
        L = plan.layer
        h, w, c_in = L.in_shape
        return [[param("H", h), param("W", w), param("C", c_in), param("A_W", L.input_fmt.width),
                 param("SIGNED", bool(L.input_fmt.signed))]]

    def hls_ctx(self, plan, in_type_name: str) -> dict:
        L = plan.layer
        (h, w, c_in), (oh, ow, _) = L.in_shape, L.out_shape
        return {**self._hls_base(plan, in_type_name), "out_type_name": in_type_name, "h": h, "w": w, "c_in": c_in,
                "oh": oh, "ow": ow, "desc": f"2x2 max pool, {h}x{w}x{c_in} -> {oh}x{ow}x{c_in}"}

    # -- dataflow ------------------------------------------------------------------------
    def df_paths(self, plan, values: int) -> list[StagePath]:
        """The running maximum: the compare (a carry chain of the activation width) and its
        multiplexer, whose result is also the next stage's buffer write; and the buffer's
        read-ahead (the next address, a distributed-RAM read and the bypass multiplexer)."""
        L = plan.layer
        h, w, c = L.in_shape
        depth = max(1, (w // 2) * c)
        a_w = L.input_fmt.width
        return [StagePath(f"u_{L.name}", "compare", 3, a_w, 2 * a_w),
                StagePath(f"u_{L.name}", "buffer read-ahead", lutram_levels(depth) + 2, index_bits(depth), a_w)]

    def df_filter(self, plan) -> PoolFilter:
        return PoolFilter(plan.layer.in_shape)
