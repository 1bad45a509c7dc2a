"""Code generation for :class:`kofn.core.ir.DenseLayer`: a vector layer on the MAC core,
behind the collector; dense layers run one after another, each started by the previous
one's ``done``."""

from __future__ import annotations

from .dataflow import DenseStage
from .handler import MacHandler, end_ports, nets, param, port, stream_tags, vecbuf_instance
from ..core.rules import index_bits
from .cells import (StagePath, bank_ram, bankbuf_features, bankbuf_write_path, mux_levels, vecbuf_features,
                    vecbuf_write_path)
from .rom import steps_per_row

__all__ = ["DenseHandler", "PIPELINE_CYCLES"]

PIPELINE_CYCLES = 4  # ROM read, multiply, accumulate, write-back (incl. start hand-off)


class DenseHandler(MacHandler):
    kind = "dense"
    df_banks = 2  # its dataflow core reads a ping-pong vector buffer
    tags_results = "pos"  # its core's row is the result's position in the next vector
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

    # -- dataflow ------------------------------------------------------------------------
    def df_period(self, layer, lanes: int) -> int:
        """Busy cycles per inference of the layer's dataflow stage at ``lanes``."""
        return layer.rows * steps_per_row(layer.k, lanes)

    def df_mem(self, layer) -> bool:
        """A bank layer's dataflow stage keeps its inputs in P memories (``kofn_bankbuf``), one
        per lane: no register vector, no multiplexers."""
        return self.banks(layer) > 1

    def bank_ram(self, plan) -> tuple[int, bool]:
        """``(depth, lutram)`` of each of the stage's P bank memories (:func:`~kofn.codegen.cells.bank_ram`)."""
        return bank_ram(plan.layer.n // plan.lanes, plan.layer.input_fmt.width)

    def df_brams(self, plan) -> list[tuple[int, int]]:
        if not self.df_mem(plan.layer):
            return []
        depth, lutram = self.bank_ram(plan)
        return [] if lutram else [(depth, plan.layer.input_fmt.width)] * plan.lanes

    def df_features(self, plan, family: str, values: int, tagged: str = "") -> list[tuple[str, str, dict]]:
        L, n = plan.layer, plan.layer.name
        core = self.features(plan, family, df=True)
        if self.df_mem(L):
            # bank memories, and a core without gather: its own component (what is left is the
            # ROMs, the adder tree, the accumulator and requantization, and the control)
            lut = core["core_lut"]
            mcore = {"rom": lut["rom"], "mul": lut["mul"], "tree": lut["tree"],
                     "add": L.accumulator.width + max(L.accumulator.width, L.output_fmt.width + 1) + 1, "one": 1.0}
            return [(f"u_{n}_buf", "bbuf", bankbuf_features(L.n, plan.lanes, L.input_fmt.width, values, tagged)),
                    (f"u_{n}_ctrl", "dfctl", {"lut": {"one": 1.0}, "ff": {"one": 3.0}}),  # bank + 2 reservations
                    (f"u_{n}_mac", "dfmcore", {"lut": mcore, "ff": core["core_ff"]})]
        return [(f"u_{n}_buf", "buf", vecbuf_features(L.n, L.input_fmt.width, values, tagged)),
                (f"u_{n}_ctrl", "dfctl", {"lut": {"one": 1.0}, "ff": {"one": 3.0}}),  # bank + 2 reservations
                (f"u_{n}_mac", "dfcore", {"lut": core["core_lut"], "ff": core["core_ff"]})]

    def df_paths(self, plan, values: int) -> list[StagePath]:
        """The buffer's registered write (:func:`~kofn.codegen.cells.vecbuf_write_path`); the
        start control (the core's last-issue test on its address counter and the bank flags,
        into five flip-flops: the core's `run` and bank, the controller's bank, the two
        reservations; the counters rest at zero and take no reset from it); then the core's
        paths."""
        L, n = plan.layer, plan.layer.name
        ad = index_bits(plan.depth)
        write = bankbuf_write_path(f"u_{n}_buf", L.n, plan.lanes, L.input_fmt.width, values) if self.df_mem(L) else \
            vecbuf_write_path(f"u_{n}_buf", L.n, L.input_fmt.width, values)
        return [write,
                StagePath(f"u_{n}_ctrl", "start", 1 + mux_levels(2 ** ad), ad, 5),
                *self.core_paths(plan, f"u_{n}_mac")]

    def df_memory(self, plan) -> dict[str, int]:
        return {**self.memory(plan), "line_buffer": 2 * plan.layer.n * plan.layer.input_fmt.width}

    def df_stage(self, plan, rel_early: int = 0) -> DenseStage:
        return DenseStage(plan.layer.name, plan.layer.rows, plan.steps, self.df_pipeline(plan).extra, rel_early)

    def df_verilog(self, plan, rom_prefix: str, src: str, values: int, down_rel: tuple[str, str],
                   rel_early: int = 0, tags: dict | None = None) -> dict:
        """The layer as a dataflow stage: its ping-pong input buffer (written by stream ``src``,
        ``values`` per beat), its start control and its core, whose results leave as the stream
        ``res_<name>`` with their tags (``res_<name>_pos``, ``_last``, ``_bank``: row, frame end,
        bank); ``down_rel``: the nets by which the next stage releases a bank of the next
        buffer (``rel``, ``rel_bank``), which end the core's reservation of that bank.
        ``tags``: what ``src`` carries (:func:`~kofn.codegen.handler.stream_tags`; ``None``
        behind s_axis): the buffer takes each beat's bank and frame end from them, and its
        position where the tags hold one (``kofn_vecbuf``'s TAGGED, ``kofn_bankbuf``'s TAGGED,
        which counts positions)."""
        L = plan.layer
        n, a_w = L.name, L.input_fmt.width
        mem = self.df_mem(L)
        ports = [port("clk", "aclk"), port("rst", "rst"), port("in_valid", f"{src}_valid"),
                 port("in_ready", f"{src}_ready"), port("in_data", f"{src}_data"), port("full", f"full_{n}"),
                 port("rel", f"rel_{n}"), port("rel_bank", f"relb_{n}")]
        if mem:  # P bank memories, read by the core's lanes
            if values > plan.lanes:
                raise ValueError(f"layer {n!r}: its {plan.lanes} bank memories take at most {plan.lanes} values "
                                 f"per beat, not {values}")
            depth, lutram = self.bank_ram(plan)
            la = index_bits(L.n // plan.lanes)
            buf = {"name": f"u_{n}_buf", "module": "kofn_bankbuf",
                   "params": [[param("N", L.n), param("P", plan.lanes), param("A_W", a_w), param("V", values),
                               param("LA_W", la), param("BLOCK", not lutram), param("TAGGED", tags is not None)]],
                   "ports": ports[:5] + end_ports(tags) + ports[5:]
                   + [port("rd_addr", f"maddr_{n}"), port("rd_data", f"mdata_{n}")]}
            act = [nets(f"maddr_{n}", width=plan.lanes * (la + 1)), nets(f"mdata_{n}", width=plan.lanes * a_w)]
        else:
            buf = vecbuf_instance(f"u_{n}_buf", L.n, a_w, values, src, tags,
                                  ports[5:] + [port("bank_flat", f"act_{n}")])
            act = [nets(f"act_{n}", width=2 * L.n * a_w)]
        ctrl = {"name": f"u_{n}_ctrl", "module": "kofn_df_ctrl", "params": [],
                "ports": [port("clk", "aclk"), port("rst", "rst"), port("in_full", f"full_{n}"),
                          port("out_rel", down_rel[0]), port("out_rel_bank", down_rel[1]), port("can_start", f"last_{n}"), port("start", f"start_{n}"),
                          port("bank", f"bank_{n}")]}
        df = {"start_bank": f"bank_{n}", "issue_last": f"last_{n}", "rel": f"rel_{n}", "rel_bank": f"relb_{n}",
              "res_valid": f"res_{n}_valid", "res_data": f"res_{n}_data", "res_pos": f"res_{n}_pos",
              "res_last": f"res_{n}_last", "res_bank": f"res_{n}_bank"}
        if mem:
            df.update(mem_addr=f"maddr_{n}", mem_data=f"mdata_{n}")
        core = self.mac_instance(plan, rom_prefix, f"u_{n}_mac", f"start_{n}", "1'b0" if mem else f"act_{n}", "", "",
                                 banks=2, rel_early=rel_early, df=df)
        return {"nets": [nets(f"full_{n}", width=2), nets(f"rel_{n}", f"relb_{n}", f"start_{n}", f"bank_{n}",
                                                             f"last_{n}", f"res_{n}_valid", f"res_{n}_ready",
                                                             f"res_{n}_last", f"res_{n}_bank"),
                         *act, nets(f"res_{n}_data", width=L.output_fmt.width),
                         nets(f"res_{n}_pos", width=index_bits(L.rows))],
                "block": {"comment": f"{n}: dense {L.n} -> {L.rows}, k={L.k}, P={plan.lanes}, "
                                     f"{plan.steps} step(s) per neuron"
                                     + (f", inputs in {plan.lanes} bank memories of {L.n // plan.lanes}" if mem else ""),
                           "instances": [buf, ctrl, core]},
                "out": f"res_{n}", "tags": stream_tags(f"res_{n}", self.tags_results),
                "unused": [tags["pos"]] if tags and mem and tags["pos"] else []}
