"""The IP's vendor-facing files, written from the build's :class:`~kofn.app.report.Report`:
``ip/package_ip.tcl`` (Vivado IP packaging with AXI4-Stream interfaces inferred),
``ip/clock.xdc`` and the IP's ``README.md`` (port table, latency and II, estimated and
measured, the resource estimate)."""

from __future__ import annotations

from .. import __version__
from ..codegen import Design
from ..codegen.render import tdata_width
from ..codegen.templating import environment, header
from .report import Report

__all__ = ["ip_files"]


def ip_files(report: Report, design: Design, part: str, source: str = "") -> dict[str, str]:
    """``relative path -> text`` of the vendor files.  The README's "measured" column is the
    report's RTL simulation (``not simulated`` when none ran), never the estimate."""
    if report.model is None:
        raise ValueError("the report carries no model; the IP files need its formats and shapes")
    env = environment()
    model, lat = report.model, report.latency
    in_fmt, out_fmt = model.input_fmt, model.output_fmt
    rtl = design.sources
    roms = sorted(f for f in design.files if f.startswith("rom/"))
    common = dict(header_tcl=header("#"), top=design.top, model_name=model.name, part=part,
                  n_in=model.n_inputs, n_out=model.n_outputs, latency=lat.estimated_cycles, ii=lat.ii_cycles)
    acc = report.accuracy.to_json() if report.accuracy is not None else None
    return {
        "ip/package_ip.tcl": env.get_template("ip/package_ip.tcl.j2").render(**common, rtl_files=rtl, rom_files=roms),
        "ip/clock.xdc": env.get_template("ip/clock.xdc.j2").render(**common, clock_mhz=lat.clock_mhz,
                                                                    clock_ns=1e3 / lat.clock_mhz),
        "README.md": env.get_template("ip/README.md.j2").render(
            **common, header_md=header("").strip(), version=__version__, source=source or "an IR",
            accuracy=acc, dataset=report.dataset or "",
            in_tdata_w=lat.stream_in * tdata_width(in_fmt), out_tdata_w=lat.stream_out * tdata_width(out_fmt),
            in_w=in_fmt.width, in_lane_w=tdata_width(in_fmt), out_lane_w=tdata_width(out_fmt),
            v_in=lat.stream_in, v_out=lat.stream_out, in_beats=-(-model.n_inputs // lat.stream_in),
            out_beats=-(-model.n_outputs // lat.stream_out), out_signed=out_fmt.signed, schedule=lat.schedule,
            in_desc=in_fmt.describe(), out_desc=out_fmt.describe(), image=len(model.input_shape) == 3,
            in_shape=model.input_shape, clock_mhz=lat.clock_mhz, throughput=lat.throughput_per_s,
            res=report.resources, mem=report.memory, rtl_files=[f.split("/", 1)[1] for f in rtl],
            measured_latency=lat.measured_cycles, measured_ii=lat.measured_ii_cycles,
        ),
    }
