"""Code generation for :class:`kofn.core.ir.DenseLayer`: a vector layer on the MAC core,
behind the collector; dense layers run one after another, each started by the previous
one's ``done``."""

from __future__ import annotations

from .handler import MacHandler, nets

__all__ = ["DenseHandler", "PIPELINE_CYCLES"]

PIPELINE_CYCLES = 4  # ROM read, multiply, accumulate, write-back (incl. start hand-off)


class DenseHandler(MacHandler):
    kind = "dense"
    hls_templates = {"cpp": "hls/layer_dense.cpp.j2", "h": "hls/layer_dense.h.j2"}

    def entries_per_row(self, layer) -> int:
        return layer.k

    def cycles(self, plan) -> int:
        return plan.depth + PIPELINE_CYCLES

    def verilog(self, plan, rom_prefix: str, i: int, down_idle: list[str]) -> dict:
        """Dense layer ``i`` (from 0): started by ``start0`` or the previous layer's ``done``,
        reading ``in_flat`` (the collector) or the previous layer's ``out``."""
        L = plan.layer
        inst = self.mac_instance(plan, rom_prefix, f"u_{L.name}", "start0" if i == 0 else f"done{i - 1}",
                                 "in_flat" if i == 0 else f"out{i - 1}", f"out{i}", f"done{i}")
        return {"nets": [nets(f"out{i}", width=L.rows * L.output_fmt.width, type="logic"),
                         nets(f"done{i}", type="logic")],
                "block": {"comment": None, "instances": [inst]}}
