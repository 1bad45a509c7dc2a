"""The resource estimate against Yosys synth_xilinx (7-series and UltraScale+).

* block RAM tiling: ``bram_cells`` against Yosys on ROM shapes of every aspect;
* the calibration corpus (39 generated designs, sequential and dataflow, both families): DSP and BRAM exact,
  LUT and FF within 15 % (UltraScale+ LUTs: 30 %, see below).  That is the fit: the
  shipped coefficients were fitted on these designs;
* prediction: coefficients fitted without a fixed set of held-out designs
  (:data:`HELD_OUT`) estimate those designs (bounds in the test);
* ``kofn synth`` on a build.

The corpus and the fitting live in ``benchmarks/calibration.py`` (pytest puts
``benchmarks/`` on the path); benchmarks/calibrate.py prints the same error distribution
(see docs/estimates.md)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess

import pytest

from kofn.codegen.packing import bram_cells, rom_in_bram
from kofn.codegen.synth import count_cells

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None,
                                 reason="yosys not installed (Debian package 'yosys'; .ci/run installs it)")
FAMILIES = ("xc7", "xcup")


def test_count_cells_vendor_style():
    cells = {"LUT6": 10, "LUT2": 3, "RAM64M": 2, "SRLC32E": 1, "FDRE": 7, "FDSE": 1, "DSP48E1": 2,
             "RAMB36E1": 1, "RAMB18E1": 3, "CARRY4": 5, "MUXF7": 4}
    c = count_cells(cells, "xc7")
    assert c == {"lut": 13 + 8 + 1, "lutram": 9, "ff": 8, "dsp": 2, "ramb18": 3, "ramb36": 1, "bram18": 5, "carry": 5}


# (depth, width): every RAMB18 aspect, RAMB36-only widths, ties and non-powers of two
ROM_SHAPES = [(128, 64), (1024, 8), (512, 36), (2048, 9), (300, 40), (512, 100), (2000, 10), (4096, 4)]


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_block_ram_tiling_matches_yosys(tmp_path, family):
    import random

    src = []
    for i, (d, w) in enumerate(ROM_SHAPES):
        assert rom_in_bram(d, w)
        rnd = random.Random(i)
        (tmp_path / f"r{i}.mem").write_text("\n".join(format(rnd.getrandbits(w), "x") for _ in range(d)) + "\n")
        src.append(f"""module r{i} (input logic clk, input logic [{max(1, (d - 1).bit_length()) - 1}:0] a,
                   output logic [{w - 1}:0] q);
    (* rom_style = "block" *) logic [{w - 1}:0] rom [0:{d - 1}];
    initial $readmemh("r{i}.mem", rom);
    always_ff @(posedge clk) q <= rom[a];
endmodule""")
    (tmp_path / "roms.sv").write_text("\n".join(src) + "\n")
    for i, (d, w) in enumerate(ROM_SHAPES):
        stat = tmp_path / f"stat{i}.json"
        subprocess.run(["yosys", "-q", "-p", f"read_verilog -sv roms.sv; synth_xilinx -family {family} -noiopad "
                        f"-top r{i}; tee -q -o {stat.name} stat -json"], cwd=tmp_path, check=True, capture_output=True)
        cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
        got = count_cells({k: int(v) for k, v in cells.items()}, family)
        assert (got["ramb18"], got["ramb36"]) == bram_cells(d, w), (d, w, cells)


@pytest.fixture(scope="module")
def corpus_synth(tmp_path_factory):
    """Yosys on every corpus design for both families (shared by the tests below).  A design
    whose RTL and ROM text, script and Yosys version match an entry of
    ``benchmarks/results/yosys_corpus.json`` takes Yosys's outputs from there (parsed by today's
    ``kofn.codegen.synth``), the others run Yosys (about 20 minutes of CPU for the whole corpus);
    :func:`test_yosys_cache_is_current_and_reproduces_yosys` checks the file against Yosys."""
    from calibration import YOSYS_CACHE, run_corpus

    out = tmp_path_factory.mktemp("corpus")
    results = run_corpus(out, FAMILIES, jobs=2, progress=print, cache=YOSYS_CACHE)
    hits = sum(r.get("cached", False) for r in results)
    print(f"corpus: {hits} of {len(results)} from {YOSYS_CACHE.name}, {len(results) - hits} synthesized")
    for r in results:
        r.pop("yosys", None)
    # kept with pytest's temporary folders: `benchmarks/calibrate.py --fit --results` reads it
    (out / "calib.json").write_text(json.dumps({"results": results}, indent=2) + "\n")
    return results


#: Corpus designs the cache test synthesizes afresh, both families: the smallest, as a sequential
#: and as a dataflow top (seconds each; Yosys's determinism, not coverage, is what they check).
CACHE_SPOT_CHECK = ("m16_k4_p1", "m16_k4_p1_df")


@needs_yosys
@pytest.mark.slow
def test_yosys_cache_is_current_and_reproduces_yosys(tmp_path):
    """``benchmarks/results/yosys_corpus.json`` holds an entry for every corpus design and family
    as rendered today (else: ``python benchmarks/calibrate.py --family xc7,xcup --save-cache``
    after an RTL change), and Yosys run now on :data:`CACHE_SPOT_CHECK` writes exactly the cell
    counts and instances the cache holds for them."""
    from calibration import (CORPUS, YOSYS_CACHE, _cache_entries, _raw_outputs, _restore_outputs, design_build,
                             synth_key)
    from kofn.codegen import render_build, write_design
    from kofn.codegen.synth import read_synth_outputs, synthesize

    entries = _cache_entries(str(YOSYS_CACHE))
    stale = []
    for d in CORPUS:
        design = render_build(design_build(d))
        if d.name in CACHE_SPOT_CHECK:
            write_design(design, tmp_path / d.name)
        for fam in FAMILIES:
            key = synth_key(design, fam)
            if key not in entries:
                stale.append(f"{d.name} ({fam})")
            elif d.name in CACHE_SPOT_CHECK:
                fresh = synthesize(tmp_path / d.name, design.sources, design.top, fam, timing=False)
                assert _raw_outputs(tmp_path / d.name, fam) == entries[key], (d.name, fam)
                (tmp_path / "cached").mkdir(exist_ok=True)
                _restore_outputs(tmp_path / "cached", fam, entries[key])
                again = read_synth_outputs(tmp_path / "cached", design.top, fam)
                assert (again.cells, again.instances) == (fresh.cells, fresh.instances), (d.name, fam)
    assert not stale, (f"{len(stale)} corpus syntheses are not in {YOSYS_CACHE.name} (RTL, ROMs or Yosys changed): "
                       f"run python benchmarks/calibrate.py --family xc7,xcup --save-cache: {stale[:6]}")


def test_predict_is_the_estimators_arithmetic():
    """``calibration.predict`` (used to score coefficients fitted here) gives exactly what the
    estimator gives with its installed coefficients, on every corpus design."""
    from calibration import CORPUS, estimate, predict
    from kofn.codegen.coefficients import COEFFICIENTS

    assert {d.schedule for d in CORPUS} == {"sequential", "dataflow"}
    for fam in FAMILIES:
        for d in CORPUS:
            e = estimate(d, fam)
            assert predict(d, fam, COEFFICIENTS[fam]) == {"lut": e.lut, "ff": e.ff}, (d.name, fam)


@needs_yosys
@pytest.mark.slow
def test_calibration_corpus_against_yosys(corpus_synth):
    """Every corpus design, both families: DSP and BRAM exact, LUT and FF within 15 %
    (in-sample: the coefficients were fitted on these designs)."""
    from calibration import CORPUS

    assert len(CORPUS) >= 20
    results = corpus_synth
    assert len(results) == len(FAMILIES) * len(CORPUS)
    failed = [(r["name"], r["family"], r["error"]) for r in results if "error" in r]
    assert not failed
    errors = {}
    for r in results:
        e, s = r["estimate"], r["synth"]
        assert (e["dsp"], e["bram18"]) == (s["dsp"], s["bram18"]), (r["name"], r["family"], e, s)
        for key in ("lut", "ff"):
            errors.setdefault((r["family"], key), []).append(((e[key] - s[key]) / s[key], r["name"]))
    for (fam, key), errs in sorted(errors.items()):
        worst = max(errs, key=lambda t: abs(t[0]))
        print(f"{fam} {key}: median |error| {statistics.median(abs(x) for x, _ in errs) * 100:.1f} %, "
              f"worst {worst[0] * 100:+.1f} % ({worst[1]})")
    # The target is 15 % everywhere; xc7 meets it on every design.  Known miss: Yosys's
    # UltraScale+ LUT mapping of wide muxes (MUXF7/8/9 trees fed by LUT1s) varies with the
    # rest of the design: the same kofn_conv module maps to 1,298 LUTs alone and 3,141 inside
    # c6_stride.  xcup LUTs are held to 30 % per design and 10 % median (docs/estimates.md figures).
    def bound(fam, key):
        return 0.30 if (fam, key) == ("xcup", "lut") else 0.15

    assert statistics.median(abs(x) for x, _ in errors[("xcup", "lut")]) <= 0.10
    bad = [(fam, key, name, round(x * 100, 1)) for (fam, key), errs in errors.items() for x, name in errs
           if abs(x) > bound(fam, key)]
    assert not bad, bad


#: Designs the held-out test leaves out of the fit, then predicts: fixed, chosen for variety
#: before measuring (MLPs with DSP multipliers, narrow weights, a 16-bit output, LUT
#: multipliers with signed 4-bit activations, and a CNN: 3x3 convolution, pool, dense).
HELD_OUT = ("m48_k12_p3", "m40_k5_p5_w4", "m20_k5_p2_o16", "m24_k6_p3_w4a4s", "c8_w_pool")
#: Per-design bound on the held-out relative LUT and FF error (see the test's docstring).
HELD_OUT_BOUND = {("xc7", "lut"): 0.25, ("xc7", "ff"): 0.10, ("xcup", "lut"): 0.30, ("xcup", "ff"): 0.10}


@needs_yosys
@pytest.mark.slow
def test_calibration_predicts_held_out_designs(corpus_synth):
    """Prediction, not fit: LUT and FF coefficients fitted (``calibration.fit``, as
    ``benchmarks/calibrate.py --fit`` does) on the corpus without :data:`HELD_OUT`, then
    applied (``calibration.predict``, the estimator's arithmetic) to the held-out designs,
    against Yosys.

    Measured (Yosys 0.23), held-out median |error| and worst error:

    * xc7: LUT 6.0 %, -17.5 % (m24_k6_p3_w4a4s); FF 2.9 %, +7.9 % (m40_k5_p5_w4);
    * xcup: LUT 4.6 %, -23.4 % (m24_k6_p3_w4a4s); FF 1.5 %, +6.1 % (m24_k6_p3_w4a4s).

    Bounds per design: LUT 25 % (xc7) and 30 % (xcup, as in-sample), FF 10 %; median LUT
    error 10 %.  Prediction is looser than the in-sample 15 %: the worst design is the one
    with LUT multipliers, whose ``mul`` coefficient is then fitted on the corpus's only other
    such design (``m32_k8_p4_w3a4``)."""
    from calibration import CORPUS, fit, predict, samples

    by_name = {d.name: d for d in CORPUS}
    assert set(HELD_OUT) <= set(by_name) and len(set(HELD_OUT)) == len(HELD_OUT)
    done = [r for r in corpus_synth if "synth" in r]
    assert {(r["name"], r["family"]) for r in done} >= {(n, f) for n in HELD_OUT for f in FAMILIES}
    smp = samples(done)
    errors = {}
    for fam in FAMILIES:
        coef = fit(smp, fam, exclude=HELD_OUT)
        assert coef == fit([s for s in smp if s[0] not in HELD_OUT], fam)  # nothing of them in the fit
        for r in done:
            if r["family"] != fam or r["name"] not in HELD_OUT:
                continue
            got, syn = predict(by_name[r["name"]], fam, coef), r["synth"]
            for key in ("lut", "ff"):
                errors.setdefault((fam, key), []).append(((got[key] - syn[key]) / syn[key], r["name"]))
    for (fam, key), errs in sorted(errors.items()):
        worst = max(errs, key=lambda t: abs(t[0]))
        print(f"held out, {fam} {key}: median |error| {statistics.median(abs(x) for x, _ in errs) * 100:.1f} %, "
              f"worst {worst[0] * 100:+.1f} % ({worst[1]}); "
              + ", ".join(f"{name} {x * 100:+.1f} %" for x, name in errs))
    assert sorted(errors) == sorted(HELD_OUT_BOUND)
    for fam in FAMILIES:
        assert statistics.median(abs(x) for x, _ in errors[(fam, "lut")]) <= 0.10, fam
    bad = [(fam, key, name, round(x * 100, 1)) for (fam, key), errs in errors.items() for x, name in errs
           if abs(x) > HELD_OUT_BOUND[(fam, key)]]
    assert not bad, bad


@needs_yosys
@pytest.mark.slow
def test_kofn_synth_on_a_small_build(tmp_path, capsys):
    from designs import design, estimate_report
    from kofn.core import ir
    from kofn.app.cli import main
    from kofn.codegen import plan_build, render_build, resources, write_design

    m, lanes = design("pad")
    plan = plan_build(m, lanes)
    plans = plan.layers
    d = render_build(plan)
    write_design(d, tmp_path)
    ir.save(m, tmp_path / "model")
    res = resources(m, plans, "xc7", plan.schedule, plan.stream_in, plan.stream_out)
    estimate_report(plan).write(tmp_path)
    assert main(["synth", str(tmp_path), "--family", "xc7"]) == 0
    table = capsys.readouterr().out
    syn = json.loads((tmp_path / "synth.json").read_text())["xc7"]
    assert syn["lut"] > 0 and syn["ff"] > 0
    # every lane of both layers multiplies 9x8-bit operands: one DSP48E1 each, as estimated
    assert syn["dsp"] == res.dsp == sum(lanes)
    assert f"| dsp | {res.dsp} | {syn['dsp']} | exact |" in table
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["resources"]["synth"]["xc7"]["dsp"] == syn["dsp"]
    # per-instance figures: every module instance of the dataflow top (each layer's buffer,
    # control and core, the output buffer and m_axis side) plus the top's own logic, adding
    # up to the total
    from kofn.codegen.estimate import df_instances

    inst = report["resources"]["synth"]["xc7"]["instances"]
    expected = {name for _, name, _, _ in df_instances(m, plans, "xc7", plan.stream_in, plan.stream_out)}
    assert expected == {"u_l0_buf", "u_l0_ctrl", "u_l0_mac", "u_l1_buf", "u_l1_ctrl", "u_l1_mac", "u_out_buf", "u_out"}
    assert set(inst) == expected | {"top"}
    assert sum(v["lut"] for v in inst.values()) == syn["lut"]
    assert sum(v["ff"] for v in inst.values()) == syn["ff"]
    assert "Yosys synth_xilinx xc7" in (tmp_path / "report.html").read_text()
    # the logic-only timing path (Yosys sta over the flattened netlist): a positive delay made of
    # cells the netlist holds, ending in a design instance, labelled as excluding routing
    lp = syn["logic_path"]
    assert lp["ns"] > 0 and lp["excludes"] == "routing" and lp["untimed"] == []
    assert set(lp["cells"]) <= set(syn["cells"])
    assert lp["module"] in expected
    assert report["timing"]["xc7"]["ns"] == lp["ns"]
