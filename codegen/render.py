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
from .handler import CORE_MODULE
from .kinds import handler, rtl_modules
from .maxpool import POOL_MODULE
from .plan import LayerPlan
from .rom import mem_lines
from .templating import environment, header, static_source
from .timing import Latency

__all__ = [
    "Design",
    "render",
    "write_design",
    "tdata_width",
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


def render(
    model: Model,
    plans: Sequence[LayerPlan],
    latency: Latency,
    top: str = "kofn_top",
    rom_prefix: str = "rom/",
    part: str = "xc7z020clg400-1",
    clock_ns: float = 10.0,
) -> Design:
    """Render RTL, ROM images and HLS C++ for ``model`` laid out as ``plans``; ``latency``
    (:func:`kofn.codegen.estimate.latency`) goes into the top's header comment.

    Returns a :class:`Design` whose files are ``rtl/*.sv``, ``rom/*.mem`` and ``hls/*``.
    """
    check_identifier(top, "top module name")
    if top in rtl_modules():
        raise ValueError(f"top module name {top!r} clashes with a layer module")
    env = _env()
    files: dict[str, str] = {}
    v_header = _header("//")
    in_fmt, out_fmt = model.input_fmt, model.output_fmt
    rtl = rtl_modules([p.layer for p in plans])
    for mod in rtl:
        files[f"rtl/{mod}.sv"] = static_source(f"verilog/{mod}.sv")
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
