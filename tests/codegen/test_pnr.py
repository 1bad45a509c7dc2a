"""Timing: nextpnr-ecp5 place and route (``kofn synth --family ecp5``) and Yosys ``sta``'s
logic-only path for 7-series.

* the parsing of nextpnr's ``--report`` JSON and of ``sta``'s text, on documents written here
  in those tools' formats (the figures below are worked out by hand from them);
* ``kofn synth --family ecp5`` on a small build: real place and route with the PyPI
  WebAssembly nextpnr, at a clock it meets and at one it cannot, which must give a verdict
  (exit status 1, ``met: false``), not a crash."""

from __future__ import annotations

import json
import shutil

import pytest

from kofn.codegen.pnr import PnrError, instance_of, nextpnr_command, parse_report
from kofn.codegen.synth import parse_sta

CLK = "$glbnet$aclk$TRELLIS_IO_IN"


def _seg(kind, a, b, delay, net=None, src=()):
    s = {"type": kind, "delay": delay, "from": {"cell": a[0], "port": a[1], "loc": [1, 1]},
         "to": {"cell": b[0], "port": b[1], "loc": [1, 2]}}
    if net:
        s.update(net=net, sources=list(src))
    return s


def _report(achieved):
    ff_q, cc_b, cc_co = ("u_l0_mac.acc_FF", "Q"), ("u_l0_mac.rounded_CCU2C", "B"), ("u_l0_mac.rounded_CCU2C", "FCO")
    lut_a, lut_z, buf_m = ("u_l0_mac.sat_LUT4", "A"), ("u_l0_mac.sat_LUT4", "Z"), ("u_l1_buf.bank_FF", "M")
    reg2reg = [_seg("clk-to-q", ff_q, ff_q, 0.5),
               _seg("routing", ff_q, cc_b, 1.25, "u_l0_mac.acc[3]", ["rtl/kofn_top.sv:8.1-9.2", "rtl/kofn_dense.sv:260.1-260.3"]),
               _seg("logic", cc_b, cc_co, 0.75),
               _seg("routing", cc_co, lut_a, 2.0, "u_l0_mac.rounded[7]", ["rtl/kofn_dense.sv:271.1-271.5"]),
               _seg("logic", lut_a, lut_z, 0.25),
               _seg("routing", lut_z, buf_m, 1.5, "u_l0_mac.res[7]", ["rtl/kofn_vecbuf.sv:21.3-21.4"]),
               _seg("setup", buf_m, buf_m, 0.25)]
    io = [_seg("routing", ("s_axis_tdata$tr_io", "O"), ff_q, 9.0, "s_axis_tdata[0]")]
    return {"fmax": {CLK: {"achieved": achieved, "constraint": 100}},
            "utilization": {"TRELLIS_COMB": {"used": 2100, "available": 83640},
                            "TRELLIS_FF": {"used": 909, "available": 83640},
                            "MULT18X18D": {"used": 6, "available": 156}, "DP16KD": {"used": 0, "available": 208}},
            "critical_paths": [{"from": "<async>", "to": f"posedge {CLK}", "path": io},
                               {"from": f"posedge {CLK}", "to": f"posedge {CLK}", "path": reg2reg}]}


def test_parse_nextpnr_report():
    clocks, met, fmax, util, cp = parse_report(_report(153.8), 100.0)
    assert clocks == {CLK: {"achieved": 153.8, "constraint": 100.0}} and met and fmax == 153.8
    assert util["TRELLIS_COMB"]["used"] == 2100 and util["MULT18X18D"] == {"used": 6, "available": 156}
    # the register-to-register path, not the longer one from an unconstrained input pin
    assert cp["from"] == "u_l0_mac.acc_FF.Q" and cp["to"] == "u_l1_buf.bank_FF.M"
    assert cp["delay_ns"] == 6.5 and cp["routing_ns"] == 4.75 and cp["logic_ns"] == 1.75
    assert cp["module"] == "u_l0_mac" and cp["modules"] == {"u_l0_mac": 6, "u_l1_buf": 2}
    # the RTL lines of kofn's modules the path's nets come from (not the generated top)
    assert cp["sources"] == ["rtl/kofn_dense.sv:260.1-260.3", "rtl/kofn_dense.sv:271.1-271.5", "rtl/kofn_vecbuf.sv:21.3-21.4"]


def test_parse_nextpnr_report_failing_and_clockless():
    clocks, met, fmax, _, _ = parse_report(_report(59.87), 100.0)
    assert not met and fmax == 59.87
    two = _report(120.0)
    two["fmax"]["other"] = {"achieved": 80.0, "constraint": 50.0}
    assert parse_report(two, 100.0)[1:3] == (True, 80.0)  # each clock against its own constraint
    two["fmax"]["other"]["constraint"] = 90.0
    assert parse_report(two, 100.0)[1] is False
    clocks, met, fmax, util, cp = parse_report({"utilization": {}}, 75.0)  # purely combinational
    assert (clocks, met, fmax, cp) == ({}, True, 75.0, {})


def test_instance_of_flattened_names():
    assert instance_of("u_l0_mac.acc_TRELLIS_FF_Q_10") == "u_l0_mac"
    assert instance_of("$flatten\\u_l1_buf.$procdff$123") == "u_l1_buf"
    assert instance_of("$auto$alumacc.cc:485:replace_alu$7350.genblk1.slice[5]") is None


STA_LOG = """
8. Executing STA pass (static timing analysis).
Latest arrival time in 'kofn_top' is 7411:
    7411 (<unknown>)
Warning: Critical-path does not terminate in a recognised endpoint.
           $auto$alumacc.cc:485:replace_alu$73.O [9]
    7411 $flatten\\u_l1_mac.$auto$alumacc.cc:485:replace_alu$73.genblk1.slice[1].genblk1.carry4 (CARRY4.CI->O)
           $auto$alumacc.cc:485:replace_alu$73.CO [3]
    6900 $flatten\\u_l1_mac.$auto$alumacc.cc:485:replace_alu$73.genblk1.slice[0].genblk1.carry4 (CARRY4.S->CO)
           \\u_l1_mac.lane_sum [5]
    5000 $abc$65810$auto$blifparse.cc:525:parse_blif$70009 (LUT2.I1->O)
           \\u_l0_mac.x [5]
    4800 $flatten\\u_l1_mac.$mul$rtl/kofn_dense.sv:242$2314 (DSP48E1.CLK->P)
           \\u_l0_buf.clk
      96 $auto$clkbufmap.cc:261:execute$77266 (BUFG.I->O)
       0   \\aclk (<primary input>)

Arrival histogram:
 legend: * represents 5 endpoint(s)
(  7411,   6000] |**+
"""


def test_parse_sta_logic_path():
    lp = parse_sta(STA_LOG)
    assert lp.ns == 7.411 and round(lp.mhz, 1) == 134.9
    assert lp.cells == ("DSP48E1", "LUT2", "CARRY4", "CARRY4")  # source first, the clock buffer left out
    assert lp.source.endswith("(DSP48E1)") and lp.sink.endswith("(CARRY4)") and lp.module == "u_l1_mac"
    assert parse_sta("no timing here") is None


needs_pnr = pytest.mark.skipif(shutil.which("yosys") is None,
                               reason="yosys not installed (Debian package 'yosys'; .ci/run installs it)")


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    try:
        nextpnr_command()
    except PnrError as e:
        pytest.skip(str(e))
    from designs import design, estimate_report
    from kofn.codegen import plan_build, render_build, write_design
    from kofn.core import ir

    out = tmp_path_factory.mktemp("pnr")
    m, lanes = design("pad")
    plan = plan_build(m, lanes)
    write_design(render_build(plan), out)
    ir.save(m, out / "model")
    estimate_report(plan).write(out)
    return out, sum(lanes)


@needs_pnr
@pytest.mark.slow
def test_kofn_synth_ecp5_places_and_routes(small_build, capsys):
    from kofn.app.cli import main

    build, mults = small_build
    assert main(["synth", str(build), "--family", "ecp5", "--freq", "10"]) == 0
    out = capsys.readouterr()
    syn = json.loads((build / "synth.json").read_text())["ecp5"]
    assert syn["met"] and syn["clock_mhz"] == 10.0 and syn["fmax_mhz"] >= 10.0
    assert syn["verdict"].startswith("meets 10 MHz")
    # every lane multiplies 9x8-bit operands: one MULT18X18D each; no block RAM in this design
    assert syn["mult18"] == syn["yosys_cells"]["MULT18X18D"] == mults and syn["dp16kd"] == 0
    assert syn["lut4"] >= syn["yosys_cells"]["LUT4"] and syn["ff"] == syn["yosys_cells"]["TRELLIS_FF"]
    cp = syn["critical_path"]
    assert cp["delay_ns"] > 0 and cp["routing_ns"] > 0 and cp["module"].startswith("u_")
    assert "nextpnr: routing" in out.err and f"| Fmax | {syn['fmax_mhz']:.1f} MHz" in out.out
    report = json.loads((build / "report.json").read_text())
    t = report["timing"]["ecp5"]
    assert t["fmax_mhz"] == syn["fmax_mhz"]
    assert t["throughput_per_s_at_fmax"] == round(syn["fmax_mhz"] * 1e6 / report["latency"]["ii_cycles"], 1)
    assert "Fmax ecp5 (post-route)" in (build / "report.html").read_text()


@needs_pnr
@pytest.mark.slow
def test_kofn_synth_ecp5_failing_timing_is_a_verdict(small_build, capsys):
    from kofn.app.cli import main

    build, _ = small_build
    assert main(["synth", str(build), "--family", "ecp5", "--freq", "1000"]) == 1
    err = capsys.readouterr().err
    syn = json.loads((build / "synth.json").read_text())["ecp5"]
    assert not syn["met"] and syn["fmax_mhz"] < 1000
    assert "timing FAILED on ecp5: FAILS 1000 MHz" in err and "Traceback" not in err
    assert json.loads((build / "report.json").read_text())["timing"]["ecp5"]["met"] is False


def test_kofn_synth_rejects_unknown_family(tmp_path, capsys):
    from kofn.app.cli import main

    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "filelist.f").write_text("kofn_top.sv\n")
    assert main(["synth", str(tmp_path), "--family", "ice40"]) == 2
    assert "expected xc7, xcup or ecp5" in capsys.readouterr().err


def test_stat_json_with_nested_submodules():
    """Yosys 0.23's ``stat -json`` with a submodule inside a submodule (kofn_dense's kept
    select copies) writes bare ``<module> <count>`` lines into its design section: they are
    dropped, and the design's totals read as written."""
    from kofn.codegen.synth import _top_cells, load_stat_json

    text = """{
   "creator": "Yosys 0.23",
   "modules": {
      "$paramod\\\\kofn_keep_reg\\\\W=s32'00000000000000000000000000000100": {
         "num_cells": 4,
         "num_cells_by_type": {
            "FDRE": 4
         }
      },
      "\\\\kofn_top": {
         "num_cells": 2,
         "num_cells_by_type": {
            "LUT6": 1,
            "$paramod\\\\kofn_keep_reg\\\\W=s32'00000000000000000000000000000100": 1
         }
      }
   },
       $paramod\\kofn_keep_reg\\W=s32'00000000000000000000000000000100     1
      "design": {
         "num_cells": 5,
         "num_cells_by_type": {
            "FDRE": 4,
            "LUT6": 1
         }
      }
}
"""
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    doc = load_stat_json(text)
    assert _top_cells(doc, "kofn_top") == {"FDRE": 4, "LUT6": 1}
    assert len(doc["modules"]) == 2
