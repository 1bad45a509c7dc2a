"""Code generation for :class:`kofn.core.ir.Conv2dLayer`: an image stage
(``hw_templates/verilog/kofn_conv.sv``: line buffer, window generator and serializer)
around a MAC core that computes one window's ``C_out`` filters at a time.

Weight level packs like a dense layer over the window (``n = K*K*C_in``); kernel level
keeps whole kernels: the index ROM holds one word per filter with its ``k`` kept input
channels, and the taps of a kept kernel need no index (:mod:`kofn.codegen.packing`)."""

from __future__ import annotations

from ..core.rules import index_bits
from .cells import StagePath, lutram_levels, mux_levels, mux_luts, reachable
from .dataflow import ConvStage
from .handler import CORE_MODULE, KEEP_REG_MODULE, MacHandler, end_ports, nets, param, port, stream_tags
from .rom import rom_in_bram, steps_per_row, unpack_entries

__all__ = ["ConvHandler", "CONV_MODULE", "CONV_DF_MODULE", "WINDOW_CYCLES"]

CONV_MODULE = "kofn_conv"  # line buffer + window generator + serializer around a core
CONV_DF_MODULE = "kofn_conv_df"  # dataflow: ping-pong frame buffer + window loader
WINDOW_CYCLES = 6  # per convolution window: latch, start, 3 pipeline stages, done hand-off


class ConvWalk:
    """One convolution in the schedule walk: rows complete as their last beat arrives; each
    completed row lets the output rows it finishes run, window by window, and every result
    beat waits for the downstream work it causes."""

    def __init__(self, p, window_cycles: int):
        L = p.layer
        self.h, self.w, self.c = L.in_shape
        self.oh, self.ow, self.c_out = L.out_shape
        self.k, self.s, self.pad = L.kernel, L.stride, L.pad
        self.window = p.depth + window_cycles + self.c_out
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


class ConvHandler(MacHandler):
    kind = "conv"
    image = True
    tags_results = "frame"  # bank and frame end strobe, not the position (a core's row is a channel)
    modules = (CORE_MODULE, CONV_MODULE)
    hls_templates = {"cpp": "hls/layer_conv.cpp.j2", "h": "hls/layer_conv.h.j2"}

    def kernel_level(self, layer) -> bool:
        return layer.granularity == "kernel"

    def entries_per_row(self, layer) -> int:
        return layer.k_eff

    # -- latency -------------------------------------------------------------------------
    def cycles(self, plan) -> int:
        oh, ow, c_out = plan.layer.out_shape
        return oh * ow * (plan.depth + WINDOW_CYCLES + c_out)

    def walker(self, plan) -> ConvWalk:
        return ConvWalk(plan, WINDOW_CYCLES)

    # -- resources -----------------------------------------------------------------------
    def lane_inputs(self, plan, padded: bool = False) -> list[int]:
        L, p = plan.layer, plan
        if not self.kernel_level(L):
            return super().lane_inputs(plan, padded)
        # lane q reads tap (s*P + q) % KK of kernel (s*P + q) // KK at step s: the taps are
        # constants of the step (one tap when P is a multiple of K*K), the channel comes
        # from the channel ROM
        ch = unpack_entries(p.roms.index, L.k)
        out = []
        for q in range(p.lanes):
            es = [s * p.lanes + q for s in range(p.steps)]
            taps = {e % L.taps for e in es}
            kerns = sorted({e // L.taps for e in es if e // L.taps < L.k})
            n_ch = reachable(ch[:, kerns], L.in_channels) if kerns else 1
            out.append(len(taps) * n_ch)
        return out

    def features(self, plan, family: str) -> dict[str, dict[str, float]]:
        """The core's features plus the front end's ``conv_lut`` and ``conv_ff``."""
        L = plan.layer
        out = super().features(plan, family)
        h, w, c = L.in_shape
        k = L.kernel
        px = c * L.input_fmt.width
        c_out = L.out_shape[2]
        out["conv_lut"] = {"lbwe": k * w * c, "rowmux": k * w * px * mux_luts(k), "pxmux": k * k * px * mux_luts(w),
                           "ser": L.output_fmt.width * mux_luts(c_out), "one": 1.0}
        out["conv_ff"] = {"lb": k * w * px, "win": k * k * px, "ctr": 6 * index_bits(max(h, w) + k), "one": 1.0}
        return out

    def memory(self, plan) -> dict[str, int]:
        L = plan.layer
        return {**super().memory(plan), "line_buffer": L.kernel * L.in_shape[1] * L.in_shape[2] * L.input_fmt.width,
                "window": L.n * L.input_fmt.width}

    # -- rendering -----------------------------------------------------------------------
    def _desc(self, plan) -> str:
        L = plan.layer
        (h, w, c_in), (oh, ow, c_out) = L.in_shape, L.out_shape
        return f"conv {L.kernel}x{L.kernel}/{L.stride} pad {L.pad}, {h}x{w}x{c_in} -> {oh}x{ow}x{c_out}"

    def idle_net(self, plan) -> str:
        return f"idle_{plan.layer.name}"

    def verilog(self, plan, rom_prefix: str, i: int, down_idle: list[str]) -> dict:
        L = plan.layer
        (h, w, c_in), (oh, ow, c_out) = L.in_shape, L.out_shape
        a_w, o_w = L.input_fmt.width, L.output_fmt.width
        name = L.name
        what = f"k={L.k} of {L.in_channels} kernels" if self.kernel_level(L) else f"k={L.k} of {L.n} weights"
        front = {
            "name": f"u_{name}", "module": CONV_MODULE,
            "params": [[param("H", h), param("W", w), param("C_IN", c_in), param("K", L.kernel),
                        param("STRIDE", L.stride), param("PAD", L.pad)],
                       [param("OH", oh), param("OW", ow), param("C_OUT", c_out), param("A_W", a_w), param("O_W", o_w)]],
            "ports": self._stream_ports(i) + [
                port("down_idle", all_of=list(down_idle)), port("idle", f"idle_{name}"),
                port("win_flat", f"win_{name}"), port("core_start", f"start_{name}"),
                port("core_out", f"res_{name}"), port("core_done", f"done_{name}")],
        }
        core = self.mac_instance(plan, rom_prefix, f"u_{name}_mac", f"start_{name}", f"win_{name}", f"res_{name}",
                                 f"done_{name}")
        return {
            "nets": self._stream_nets(i, o_w) + [
                nets(f"idle_{name}", f"start_{name}", f"done_{name}"),
                nets(f"win_{name}", width=L.n * a_w),
                nets(f"res_{name}", width=c_out * o_w)],
            "block": {"comment": f"{name}: {self._desc(plan)}, {what} per filter, P={plan.lanes}",
                      "instances": [front, core]},
        }

    def hls_ctx(self, plan, in_type_name: str) -> dict:
        L = plan.layer
        (h, w, c_in), (oh, ow, _) = L.in_shape, L.out_shape
        return {**super().hls_ctx(plan, in_type_name), "h": h, "w": w, "c_in": c_in, "oh": oh, "ow": ow,
                "kernel": L.kernel, "conv_stride": L.stride, "pad": L.pad, "taps": L.taps, "kept_kernels": L.k,
                "desc": f"conv {L.kernel}x{L.kernel}/{L.stride} pad {L.pad}, {h}x{w}x{c_in} -> {oh}x{ow}x{L.rows}"}

    # -- dataflow ------------------------------------------------------------------------
    df_modules = (KEEP_REG_MODULE, CORE_MODULE, CONV_DF_MODULE)

    def df_period(self, layer, lanes: int) -> int:
        """Busy cycles per inference of the layer's dataflow stage at ``lanes``: a pixel costs
        max(D, K + 3) (:class:`kofn.codegen.dataflow.ConvStage`)."""
        oh, ow, c_out = layer.out_shape
        return oh * ow * max(c_out * steps_per_row(layer.k_eff, lanes), layer.kernel + 3)

    @staticmethod
    def frame_ram(layer) -> tuple[int, int]:
        """``(depth, width)`` of each of the K frame-buffer RAMs of ``kofn_conv_df``: both
        banks of every K-th input row, one pixel (C_in values) per word."""
        h, w, c = layer.in_shape
        return 2 * -(-h // layer.kernel) * w, c * layer.input_fmt.width

    def df_brams(self, plan) -> list[tuple[int, int]]:
        depth, width = self.frame_ram(plan.layer)
        return [(depth, width)] * plan.layer.kernel if rom_in_bram(depth, width) else []

    def df_features(self, plan, family: str, values: int, tagged: bool = False) -> list[tuple[str, str, dict]]:
        L, n = plan.layer, plan.layer.name
        h, w, c = L.in_shape
        k, a_w = L.kernel, L.input_fmt.width
        depth, width = self.frame_ram(L)
        lutram = not rom_in_bram(depth, width)
        core = MacHandler.features(self, plan, family, df=True)
        front = {"lut": {"land": L.n * a_w * mux_luts(k), "ram": k * width * -(-depth // 64) if lutram else 0,
                         "addr": k * index_bits(depth), "one": 1.0},
                 "ff": {"win": 2 * L.n * a_w, "stage": (c - 1) * a_w + width + index_bits(depth), "rd": k * width if lutram else 0,
                        "ctr": 8 * index_bits(max(h, w) + k), "one": 1.0}}
        return [(f"u_{n}", "convdf", front), (f"u_{n}_mac", "dfcore", {"lut": core["core_lut"], "ff": core["core_ff"]})]

    def df_paths(self, plan, values: int) -> list[StagePath]:
        """The frame buffer's read and registered write (K RAMs of :meth:`frame_ram`'s shape,
        their addresses feeding every cell: 4 bits per distributed-RAM cell of 16 words), its
        write-address counter, the window's load (one enable for the whole window register),
        then the core's paths."""
        L, n = plan.layer, plan.layer.name
        depth, width = self.frame_ram(L)
        k, a_w = L.kernel, L.input_fmt.width
        if rom_in_bram(depth, width):
            ram = [StagePath(f"u_{n}", "frame read", 1, index_bits(depth), k),
                   StagePath(f"u_{n}", "frame write", 2, 0, k)]
        else:
            cells = k * -(-width // 4) * -(-depth // 16)  # distributed-RAM cells of 16 x 4 bits
            ram = [StagePath(f"u_{n}", "frame read", lutram_levels(depth) + mux_levels(k), index_bits(depth), cells),
                   StagePath(f"u_{n}", "frame write", 1 + mux_levels(-(-depth // 16)), 0, cells)]
        return [*ram, StagePath(f"u_{n}", "write address", 2, index_bits(depth)),
                StagePath(f"u_{n}", "window load", 2, 0, L.n * a_w), *self.core_paths(plan, f"u_{n}_mac")]

    def df_memory(self, plan) -> dict[str, int]:
        L = plan.layer
        depth, width = self.frame_ram(L)
        return {**super().memory(plan), "line_buffer": L.kernel * depth * width, "window": 2 * L.n * L.input_fmt.width}

    def df_stage(self, plan, rel_early: int = 0) -> ConvStage:  # its frame buffer releases on the last read
        return ConvStage(plan.layer.name, plan.layer.out_shape, plan.layer.kernel, plan.steps,
                         self.df_pipeline(plan).extra)

    def df_verilog(self, plan, rom_prefix: str, src: str, values: int, down_rel: tuple[str, str],
                   rel_early: int = 0, tags: dict | None = None) -> dict:
        """The layer as a dataflow stage (``kofn_conv_df``: frame buffer written by stream ``src``,
        window loader) and its core, whose results leave as the stream ``res_<name>``.  ``tags``:
        what ``src`` carries (:func:`~kofn.codegen.handler.stream_tags`; ``None`` behind s_axis):
        the frame buffer takes bank and frame end from them, else it counts its pixels.  Its
        results carry their bank and, on the frame's last window, the tag that makes its end
        strobe; not a position: a conv core's row is an output channel."""
        if values != 1:
            raise ValueError(f"layer {plan.layer.name!r}: a convolution takes one value per beat, not {values}")
        L = plan.layer
        (h, w, c_in), (oh, ow, c_out) = L.in_shape, L.out_shape
        n, a_w = L.name, L.input_fmt.width
        what = f"k={L.k} of {L.in_channels} kernels" if self.kernel_level(L) else f"k={L.k} of {L.n} weights"
        front = {
            "name": f"u_{n}", "module": CONV_DF_MODULE,
            "params": [[param("H", h), param("W", w), param("C_IN", c_in), param("K", L.kernel),
                        param("STRIDE", L.stride), param("PAD", L.pad)],
                       [param("OH", oh), param("OW", ow), param("A_W", a_w),
                        param("RAM_BLOCK", bool(self.df_brams(plan))), param("TAGGED", tags is not None)]],
            "ports": [port("clk", "aclk"), port("rst", "rst"), port("in_valid", f"{src}_valid"),
                      port("in_ready", f"{src}_ready"), port("in_data", f"{src}_data"), *end_ports(tags),
                      port("full", f"full_{n}"), port("rel", f"rel_{n}"), port("rel_bank", f"relb_{n}"),
                      port("down_rel", down_rel[0]), port("down_rel_bank", down_rel[1]), port("win_flat", f"win_{n}"),
                      port("core_start", f"start_{n}"), port("core_bank", f"wbank_{n}"),
                      port("core_tag", f"wtag_{n}"), port("core_issue_first", f"first_{n}"),
                      port("core_issue_last", f"last_{n}")],
        }
        core = self.mac_instance(plan, rom_prefix, f"u_{n}_mac", f"start_{n}", f"win_{n}", "", "",
                                 df={"start_bank": f"wbank_{n}", "start_tag": f"wtag_{n}",
                                     "issue_first": f"first_{n}", "issue_last": f"last_{n}",
                                     "res_valid": f"res_{n}_valid", "res_data": f"res_{n}_data",
                                     "res_last": f"res_{n}_last", "res_bank": f"res_{n}_bank",
                                     "res_tag": f"res_{n}_tag"})
        return {"nets": [nets(f"full_{n}", width=2), nets(f"rel_{n}", f"relb_{n}"),
                         nets(f"start_{n}", f"first_{n}", f"last_{n}", f"res_{n}_valid", f"res_{n}_ready",
                              f"wbank_{n}", f"wtag_{n}", f"res_{n}_last", f"res_{n}_bank", f"res_{n}_tag"),
                         nets(f"win_{n}", width=L.n * a_w), nets(f"res_{n}_data", width=L.output_fmt.width)],
                "block": {"comment": f"{n}: {self._desc(plan)}, {what} per filter, P={plan.lanes}",
                          "instances": [front, core]},
                "out": f"res_{n}", "tags": stream_tags(f"res_{n}", self.tags_results)}
