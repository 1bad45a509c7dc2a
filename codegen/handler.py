"""What code generation does with one kind of IR layer: the :class:`Handler` interface, and
:class:`MacHandler`, the part shared by the kinds built on the sparse MAC core
(``kofn_dense``: dense and convolution layers): its packing and its instance in the top and
the HLS C++ here, what it costs (resources, registers, Fmax paths, memory) in
:mod:`kofn.codegen.mac_costs`.

One subclass per kind (:mod:`kofn.codegen.dense`, :mod:`kofn.codegen.conv`,
:mod:`kofn.codegen.maxpool`) holds everything about it: ROM packing, latency, resource
features, memory, the RTL it instantiates in the top and its HLS C++ context and templates.
:func:`kofn.codegen.kinds.handler` finds a layer's handler by its IR class."""

from __future__ import annotations

import numpy as np

from ..core.fixed import ROUNDINGS, bits_for_range, from_twos_complement, product_range, to_twos_complement
from ..core.rules import CorePipeline, bank_order, core_pipeline, index_bits
from .cells import StagePath
from .mac_costs import MacCosts
from .rom import LayerRoms, RomImage, pack_entries, steps_per_row, unpack_entries

__all__ = ["Handler", "MacHandler", "PoolHandler", "FilterWalk", "CORE_MODULE", "KEEP_REG_MODULE", "param", "port", "nets", "requant_shift",
           "vecbuf_instance", "stream_tags", "end_ports"]


#: kofn_dense.sv's RND parameter of each rounding (kofn.core.fixed.ROUNDINGS); half_up, the
#: default, is not written, so a half-up design's RTL is what it was before roundings existed.
RND_CODES = {r: i for i, r in enumerate(ROUNDINGS)}


def requant_shift(acc_frac: int, out) -> int:
    """The right shift by which the MAC core requantizes an accumulator of ``acc_frac`` fraction
    bits to the output format ``out`` (the reference would shift left; the hardware does not):
    :class:`ValueError` when ``out`` has more fraction bits than the accumulator."""
    shift = acc_frac - out.frac
    if shift < 0:
        raise ValueError(f"output format {out.describe()} has more fraction bits ({out.frac}) than the "
                         f"accumulator ({acc_frac})")
    return shift

CORE_MODULE = "kofn_dense"  # the sparse MAC core of dense and convolution layers
KEEP_REG_MODULE = "kofn_keep_reg"  # the pipelined core's kept select copies (its submodule)


def param(name: str, value, width: int | None = None) -> dict:
    """A module parameter of an instance; the template writes ``value | sv_literal(width)``."""
    return {"name": name, "value": value, "width": width}


def port(name: str, net: str | None = None, all_of: list[str] | None = None) -> dict:
    """A port connection: to ``net``, or to the AND of the 1-bit nets ``all_of``."""
    return {"port": name, "net": net, "all_of": all_of}


def nets(*names: str, width: int | None = None, type: str = "wire") -> dict:
    """A net declaration: ``names`` of ``width`` bits each (``None``: scalar)."""
    return {"type": type, "names": list(names), "width": width}


def vecbuf_instance(name: str, n: int, width: int, values: int, src: str, tags: dict | None,
                    ports: list[dict]) -> dict:
    """A ``kofn_vecbuf`` of ``n`` values of ``width`` bits written by stream ``src`` (``values`` per
    beat); ``tags``: what its beats carry (:func:`stream_tags`; ``None``: nothing, the buffer
    counts); ``ports``: the read side's connections (``full``, ``rel``, ...)."""
    if tags is None:
        tag_ports = [port("in_pos", "'0"), port("in_last", "1'b0"), port("in_end", "1'b0"), port("in_bank", "1'b0")]
    elif tags["pos"]:  # a dense core's: position and last beat
        tag_ports = [port("in_pos", tags["pos"]), port("in_last", tags["last"]), port("in_end", "1'b0"),
                     port("in_bank", tags["bank"])]
    else:  # a conv core's: the end strobe
        tag_ports = [port("in_pos", "'0"), port("in_last", "1'b0"), *end_ports(tags)]
    params = [param("N", n), param("A_W", width), param("V", values), param("TAGGED", tags is not None)]
    if tags is not None and not tags["pos"]:
        params.append(param("POS_COUNT", True))
    return {"name": name, "module": "kofn_vecbuf", "params": [params],
            "ports": [port("clk", "aclk"), port("rst", "rst"), port("in_valid", f"{src}_valid"),
                      port("in_ready", f"{src}_ready"), port("in_data", f"{src}_data"), *tag_ports, *ports]}


def stream_tags(src: str, kind: str) -> dict:
    """The tags a MAC core's result stream ``src`` carries, as nets, by the core's
    :attr:`Handler.tags_results` ``kind``: its bank (``<src>_bank``), and for a dense core
    ("pos") its position in the next vector (``pos``, the core's row) and whether it is the
    frame's last beat (``last``); for a conv core ("frame", whose row is a channel) the end
    strobe of its frame (``end``, nets to AND: a valid result that is its window's last, of the
    frame's last window, ``<src>_tag``), which a max pool between does not drop."""
    if kind == "pos":
        return {"bank": f"{src}_bank", "pos": f"{src}_pos", "last": f"{src}_last",
                "end": [f"{src}_valid", f"{src}_last"]}
    return {"bank": f"{src}_bank", "pos": None, "last": None,
            "end": [f"{src}_valid", f"{src}_last", f"{src}_tag"]}


def end_ports(tags: dict | None) -> list[dict]:
    """The ports by which a buffer behind a MAC core (``tags``: :func:`stream_tags`; ``None``
    behind s_axis, tied off) takes each beat's bank and its frame's end strobe."""
    if tags is None:
        return [port("in_end", "1'b0"), port("in_bank", "1'b0")]
    return [port("in_end", all_of=tags["end"]), port("in_bank", tags["bank"])]


class Handler:
    """Code generation for one kind of IR layer (one instance per kind, no state)."""

    kind = ""  # the IR's name of the kind, for messages
    image = False  # a streaming image stage in front of the collector, else a vector layer behind it
    has_core = False  # a MAC core with index, weight and bias ROMs
    #: dataflow: what its result beats carry (kofn_vecbuf TAGGED): "pos" (position, frame end and
    #: bank: a dense core), "frame" (frame end and bank, not the position: a conv core) or "".
    tags_results = ""
    modules: tuple[str, ...] = ()  # RTL modules it instantiates, submodules first
    df_modules: tuple[str, ...] = ()  # the same under the dataflow schedule
    hls_templates: dict[str, str] = {}  # "cpp": the layer's function, "h": its typedefs

    # -- packing ------------------------------------------------------------------------
    def entries_per_row(self, layer) -> int:
        raise TypeError(f"layer {layer.name!r}: a {self.kind} layer stores no weights")

    def pack(self, layer, lanes: int) -> LayerRoms:
        raise TypeError(f"layer {layer.name!r}: a {self.kind} layer has no ROMs")

    def macs(self, layer) -> int:
        """Kept multiply-accumulates per inference (0: no MAC core)."""
        return 0

    # -- latency -------------------------------------------------------------------------
    def cycles(self, plan) -> int:
        """Cycles the layer adds to one inference."""
        raise NotImplementedError

    def walker(self, plan):
        """The layer's stage of :func:`kofn.codegen.timing.schedule` (image kinds): an object
        whose ``feed(t, nxt)`` takes the beat accepted on edge ``t`` and returns the edges it
        delays the next one by, calling ``nxt(t')`` for each beat it passes on."""
        raise TypeError(f"a {self.kind} layer is not an image stage")

    # -- resources -----------------------------------------------------------------------
    def roms(self, plan) -> tuple[RomImage, ...]:
        return ()

    def dsp(self, plan, family: str) -> int:
        return 0

    def lane_inputs(self, plan) -> list[int]:
        """Per MAC lane, how many of the layer's inputs its multiplexer can select (no lanes: none)."""
        return []

    def features(self, plan, family: str) -> dict[str, dict[str, float]]:
        raise NotImplementedError

    def df_features(self, plan, family: str, values: int, tagged: str = "") -> list[tuple[str, str, dict]]:
        """Dataflow: ``(instance, component, {"lut": {...}, "ff": {...}})`` per module instance
        of the layer's stage (``values``: values per beat into its buffer; ``tagged``: what
        those beats carry, :attr:`tags_results` of their producer, "" behind s_axis)."""
        raise NotImplementedError

    def df_brams(self, plan) -> list[tuple[int, int]]:
        """Dataflow: ``(depth, width)`` of each buffer RAM the stage puts in block RAM."""
        return []

    def df_paths(self, plan, values: int) -> list[StagePath]:
        """Dataflow: the stage's register-to-register paths (the Fmax model's input,
        :mod:`kofn.codegen.fmax`); ``values``: values per beat into its buffer."""
        return []

    def df_memory(self, plan) -> dict[str, int]:
        """:meth:`memory` under the dataflow schedule (buffers in ``line_buffer``)."""
        return self.memory(plan)

    def memory(self, plan) -> dict[str, int]:
        """Bits by storage: ``rom``, ``dense``, ``csr``, ``line_buffer``, ``window``."""
        raise NotImplementedError

    # -- rendering -----------------------------------------------------------------------
    def idle_net(self, plan) -> str | None:
        """The net an image stage drives while it has no work in flight (``None``: it never holds work)."""
        return None

    def verilog(self, plan, rom_prefix: str, i: int, down_idle: list[str]) -> dict:
        """The layer in the top: ``{"nets": [...], "block": {"comment", "instances"}}``.
        ``i`` numbers the image stages (stream ``s<i>`` in, ``s<i+1>`` out) or the vector
        layers (``start0``/``done<i-1>`` start it); ``down_idle``: the later stages' idle nets."""
        raise NotImplementedError

    def hls_ctx(self, plan, in_type_name: str) -> dict:
        """Context of the layer's HLS templates (``hls_templates``)."""
        raise NotImplementedError

    def _hls_base(self, plan, in_type_name: str) -> dict:
        L = plan.layer
        return {"name": L.name, "image": self.image, "in_type_name": in_type_name, "out_size": L.out_size,
                "cpp_template": self.hls_templates["cpp"], "h_template": self.hls_templates["h"]}

    @staticmethod
    def _stream_nets(i: int, width: int) -> list[dict]:
        """Stream ``s<i+1>`` out of image stage ``i``."""
        return [nets(f"s{i + 1}_data", width=width), nets(f"s{i + 1}_valid", f"s{i + 1}_ready")]

    @staticmethod
    def _stream_ports(i: int) -> list[dict]:
        return [port("clk", "aclk"), port("rst", "rst")] + [
            port(f"{d}_{s}", f"s{j}_{s}") for d, j in (("in", i), ("out", i + 1)) for s in ("valid", "ready", "data")
        ]


class FilterWalk:
    """A pool in the sequential schedule walk (:func:`kofn.codegen.timing.schedule`): the beats
    its :class:`~kofn.codegen.dataflow.StreamFilter` passes go on at once, the others stop here."""

    def __init__(self, flt):
        self.f, self.i = flt, 0

    def feed(self, t, nxt):
        i, self.i = self.i, (self.i + 1) % self.f.frame
        return nxt(t) if self.f.passes_beat(i) else 0


class PoolHandler(Handler):
    """An image stage without MAC core or ROMs that filters the stream (max pooling, global
    average pooling): ``module`` forwards the beats it passes in their own cycle, so it adds
    no cycles and every input beat waits for the output's ready.  A kind gives its module's
    parameters (:meth:`_params`), its description (:meth:`_desc`), its filter
    (:meth:`df_filter`) and its features under ``<component>_lut`` / ``<component>_ff``."""

    image = True
    module = ""
    component = ""

    def cycles(self, plan) -> int:
        return 0

    def walker(self, plan) -> FilterWalk:
        return FilterWalk(self.df_filter(plan))

    def df_filter(self, plan):
        raise NotImplementedError

    def _params(self, plan) -> list:
        raise NotImplementedError

    def _desc(self, plan) -> str:
        raise NotImplementedError

    def _instance(self, plan, ports: list[dict]) -> dict:
        return {"name": f"u_{plan.layer.name}", "module": self.module, "params": self._params(plan), "ports": ports}

    def verilog(self, plan, rom_prefix: str, i: int, down_idle: list[str]) -> dict:
        L = plan.layer
        return {"nets": self._stream_nets(i, L.output_fmt.width),
                "block": {"comment": f"{L.name}: {self._desc(plan)}",
                          "instances": [self._instance(plan, self._stream_ports(i))]}}

    def df_features(self, plan, family: str, values: int, tagged: str = "") -> list[tuple[str, str, dict]]:
        f, c = self.features(plan, family), self.component
        return [(f"u_{plan.layer.name}", c, {"lut": f[f"{c}_lut"], "ff": f[f"{c}_ff"]})]

    def df_pool_verilog(self, plan, src: str, dst: str, reserved: bool, tags: dict | None = None) -> dict:
        """The pool between stream ``src`` and a new stream ``dst``; ``reserved``: ``src`` comes
        from a MAC core whose output bank is reserved, so every beat is taken at once (the
        buffer behind never refuses a pooled beat, and dropped beats must not wait either).
        ``tags``: what ``src`` carries (:func:`stream_tags`); ``dst`` carries the same nets (the
        pool forwards a beat in its own cycle, and the producer's end strobe does not go through
        it: the pool may drop the frame's last beat)."""
        L = plan.layer
        ports = [port("clk", "aclk"), port("rst", "rst"), port("in_valid", f"{src}_valid"),
                 port("in_ready", f"{src}_ready"), port("in_data", f"{src}_data"),
                 port("out_valid", f"{dst}_valid"), port("out_ready", "1'b1" if reserved else f"{dst}_ready"),
                 port("out_data", f"{dst}_data")]
        return {"nets": [nets(f"{dst}_valid", f"{dst}_ready"), nets(f"{dst}_data", width=L.output_fmt.width)],
                "block": {"comment": f"{L.name}: {self._desc(plan)}", "instances": [self._instance(plan, ports)]},
                "out": dst, "tags": tags}


class MacHandler(MacCosts, Handler):
    """A layer computed by the MAC core: ``rows`` outputs of ``entries_per_row`` weights each.
    Its packing and rendering are here; its resources, registers, paths and memory are
    :class:`~kofn.codegen.mac_costs.MacCosts`."""

    has_core = True
    modules = (CORE_MODULE,)
    df_modules = (KEEP_REG_MODULE, CORE_MODULE)

    df_banks = 1  # banks of the core's input in the dataflow schedule (a dense stage's buffer: 2)

    def kernel_level(self, layer) -> bool:
        """Whether the index ROM holds kept input channels (whole kernels) instead of inputs."""
        return False

    @staticmethod
    def banks(layer) -> int:
        """The layer's input banks P (``bank`` granularity), 1 when any lane reads any input."""
        return getattr(layer, "banks", 1)

    def lane_n(self, layer) -> int:
        """Inputs one lane can read: all n, or the n/P of its bank."""
        return layer.n // self.banks(layer)

    def df_mem(self, layer) -> bool:
        """Whether the dataflow core reads its inputs from per-lane memories (``kofn_bankbuf``)
        instead of a register vector (``kofn_dense``'s MEM)."""
        return False

    def df_pipeline(self, plan) -> CorePipeline:
        """The pipelined core's stages in the dataflow schedule (:func:`kofn.core.rules.core_pipeline`)."""
        return core_pipeline(self.lane_n(plan.layer), plan.lanes, self.df_banks, self.df_mem(plan.layer))

    def macs(self, layer) -> int:
        """Kept MACs per inference: every output's kept weights, once per position."""
        positions = layer.out_shape[0] * layer.out_shape[1] if self.image else 1
        return positions * layer.rows * self.entries_per_row(layer)

    # -- packing ------------------------------------------------------------------------
    def pack(self, layer, lanes: int) -> LayerRoms:
        k_row = self.entries_per_row(layer)
        if not 1 <= lanes <= k_row:
            raise ValueError(f"layer {layer.name!r}: lanes={lanes} must be in 1..k={k_row} (weights per row)")
        wfmt, bfmt = layer.weight_fmt, layer.bias_fmt
        weights = layer.weights
        banks = self.banks(layer)
        if self.kernel_level(layer):
            index = pack_entries(layer.indices, index_bits(layer.in_channels), layer.k)  # one word per filter
        elif banks > 1:
            # lane p reads bank p: its entries in the lane's slots, as bank-local addresses i // P
            if lanes != banks:
                raise ValueError(f"layer {layer.name!r}: its {banks} input banks need lanes = {banks}, got {lanes}")
            order = bank_order(layer.indices, banks)
            index = pack_entries(np.take_along_axis(layer.indices, order, axis=1) // banks,
                                 index_bits(layer.n // banks), lanes)
            weights = np.take_along_axis(weights, order, axis=1)
        else:
            index = pack_entries(layer.indices, index_bits(layer.n), lanes)
        return LayerRoms(
            index=index,
            weight=pack_entries(to_twos_complement(weights, wfmt.width), wfmt.width, lanes),
            bias=pack_entries(to_twos_complement(layer.bias, bfmt.width)[:, None], bfmt.width, 1),
            steps=steps_per_row(k_row, lanes),
        )

    # -- rendering -----------------------------------------------------------------------
    def mac_instance(self, plan, rom_prefix: str, name: str, start: str, in_flat: str, out_flat: str,
                     done: str, banks: int = 1, df: dict | None = None, rel_early: int = 0) -> dict:
        """The MAC core instance ``name`` of the layer.  ``df``: the dataflow ports' nets
        (``start_bank``, ``start_tag``, ``issue_first``, ``issue_last``, ``rel``, ``rel_bank``,
        ``res_valid``, ``res_data``, the result tags ``res_pos``, ``res_last``, ``res_bank``,
        ``res_tag``, ``mem_addr``, ``mem_data``; missing ones are left open, ``start_tag`` and
        ``mem_data`` at 0), ``banks``: the input banks, ``rel_early``: how
        many cycles before its last gather the core releases its input bank (dataflow only)."""
        L = plan.layer
        acc, o = L.accumulator, L.output_fmt
        kmode = self.kernel_level(L)
        try:
            shift = requant_shift(acc.frac, o)
        except ValueError as e:
            raise ValueError(f"layer {L.name!r}: {e}") from None
        r = plan.roms
        params = [
            [param("N_IN", L.n), param("N_OUT", L.rows), param("K", self.entries_per_row(L)),
             param("P", plan.lanes), param("IDX_W", index_bits(self.lane_n(L))),
             param("BANKED", self.banks(L) > 1)],
            [param("KK", L.taps if kmode else 1), param("N_CH", L.in_channels if kmode else 1),
             param("KC", L.k if kmode else 1), param("CIDX_W", index_bits(L.in_channels) if kmode else 1)],
            [param("A_W", L.input_fmt.width), param("A_SIGNED", bool(L.input_fmt.signed)), param("W_W", L.weight_fmt.width),
             param("B_W", L.bias_fmt.width), param("B_SHIFT", acc.bias_shift)],
            [param("PROD_W", bits_for_range(*product_range(L.input_fmt, L.weight_fmt))), param("ACC_W", acc.width),
             param("SHIFT", shift), param("RQ_W", max(acc.width, o.width + 1) + 1)],
            [param("O_W", o.width), param("O_MIN", o.min_int, 64), param("O_MAX", o.max_int, 64),
             param("RELU", bool(L.relu)), *([param("RND", RND_CODES[L.rounding])] if L.rounding != "half_up" else [])],
            [param("IDX_FILE", f"{rom_prefix}{L.name}_idx.mem"), param("W_FILE", f"{rom_prefix}{L.name}_w.mem"),
             param("B_FILE", f"{rom_prefix}{L.name}_b.mem")],
            [param("ROM_BLOCK", [r.bias.in_bram, r.weight.in_bram, r.index.in_bram]), param("BANKS", banks)],
        ]
        if df is not None:  # the dataflow cores are pipelined (kofn_dense's PIPE = 1)
            pipe = self.df_pipeline(plan)
            params.append([param("PIPE", True), param("GATHER_ST", pipe.gather), param("TREE_ST", pipe.tree),
                           param("REL_EARLY", rel_early), param("SEL_COPIES", self.select_copies(plan)),
                           param("MEM", self.df_mem(L))])
        df = {"start_bank": "1'b0", "start_tag": "1'b0", **(df or {})}
        ports = [port("clk", "aclk"), port("rst", "rst"), port("start", start),
                 port("start_bank", df["start_bank"]), port("start_tag", df["start_tag"]), port("in_flat", in_flat),
                 port("out_flat", out_flat), port("done", done)] + [
            port(p_, df.get(p_, "")) for p_ in ("issue_first", "issue_last", "rel", "rel_bank", "res_valid", "res_data",
                                                "res_pos", "res_last", "res_bank", "res_tag", "mem_addr")] + [
            port("mem_data", df.get("mem_data", "'0"))]
        return {"name": name, "module": CORE_MODULE, "params": params, "ports": ports}

    def hls_ctx(self, plan, in_type_name: str) -> dict:
        """The MAC core's part of the HLS context: types, ROM contents and the row loop."""
        L = plan.layer
        rom_stride = plan.steps * plan.lanes
        kmode = self.kernel_level(L)
        if kmode:
            idx = unpack_entries(plan.roms.index, L.k)  # [rows, kc] channels, one ROM word per filter
        else:
            idx = unpack_entries(plan.roms.index, rom_stride)  # includes padding entries
        wf = L.weight_fmt
        w_signed = from_twos_complement(unpack_entries(plan.roms.weight, rom_stride), wf.width)
        return {
            **self._hls_base(plan, in_type_name),
            "out_type_name": f"{L.name}_out_t",
            "n": L.n,
            "rows": L.rows,
            "row_entries": self.entries_per_row(L),
            "lanes": plan.lanes,
            "steps": plan.steps,
            "rom_stride": rom_stride,
            "kmode": kmode,
            "idx_w": index_bits(L.in_channels) if kmode else index_bits(self.lane_n(L)),
            "banks": self.banks(L),
            "w_w": wf.width,
            "b_w": L.bias_fmt.width,
            "relu": L.relu,
            "w_type": wf.ap_type(),
            "b_type": L.bias_fmt.ap_type(),
            "acc_type": L.accumulator.ap_type(),
            "out_type": L.output_fmt.ap_type(quantize=True, rounding=L.rounding),
            "idx_values": [int(v) for v in np.asarray(idx).ravel()],
            "w_values": [int(v) for v in np.asarray(w_signed).ravel()],
            "b_values": [int(v) for v in L.bias],
        }
