"""Vendor-facing files: the Vivado packaging Tcl runs (against stub Vivado commands in a
real Tcl interpreter), names every RTL and ROM file that exists, infers the AXI4-Stream
interfaces; the XDC and the generated README carry the right numbers."""

from __future__ import annotations

import re

import pytest

from designs import design, estimate_report
from kofn.app.ip import ip_files
from kofn.codegen import plan_build, render_build, write_design


def _build(tmp_path, name="cnn_mixed", measured=None):
    """Render a design and its IP files from a :class:`Report`; ``measured``: the RTL
    simulation's ``(latency, ii)`` the report carries, or ``None`` (no simulation ran)."""
    m, lanes = design(name)
    plan = plan_build(m, lanes, clock_mhz=125.0)
    d = render_build(plan)
    write_design(d, tmp_path)
    lat = plan.latency
    files = ip_files(estimate_report(plan, measured), d, "xcu250-figd2104-2L-e", source="test.toml")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(text)
    return m, d, lat, files


def test_package_tcl_runs_against_stub_vivado(tmp_path):
    tkinter = pytest.importorskip("tkinter")
    m, d, lat, _ = _build(tmp_path)
    tcl = tkinter.Tcl()
    tcl.eval("set ::calls {}; namespace eval ipx {}")
    for cmd in ["create_project", "add_files", "set_property", "get_files", "update_compile_order",
                "current_fileset", "close_project", "ipx::package_project", "ipx::current_core",
                "ipx::infer_bus_interfaces", "ipx::associate_bus_interfaces", "ipx::create_xgui_files",
                "ipx::update_checksums", "ipx::check_integrity", "ipx::save_core"]:
        tcl.eval(f"proc {cmd} {{args}} {{ lappend ::calls [list {cmd} {{*}}$args]; return core }}")
    tcl.eval(f"source {tmp_path / 'ip' / 'package_ip.tcl'}")
    calls = [tcl.splitlist(c) for c in tcl.splitlist(tcl.eval("set ::calls"))]
    added = [f for c in calls if c[0] == "add_files" for f in tcl.splitlist(c[-1])]
    assert sorted(added) == sorted(
        [str(tmp_path / s) for s in d.sources] + [str(tmp_path / f) for f in d.files if f.startswith("rom/")]
        + [str(tmp_path / "ip" / "clock.xdc")]
    )
    assert all((tmp_path / a).exists() for a in added)
    assert ("ipx::infer_bus_interfaces", "xilinx.com:interface:axis_rtl:1.0", "core") in [tuple(c) for c in calls]
    assert ("create_project", "-force", "kofn_top_ip_prj", str(tmp_path / "vivado_ip_prj"), "-part",
            "xcu250-figd2104-2L-e") in [tuple(c) for c in calls]
    assert [c[1:3] for c in calls if c[0] == "ipx::associate_bus_interfaces"] == [("-busif", "s_axis"), ("-busif", "m_axis")]


def test_xdc_and_readme(tmp_path):
    m, d, lat, files = _build(tmp_path)
    assert "create_clock -period 8.000 -name aclk [get_ports aclk]" in files["ip/clock.xdc"]
    readme = files["README.md"]
    rows = dict(re.findall(r"^\| `(\w+)` \| (in|out) \|", readme, flags=re.M))
    assert rows == {"aclk": "in", "aresetn": "in", "s_axis_tdata": "in", "s_axis_tvalid": "in",
                    "s_axis_tready": "out", "s_axis_tlast": "in", "m_axis_tdata": "out", "m_axis_tvalid": "out",
                    "m_axis_tready": "in", "m_axis_tlast": "out"}
    # no simulation in this report: the measured column says so instead of repeating the estimate
    assert f"| {lat.total_cycles} | not simulated |" in readme
    assert f"| {lat.ii_cycles} | not simulated |" in readme
    assert "8x8 image with 2 channel(s)" in readme
    assert ", ".join(s.split("/")[1] for s in d.sources) in readme
    assert "kofn_conv_df.sv" in readme


def test_readme_measured_column_is_the_simulation(tmp_path):
    """The writer puts the report's measured figures, not the estimate, in the measured column
    (values chosen apart from the estimate so that a mix-up shows; that the RTL meets the
    estimate is proved by the simulation tests and the default flow's README check)."""
    m, lanes = design("cnn_mixed")
    lat = plan_build(m, lanes).latency
    _, _, _, files = _build(tmp_path, measured=(lat.total_cycles + 3, lat.ii_cycles + 5))
    readme = files["README.md"]
    assert f"| {lat.total_cycles} | {lat.total_cycles + 3} |" in readme
    assert f"| {lat.ii_cycles} | {lat.ii_cycles + 5} |" in readme
