"""Place and route the timing corpus on ECP5 and fit kofn's pre-synthesis Fmax model to it.

    python benchmarks/calibrate_fmax.py [--jobs 2] [--freq 150] [--out benchmarks/results/fmax_ecp5.json] [--designs a,b]
    python benchmarks/calibrate_fmax.py --fit [--results benchmarks/results/fmax_ecp5.json]

The corpus is every dataflow design of the calibration corpus (``calibration.py``) plus
:data:`EXTRA` (wider lane counts).  Each is rendered, synthesized with Yosys ``synth_ecp5``
and placed and routed by nextpnr-ecp5 (LFE5U-85F, speed 6, CABGA381, placer seed 1) at
``--freq`` (default 150 MHz: nextpnr's router works towards the constraint, so every design
is measured under the same one).  The results (post-route Fmax, critical path, cells) go to
``--out``.  This takes about an hour on 2 busy cores; ``--jobs`` designs run at a time.

``--fit`` fits the coefficients of :mod:`kofn.codegen.fmax` (its documented stage-path
model) on every design except :data:`HELD_OUT`, writes them to ``codegen/fmax_coefficients.py``
of this checkout, and prints the model's error on the fitted designs and on the held-out
ones, with median and worst.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # calibration.py, next to this script

from calibration import CORPUS, _d, build_design, design_build  # noqa: E402

COEFFICIENTS_PY = Path(__file__).resolve().parents[1] / "codegen" / "fmax_coefficients.py"
#: The measured corpus (kept in the repository: tests/codegen/test_fmax.py checks the model on it).
RESULTS_JSON = Path(__file__).resolve().parent / "results" / "fmax_ecp5.json"

#: A design with more lanes than the calibration corpus has (the default digits MLP folds to 16).
#: (A 128-input one with 16 lanes, 13k LUTs, was still routing after 30 minutes on 2 shared
#: cores: too slow to keep in a corpus anyone reruns.)
EXTRA = (replace(_d("m64_k16_p16", [64, 32, 10], [16, 8], [16, 3]), schedule="dataflow"),)
TIMING_CORPUS = tuple(d for d in CORPUS if d.schedule == "dataflow") + EXTRA
#: Left out of the fit; the model's error on them is its held-out error.
HELD_OUT = ("m48_k12_p3_df", "c8_kernel_df", "m24_k6_p3_w4a4s_df", "m64_k16_p16")


def _one(args) -> dict:
    d, out, freq, seed = args
    from kofn.codegen.pnr import PnrError, place_and_route

    _, _, design = build_design(d, out)
    try:
        r = place_and_route(out, design.sources, design.top, clock_mhz=freq, seed=seed)
    except PnrError as e:
        return {"name": d.name, "error": str(e).splitlines()[0]}
    return {"name": d.name, "fmax_mhz": r.fmax_mhz, "clock_mhz": r.clock_mhz, "seed": seed,
            "lut4": r.lut4, "ff": r.ff, "mult18": r.mult18, "critical_path": r.critical_path, "seconds": r.seconds}


def collect(workdir: Path, designs, freq: float, seed: int) -> list[dict]:
    """The results of an earlier (or interrupted) run, read back from each design's nextpnr
    report in ``workdir`` (designs without one are left out)."""
    from kofn.codegen.pnr import parse_report

    out = []
    for d in designs:
        rep = workdir / d.name / "synth" / "nextpnr_ecp5.json"
        if rep.exists():
            _, _, fmax, util, crit = parse_report(json.loads(rep.read_text()), freq)
            used = lambda b: util.get(b, {}).get("used", 0)  # noqa: E731
            out.append({"name": d.name, "fmax_mhz": fmax, "clock_mhz": freq, "seed": seed, "lut4": used("TRELLIS_COMB"),
                        "ff": used("TRELLIS_FF"), "mult18": used("MULT18X18D"), "critical_path": crit, "seconds": None})
    return out


def run(workdir: Path, designs, freq: float, seed: int, jobs: int) -> list[dict]:
    tasks = [(d, workdir / d.name, freq, seed) for d in designs]
    out = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for r in pool.map(_one, tasks):
            out.append(r)
            what = r.get("error") or (f"{r['fmax_mhz']:.1f} MHz, critical in {r['critical_path'].get('module')} "
                                      f"({r['seconds']['synth'] + r['seconds']['pnr']:.0f} s)")
            print(f"{len(out)}/{len(tasks)} {r['name']}: {what}", file=sys.stderr, flush=True)
    return out


def _parts(name: str):
    from kofn.codegen.fmax import design_paths

    d = next(x for x in TIMING_CORPUS if x.name == name)
    b = design_build(d)
    return design_paths(b.model, b.layers, b.schedule, b.stream_in, b.stream_out)


def fit_and_report(results: list[dict]) -> int:
    from kofn.codegen.fmax import fit, predict_period

    names = {d.name for d in TIMING_CORPUS}
    rows = [(r["name"], _parts(r["name"]), 1000.0 / r["fmax_mhz"]) for r in results if "fmax_mhz" in r and r["name"] in names]
    train = [(p, y) for n, p, y in rows if n not in HELD_OUT]
    coef = fit(train)
    COEFFICIENTS_PY.write_text(
        '"""Coefficients of kofn\'s pre-synthesis Fmax model (:mod:`kofn.codegen.fmax`), ns.\n\n'
        "Generated by ``python benchmarks/calibrate_fmax.py --fit`` from nextpnr-ecp5 (LFE5U-85F, speed 6)\n"
        f"on {len(train)} designs of the timing corpus ({len(rows) - len(train)} more held out); do not edit by hand.\n"
        '"""\n\n'
        f"COEFFICIENTS = {json.dumps(coef, indent=4)}\n")
    print(f"wrote {COEFFICIENTS_PY}", file=sys.stderr)
    print("| design | nextpnr MHz | model MHz | error | predicted critical stage | nextpnr critical instance | set |")
    print("|---|---|---|---|---|---|---|")
    errs = {"fit": [], "held out": []}
    for n, parts, y in rows:
        per, stage = predict_period(parts, coef["ecp5"])
        meas, est = 1000.0 / y, 1000.0 / per
        e = (est - meas) / meas
        s = "held out" if n in HELD_OUT else "fit"
        errs[s].append(e)
        crit = next(r for r in results if r["name"] == n)["critical_path"].get("module", "-")
        print(f"| {n} | {meas:.1f} | {est:.1f} | {e:+.1%} | {stage} | {crit} | {s} |")
    for s, e in errs.items():
        if e:
            print(f"{s}: {len(e)} designs, median |error| {statistics.median(abs(x) for x in e):.1%}, "
                  f"worst {max(e, key=abs):+.1%}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="fit the model on --results instead of running the corpus")
    ap.add_argument("--results", type=Path, default=RESULTS_JSON)
    ap.add_argument("--out", type=Path, default=RESULTS_JSON)
    ap.add_argument("--workdir", type=Path, default=Path("fmax-corpus"))
    ap.add_argument("--freq", type=float, default=150.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--designs", default=None, help="comma separated subset (default: the whole corpus)")
    ap.add_argument("--collect", action="store_true",
                    help="read the results back from --workdir's nextpnr reports instead of running")
    a = ap.parse_args(argv)
    if a.fit:
        return fit_and_report(json.loads(a.results.read_text())["results"])
    designs = TIMING_CORPUS
    if a.designs:
        want = set(a.designs.split(","))
        designs = tuple(d for d in TIMING_CORPUS if d.name in want)
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.collect:
        res = collect(a.workdir.resolve(), designs, a.freq, a.seed)
    else:
        res = run(a.workdir.resolve(), designs, a.freq, a.seed, a.jobs)
    if a.out.exists() and a.designs:  # a subset updates an earlier run
        old = {r["name"]: r for r in json.loads(a.out.read_text())["results"]}
        old.update({r["name"]: r for r in res})
        res = list(old.values())
    doc = {"tool": "nextpnr-ecp5 (yowasp), LFE5U-85F CABGA381 speed 6", "freq_mhz": a.freq, "seed": a.seed,
           "results": res}
    a.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
