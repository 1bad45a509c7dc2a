"""`kofn flow` end to end, as a user runs it: the CLI, the build folder, report.json."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from kofn.core import ir
from kofn.app.cli import main
from kofn.app.config import default_config_text
from kofn.core.reference import run
from test_examples import _assert_exports_exact

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    """`kofn flow` with no config, run as a user would: from a folder, with a relative --out."""
    here = tmp_path_factory.mktemp("flow")
    cwd = os.getcwd()
    os.chdir(here)
    try:
        rc = main(["flow", "--out", "out", "--quiet"])
    finally:
        os.chdir(cwd)
    return rc, here / "out"


def test_default_flow_report(default_build):
    rc, out = default_build
    assert rc == 0
    r = json.loads((out / "report.json").read_text())
    assert r["top"] == "kofn_top"
    for sim in ("rtl", "hls"):
        assert r["bitexact"][sim]["vectors"] >= 1000 + 300
        assert r["bitexact"][sim]["mismatches"] == 0
    assert r["latency"]["measured_cycles"] == r["latency"]["estimated_cycles"]
    assert r["latency"]["measured_ii_cycles"] == r["latency"]["ii_cycles"]
    # issue 13's acceptance: the default design runs its multipliers at >= 80 % of their limit
    eff = r["efficiency"]
    assert r["latency"]["schedule"] == "dataflow"
    assert eff["ii"] == r["latency"]["measured_ii_cycles"]
    assert eff["mac_efficiency"] == round(eff["macs"] / (eff["multipliers"] * eff["ii"]), 4) >= 0.80
    assert eff["macs"] == 32 * 16 + 10 * 8  # 64-32-10 keeping 16 and 8 inputs per neuron
    assert eff["multipliers"] == sum(l["lanes"] for l in r["layers"])
    assert r["accuracy"]["integer"] >= 0.93
    assert r["accuracy"]["rtl_on_test"] == r["accuracy"]["integer"]
    assert r["lint"]["verilator_wall"] == "clean"
    # the Fmax model's estimate, before any synthesis, with the throughput at that clock (the
    # JSON rounds Fmax to 0.1 MHz and the period to 1 ps)
    fx, ii = r["timing"]["estimate"], r["latency"]["ii_cycles"]
    assert abs(fx["fmax_mhz"] - 1000 / fx["period_ns"]) <= 0.06
    assert abs(fx["throughput_per_s_at_fmax"] - fx["fmax_mhz"] * 1e6 / ii) <= 0.05 * 1e6 / ii
    assert fx["critical"]["instance"].startswith("u_l") and "Fmax estimate" in (out / "report.md").read_text()
    assert {"dsp", "bram18", "lut", "ff"} <= set(r["resources"])
    assert 0 < r["memory"]["rom_bits"] < r["memory"]["dense_bits"]
    # the IP's README reports the RTL simulation's cycles in its measured column (sim_cycles > 0:
    # the RTL simulation really ran and counted them)
    assert r["bitexact"]["rtl"]["sim_cycles"] > 0
    # the simulation phase's cycles and seconds (issue 27: rtl_cycles / rtl_seconds, build excluded)
    rtl = r["bitexact"]["rtl"]
    assert rtl["rtl_cycles"] == rtl["sim_cycles"] and 0 < rtl["rtl_seconds"] < rtl["rtl_run_seconds"]
    assert rtl["rtl_cycles_per_s"] == round(rtl["rtl_cycles"] / rtl["rtl_seconds"])
    readme = (out / "README.md").read_text()
    lat = r["latency"]
    assert f"| {lat['estimated_cycles']} | {lat['measured_cycles']} |" in readme
    assert f"| {lat['ii_cycles']} | {lat['measured_ii_cycles']} |" in readme
    assert "not simulated" not in readme


def test_default_flow_report_html_renders(default_build, tmp_path):
    """report.html is self-contained and renders in headless Chromium without errors."""
    from browser import assert_renders

    _, out = default_build
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing fetched from anywhere
    for heading in ("Accuracy", "Bit-exactness", "Latency and resources", "Weight storage", "Masks", "Training"):
        assert f"<h2>{heading}" in page
    assert "MAC efficiency" in page and 'alt="busy cycles per dataflow stage"' in page
    r = assert_renders(out / "report.html", tmp_path)
    assert "kofn report: digits_mlp" in r.dom


def test_kofn_synth_on_the_default_build(default_build, capsys):
    """Acceptance: DSP and BRAM equal the estimate, LUT and FF within 15 %, both families."""
    import shutil

    if shutil.which("yosys") is None:
        pytest.skip("yosys not installed (Debian package 'yosys'; .ci/run installs it)")
    _, out = default_build
    assert main(["synth", str(out), "--family", "xc7,xcup"]) == 0
    r = json.loads((out / "report.json").read_text())["resources"]
    for fam in ("xc7", "xcup"):
        est, syn = r["by_family"][fam], r["synth"][fam]
        assert (est["dsp"], est["bram18"]) == (syn["dsp"], syn["bram18"])
        for key in ("lut", "ff"):
            assert abs(est[key] - syn[key]) <= 0.15 * syn[key], (fam, key, est[key], syn[key])
    assert "Yosys synth_xilinx xcup" in (out / "report.html").read_text()


def test_explore_fine_tunes_from_a_build(default_build, tmp_path):
    """`kofn explore --from BUILD` starts from the trained weights: one epoch of fine-tuning
    beats one epoch from scratch by a wide margin."""
    _, out = default_build
    args = ["--epochs", "1", "--ratios", "1/8", "--weight-bits", "8", "--lanes", "8", "--jobs", "1", "-q"]
    main(["explore", "--from", str(out), "--out", str(tmp_path / "ft"), *args])
    main(["explore", "--out", str(tmp_path / "scratch"), *args])
    ft = json.loads((tmp_path / "ft" / "explore.json").read_text())
    scratch = json.loads((tmp_path / "scratch" / "explore.json").read_text())
    assert ft["sweep"]["from_build"] == str(out)
    assert ft["points"][0]["accuracy"] > scratch["points"][0]["accuracy"] + 0.1


def test_default_flow_folder(default_build):
    _, out = default_build
    for rel in ("model/model.json", "model/model.npz", "model/model.pt", "rtl/kofn_top.sv", "rtl/kofn_dense.sv",
                "hls/kofn_top.cpp", "hls/run_hls.tcl", "vectors/inputs.npy", "vectors/expected.npy", "report.md",
                "config.toml", "rtl/filelist.f", "ip/package_ip.tcl", "ip/clock.xdc", "README.md"):
        assert (out / rel).is_file(), rel
    assert list((out / "rom").glob("*.mem"))
    # expected.npy is the reference's output on inputs.npy, from the saved IR alone
    m = ir.load(out / "model")
    np.testing.assert_array_equal(np.load(out / "vectors" / "expected.npy"), run(m, np.load(out / "vectors" / "inputs.npy")))
    # k/n <= 1/4 in every layer
    assert all(layer.k * 4 <= layer.n for layer in m.layers)


def test_default_build_exports_exactly(default_build):
    _, out = default_build
    _assert_exports_exact(out, 1359)


def test_onnx_round_trip_rebuilds_identically(default_build, tmp_path):
    """Export the trained default model to ONNX, import it with `model = ...` (a quantized
    k-of-n model goes straight to codegen), rebuild: every output code is the same."""
    _, out = default_build
    assert main(["export", "onnx", str(out), "-o", str(tmp_path / "m.onnx"), "--no-check"]) == 0
    (tmp_path / "rt.toml").write_text('name = "round_trip"\nmodel = "m.onnx"\n')
    assert main(["flow", str(tmp_path / "rt.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    a, b = (np.load(d / "vectors" / "expected.npy") for d in (out, tmp_path / "o"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.load(out / "vectors" / "inputs.npy"), np.load(tmp_path / "o" / "vectors" / "inputs.npy"))
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert r["bitexact"]["rtl"]["mismatches"] == 0 and r["bitexact"]["hls"]["mismatches"] == 0
    assert r["accuracy"]["integer"] == json.loads((out / "report.json").read_text())["accuracy"]["integer"]


def test_resimulate_from_saved_ir(default_build):
    _, out = default_build
    assert main(["sim", str(out), "--quiet"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["bitexact"]["rtl"]["mismatches"] == 0 and r["bitexact"]["hls"]["mismatches"] == 0
    # the same RTL is not built again: the copied build folder's Verilator build is kept
    assert "already holds this build" in (out / "sim_build.log").read_text()


def test_config_error_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(re.sub(r"^k = 16", "k = 99", default_config_text(), count=1, flags=re.M))
    assert main(["flow", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "layers[0].k" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing ran
