"""Render the Verilog and HLS C++ of a :class:`kofn.core.ir.Model`.

:func:`render` is pure: it returns an in-memory mapping ``relative path -> text``
(a :class:`Design`).  :func:`write_design` writes it atomically: into a temporary
directory beside the target, then renamed into place, so a failure never leaves
half an IP.  The per-kind handlers (:mod:`kofn.codegen.kinds`) compute every number and
build the top's nets and instances as data; templates only lay out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..core.fixed import FixedFormat
from ..core.ir import Model
from ..core.names import check_identifier
from ..core.rules import index_bits
from .conv import CONV_MODULE
from .handler import CORE_MODULE, nets, param, port, vecbuf_instance
from .kinds import handler, rtl_modules
from .maxpool import POOL_MODULE
from .plan import LayerPlan
from .rom import mem_lines
from .templating import environment, header, static_source
from .timing import Latency, df_rel_early

__all__ = [
    "Design",
    "render",
    "write_design",
    "tdata_width",
    "df_output_stream",
    "DENSE_MODULE",
    "CONV_MODULE",
    "POOL_MODULE",
]

DENSE_MODULE = CORE_MODULE  # the sparse MAC core of dense and convolution layers


@dataclass(frozen=True)
class Design:
    """Rendered files, ``relative path -> text``, plus the top module's name."""

    top: str
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """The RTL files, submodules first (``rtl/filelist.f`` lists them too)."""
        return [f"rtl/{line}" for line in self.files["rtl/filelist.f"].split()]


_env = environment  # the Jinja environment (kofn.codegen.templating)
_header = header


def tdata_width(fmt: FixedFormat) -> int:
    """AXI4-Stream tdata width carrying one ``fmt`` value: its width rounded up to whole bytes."""
    return -(-fmt.width // 8) * 8


def _top_ctx(model: Model, plans: Sequence[LayerPlan], rom_prefix: str) -> dict:
    """The top's nets and instances as data: image stages stream into each other (``s<i>``)
    and into the collector; the vector layers behind it run one after another."""
    image = [p for p in plans if handler(p.layer).image]
    vector = [p for p in plans if not handler(p.layer).image]
    idle = [handler(p.layer).idle_net(p) for p in image]  # None: a stage that never holds work
    stages = [handler(p.layer).verilog(p, rom_prefix, i, [n for n in idle[i + 1 :] if n] + ["dense_idle"])
              for i, p in enumerate(image)]
    layers = [handler(p.layer).verilog(p, rom_prefix, i, []) for i, p in enumerate(vector)]
    first = vector[0].layer
    return dict(
        image=bool(image),
        stage_names=[p.layer.name for p in image],
        n_stages=len(image),
        stage_nets=[n for s in stages for n in s["nets"]],
        dense_idle=any(idle),  # some stage waits on the dense layers
        unused_nets=[n for n in idle if n][:1],  # no stage waits on the first one with work
        layer_nets=[n for s in layers for n in s["nets"]],
        last_layer=len(vector) - 1,
        blocks=[s["block"] for s in stages + layers],
        n_col=first.n,
        col_w=first.input_fmt.width,
        col_cnt_w=index_bits(first.n),
        out_cnt_w=index_bits(model.n_outputs),
    )


def df_output_stream(plans: Sequence[LayerPlan]) -> str:
    """The dataflow top's stream into its output buffer: the last layer's results
    (``res_<name>`` from a MAC core, ``p_<name>`` from a pool)."""
    last = plans[-1]
    return f"{'res' if handler(last.layer).has_core else 'p'}_{last.layer.name}"


def _df_lemmas(mac: Sequence[LayerPlan], insts: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """``kofn prove``'s lemmas of each MAC stage (:data:`kofn.codegen.formal.LEMMAS`): connects
    the modules' ``ifdef FORMAL`` ports (``f_*``, two bits: one per bank) to nets of the top
    (``insts``: the top's instances by name, given an ``formal`` port list) and returns, per stage,
    the nets its lemmas relate, and the nets to declare.  A stage is its reservation (``f_busy``:
    the conv front's or the dense stage's control), its conv loader's window (``f_lend``, a
    frame's end waiting for the core; ``f_lact``, the loader works on the bank), its core
    (``f_frames`` in: each activation is a frame; ``f_end``, ``f_word``: a frame end, any
    result, in the pipeline) and its consumer's bank
    flags (``full`` and ``f_pend``: a frame end registered there, ``full`` next)."""
    lemmas, decl = [], []

    def link(inst: str, port_: str, net: str) -> str:
        insts[inst].setdefault("formal", []).append(port(port_, net))
        if not net.startswith("1'"):
            decl.append(net)
        return net

    for i, p in enumerate(mac):
        n = p.layer.name
        conv = handler(p.layer).image
        # a dense core's every activation is a frame; a conv core's frame ends with its tag
        link(f"u_{n}_mac", "f_frames", "1'b0" if conv else "1'b1")
        if i + 1 < len(mac):
            m = mac[i + 1].layer.name
            cons, full = (f"u_{m}" if handler(mac[i + 1].layer).image else f"u_{m}_buf"), f"full_{m}"
        else:
            m, cons, full = "out", "u_out_buf", "full_out"
        lemmas.append({
            "stage": n,
            "busy": link(f"u_{n}" if conv else f"u_{n}_ctrl", "f_busy", f"f_busy_{n}"),
            "lact": link(f"u_{n}", "f_lact", f"f_lact_{n}") if conv else None,
            "lend": link(f"u_{n}", "f_lend", f"f_lend_{n}") if conv else None,
            "end": link(f"u_{n}_mac", "f_end", f"f_end_{n}"),
            "word": link(f"u_{n}_mac", "f_word", f"f_word_{n}"),
            "full": full,
            "pend": link(cons, "f_pend", f"f_pend_{m}"),
        })
    return lemmas, decl


def _top_ctx_df(model: Model, plans: Sequence[LayerPlan], rom_prefix: str, v_in: int, v_out: int) -> dict:
    """The dataflow top's nets and instances: every MAC layer's stage behind its ping-pong
    buffer, pools on the streams between them, and the output buffer with its m_axis side."""
    mac = [p for p in plans if handler(p.layer).has_core]
    # each stage's output buffer, by the release its consumer gives it: (rel, rel_bank) nets
    downstream = [(f"rel_{p.layer.name}", f"relb_{p.layer.name}") for p in mac[1:]] + [("rel_out", "relb_out")]
    nets_, blocks, unused, no_wait = [], [], [], []
    src, reserved, values, tags = "s_in", False, v_in, None  # tags: what src's beats carry (stream_tags)
    k = 0
    early = df_rel_early(plans)
    for p in plans:
        h = handler(p.layer)
        if reserved:
            unused.append(f"{src}_ready")  # a reserved producer never waits
            no_wait.append(src)
        if not h.has_core:
            if values != 1:
                raise ValueError(f"layer {p.layer.name!r}: max pooling takes one value per beat, not {values} "
                                 f"(hw.stream_in > 1 needs a dense first layer)")
            r = h.df_pool_verilog(p, src, f"p_{p.layer.name}", reserved, tags)
        else:
            if values != 1 and h.image:
                raise ValueError(f"layer {p.layer.name!r}: a convolution takes one value per beat, not {values} "
                                 f"(hw.stream_in > 1 needs a dense first layer)")
            r = h.df_verilog(p, rom_prefix, src, values, downstream[k], early[p.layer.name], tags=tags)
            k += 1
            reserved, values = True, 1
        nets_ += r["nets"]
        unused += r.get("unused", [])
        blocks.append(r["block"])
        src, tags = r["out"], r.get("tags")
    unused.append(f"{src}_ready")
    no_wait.append(src)
    assert src == df_output_stream(plans), (src, df_output_stream(plans))
    for i, p in enumerate(mac):
        if handler(p.layer).image:  # a convolution's frame buffer: its producer waits on tready or reserved it
            unused.append(f"full_{p.layer.name}")
            if i == 0:  # s_axis waits on tready, not on a reservation
                unused += [f"rel_{p.layer.name}", f"relb_{p.layer.name}"]
    o = model.output_fmt
    out_buf = vecbuf_instance("u_out_buf", model.n_outputs, o.width, 1, src, tags,
                              [port("full", "full_out"), port("rel", "rel_out"), port("rel_bank", "relb_out"),
                               port("bank_flat", "obank")])
    out = {"name": "u_out", "module": "kofn_axis_out",
           "params": [[param("N", model.n_outputs), param("O_W", o.width), param("SIGNED", bool(o.signed)),
                       param("V", v_out), param("LANE_W", tdata_width(o))]],
           "ports": [port("clk", "aclk"), port("rst", "rst"), port("full", "full_out"), port("bank_flat", "obank"),
                     port("rel", "rel_out"), port("rel_bank", "relb_out"), port("tdata", "m_axis_tdata"),
                     port("tvalid", "m_axis_tvalid"), port("tready", "m_axis_tready"), port("tlast", "m_axis_tlast")]}
    nets_ += [nets("full_out", width=2), nets("rel_out", "relb_out"),
              nets("obank", width=2 * model.n_outputs * o.width)]
    blocks.append({"comment": f"Output: {model.n_outputs} values, {v_out} per m_axis beat", "instances": [out_buf, out]})
    in_w, lane = model.input_fmt.width, tdata_width(model.input_fmt)
    lemmas, formal_nets = _df_lemmas(mac, {i["name"]: i for b in blocks for i in b["instances"]})
    return dict(nets=nets_, blocks=blocks, unused_nets=unused, no_wait=no_wait, lemmas=lemmas,
                formal_nets=formal_nets,
                in_unused=[f"s_axis_tdata[{j * lane + lane - 1}:{j * lane + in_w}]" for j in range(v_in) if lane > in_w])


def render(
    model: Model,
    plans: Sequence[LayerPlan],
    latency: Latency,
    top: str = "kofn_top",
    rom_prefix: str = "rom/",
    part: str = "xc7z020clg400-1",
    clock_ns: float = 10.0,
    schedule: str = "sequential",
    stream_in: int = 1,
    stream_out: int = 1,
) -> Design:
    """Render RTL, ROM images and HLS C++ for ``model`` laid out as ``plans``; ``latency``
    (:func:`kofn.codegen.estimate.latency`) goes into the top's header comment.

    Returns a :class:`Design` whose files are ``rtl/*.sv``, ``rom/*.mem`` and ``hls/*``.
    """
    check_identifier(top, "top module name")
    if top in rtl_modules() + rtl_modules(schedule="dataflow"):
        raise ValueError(f"top module name {top!r} clashes with a layer module")
    env = _env()
    files: dict[str, str] = {}
    v_header = _header("//")
    in_fmt, out_fmt = model.input_fmt, model.output_fmt
    rtl = rtl_modules([p.layer for p in plans], schedule)
    for mod in rtl:
        files[f"rtl/{mod}.sv"] = static_source(f"verilog/{mod}.sv")
    if schedule == "dataflow":
        files[f"rtl/{top}.sv"] = env.get_template("verilog/top_df.sv.j2").render(
            header=v_header, top=top, model_name=model.name, image=handler(plans[0].layer).image,
            in_shape=model.input_shape, in_w=in_fmt.width, in_lane_w=tdata_width(in_fmt), v_in=stream_in,
            in_tdata_w=stream_in * tdata_width(in_fmt), in_beats=-(-model.n_inputs // stream_in),
            out_lane_w=tdata_width(out_fmt), v_out=stream_out, out_tdata_w=stream_out * tdata_width(out_fmt),
            out_beats=-(-model.n_outputs // stream_out), out_desc=out_fmt.describe(), out_signed=out_fmt.signed,
            latency=latency.total_cycles, ii=latency.ii_cycles,
            **_top_ctx_df(model, plans, rom_prefix, stream_in, stream_out))
    else:
        files[f"rtl/{top}.sv"] = env.get_template("verilog/top.sv.j2").render(
            header=v_header,
            top=top,
            model_name=model.name,
            n_in=model.n_inputs,
            in_shape=model.input_shape,
            n_out=model.n_outputs,
            in_w=in_fmt.width,
            out_w=out_fmt.width,
            out_signed=out_fmt.signed,
            out_desc=out_fmt.describe(),
            in_tdata_w=tdata_width(in_fmt),
            out_tdata_w=tdata_width(out_fmt),
            latency=latency.total_cycles,
            ii=latency.ii_cycles,
            **_top_ctx(model, plans, rom_prefix),
        )
    files["rtl/filelist.f"] = "".join(f"{m}.sv\n" for m in rtl + [top])
    for p in plans:
        for what, rom in zip(("idx", "w", "b"), handler(p.layer).roms(p)):
            files[f"rom/{p.layer.name}_{what}.mem"] = mem_lines(rom)

    layers_h = []
    in_name = f"{top}_in_t"
    for p in plans:
        layers_h.append(handler(p.layer).hls_ctx(p, in_name))
        in_name = layers_h[-1]["out_type_name"]
    hctx = dict(
        header=v_header,
        top=top,
        model_name=model.name,
        guard=f"{top.upper()}_H",
        prefix=f"{top.upper()}_",
        n_in=model.n_inputs,
        n_out=model.n_outputs,
        input_type=in_fmt.ap_type(),
        in_frac=in_fmt.frac,
        in_w=in_fmt.width,
        out_frac=out_fmt.frac,
        layers=layers_h,
        dataflow=schedule == "dataflow",
    )
    files[f"hls/{top}.h"] = env.get_template("hls/kofn_top.h.j2").render(**hctx)
    files[f"hls/{top}.cpp"] = env.get_template("hls/kofn_top.cpp.j2").render(**hctx)
    files[f"hls/tb_{top}.cpp"] = env.get_template("hls/tb_kofn_top.cpp.j2").render(**hctx)
    files["hls/run_hls.tcl"] = env.get_template("hls/run_hls.tcl.j2").render(
        header_tcl=_header("#"), top=top, part=part, clock_ns=clock_ns
    )
    return Design(top=top, files=files)


def write_design(design: Design, out_dir: str | Path) -> list[Path]:
    """Write ``design`` under ``out_dir`` atomically per top-level folder (rtl/, rom/, hls/).

    Each folder is written to a temporary sibling and renamed over the old one.
    Returns the written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[str, dict[str, str]] = {}
    for rel, text in design.files.items():
        head, _, rest = rel.partition("/")
        groups.setdefault(head, {})[rest] = text
    written = []
    for head, members in groups.items():
        tmp = Path(tempfile.mkdtemp(prefix=f".{head}-", dir=out))
        try:
            tmp.chmod(0o755)  # mkdtemp makes 0700; the IP folders are ordinary output
            for rest, text in members.items():
                (tmp / rest).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rest).write_text(text)
            final = out / head
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        written += [out / head / rest for rest in members]
    return written
