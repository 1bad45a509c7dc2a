"""Code generation for :class:`kofn.core.ir.MaxPool2dLayer`: a 2x2 max pool image stage
(``hw_templates/verilog/kofn_maxpool.sv``) with no MAC core and no ROMs.  It forwards beats
combinationally, so it adds no cycles; odd trailing rows and columns are dropped."""

from __future__ import annotations

import math

from ..core.rules import index_bits
from .cells import StagePath, lutram_levels
from .dataflow import PoolFilter
from .handler import Handler, nets, param, port

__all__ = ["MaxPoolHandler", "POOL_MODULE"]

POOL_MODULE = "kofn_maxpool"


class PoolWalk:
    """One pool in the schedule walk: the beat completing a 2x2 window passes on at once."""

    def __init__(self, p):
        self.h, self.w, self.c = p.layer.in_shape
        self.i = 0

    def feed(self, t, nxt):
        i, self.i = self.i, (self.i + 1) % (self.h * self.w * self.c)
        y, x = divmod(i // self.c, self.w)
        if y < self.h // 2 * 2 and x < self.w // 2 * 2 and x % 2 and y % 2:
            return nxt(t)
        return 0


class MaxPoolHandler(Handler):
    kind = "maxpool"
    image = True
    modules = (POOL_MODULE,)
    hls_templates = {"cpp": "hls/layer_maxpool.cpp.j2", "h": "hls/layer_maxpool.h.j2"}

    def cycles(self, plan) -> int:
        return 0

    def walker(self, plan) -> PoolWalk:
        return PoolWalk(plan)

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

    def verilog(self, plan, rom_prefix: str, i: int, down_idle: list[str]) -> dict:
        L = plan.layer
        h, w, c_in = L.in_shape
        inst = {"name": f"u_{L.name}", "module": POOL_MODULE,
                "params": [[param("H", h), param("W", w), param("C", c_in), param("A_W", L.input_fmt.width),
                            param("SIGNED", bool(L.input_fmt.signed))]],
                "ports": self._stream_ports(i)}
        return {"nets": self._stream_nets(i, L.output_fmt.width),
                "block": {"comment": f"{L.name}: {self._desc(plan)}", "instances": [inst]}}

    def hls_ctx(self, plan, in_type_name: str) -> dict:
        L = plan.layer
        (h, w, c_in), (oh, ow, _) = L.in_shape, L.out_shape
        return {**self._hls_base(plan, in_type_name), "out_type_name": in_type_name, "h": h, "w": w, "c_in": c_in,
                "oh": oh, "ow": ow, "desc": f"2x2 max pool, {h}x{w}x{c_in} -> {oh}x{ow}x{c_in}"}

    # -- dataflow ------------------------------------------------------------------------
    df_modules = (POOL_MODULE,)

    def df_features(self, plan, family: str, values: int, tagged: str = "") -> list[tuple[str, str, dict]]:
        f = self.features(plan, family)
        return [(f"u_{plan.layer.name}", "pool", {"lut": f["pool_lut"], "ff": f["pool_ff"]})]

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

    def df_pool_verilog(self, plan, src: str, dst: str, reserved: bool, tags: dict | None = None) -> dict:
        """The pool between stream ``src`` and a new stream ``dst``; ``reserved``: ``src`` comes
        from a MAC core whose output bank is reserved, so every beat is taken at once (the
        buffer behind never refuses a pooled beat, and dropped beats must not wait either).
        ``tags``: what ``src`` carries (:func:`~kofn.codegen.handler.stream_tags`); ``dst``
        carries the same nets (the pool forwards a beat in its own cycle, and the producer's end
        strobe does not go through it: the pool may drop the frame's last beat)."""
        L = plan.layer
        h, w, c_in = L.in_shape
        inst = {"name": f"u_{L.name}", "module": POOL_MODULE,
                "params": [[param("H", h), param("W", w), param("C", c_in), param("A_W", L.input_fmt.width),
                            param("SIGNED", bool(L.input_fmt.signed))]],
                "ports": [port("clk", "aclk"), port("rst", "rst"), port("in_valid", f"{src}_valid"),
                          port("in_ready", f"{src}_ready"), port("in_data", f"{src}_data"),
                          port("out_valid", f"{dst}_valid"), port("out_ready", "1'b1" if reserved else f"{dst}_ready"),
                          port("out_data", f"{dst}_data")]}
        return {"nets": [nets(f"{dst}_valid", f"{dst}_ready"), nets(f"{dst}_data", width=L.output_fmt.width)],
                "block": {"comment": f"{L.name}: {self._desc(plan)}", "instances": [inst]},
                "out": dst, "tags": tags}
