"""`kofn synth`: Yosys synth_xilinx runs on a build and its cell counts are parsed.

The calibration corpus itself (estimate against synthesis for every design) runs in
benchmarks/calibrate.py; see the README for its figures."""

from __future__ import annotations

import json
import shutil

import pytest

from kofn.codegen.synth import count_cells

pytestmark = pytest.mark.skipif(shutil.which("yosys") is None,
                                reason="yosys not installed (Debian package 'yosys'; .ci/run installs it)")


def test_count_cells_vendor_style():
    cells = {"LUT6": 10, "LUT2": 3, "RAM64M": 2, "SRLC32E": 1, "FDRE": 7, "FDSE": 1, "DSP48E1": 2,
             "RAMB36E1": 1, "RAMB18E1": 3, "CARRY4": 5, "MUXF7": 4}
    c = count_cells(cells, "xc7")
    assert c == {"lut": 13 + 8 + 1, "lutram": 9, "ff": 8, "dsp": 2, "ramb18": 3, "ramb36": 1, "bram18": 5, "carry": 5}


@pytest.mark.slow
def test_kofn_synth_on_a_small_build(tmp_path, capsys):
    from designs import design
    from kofn.cli import main
    from kofn.codegen import plan_layers, render, resources, write_design

    m, lanes = design("pad")
    plans = plan_layers(m, lanes)
    d = render(m, plans)
    write_design(d, tmp_path)
    res = resources(m, plans)
    (tmp_path / "report.json").write_text(json.dumps({"resources": {"dsp": res.dsp, "bram18": res.bram18,
                                                                    "lut": res.lut, "ff": res.ff}}))
    assert main(["synth", str(tmp_path), "--family", "xc7"]) == 0
    table = capsys.readouterr().out
    syn = json.loads((tmp_path / "synth.json").read_text())["xc7"]
    assert syn["lut"] > 0 and syn["ff"] > 0
    # every lane of both layers multiplies 9x8-bit operands: one DSP48E1 each, as estimated
    assert syn["dsp"] == res.dsp == sum(lanes)
    assert f"| dsp | {res.dsp} | {syn['dsp']} |" in table
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["resources"]["synth"]["xc7"]["dsp"] == syn["dsp"]
