"""Synthesize the calibration corpus with Yosys and compare with kofn's estimate.

    python benchmarks/calibrate.py [--family xc7,xcup] [--jobs 2] [--out calib.json]

Prints, per family and resource, the median and worst relative error of the estimate
against Yosys ``synth_xilinx`` (DSP and BRAM should be exact), and writes every figure
to the JSON file.  Needs Debian's ``yosys``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from kofn.codegen.calibration import CORPUS, run_corpus


def summarize(results: list[dict]) -> dict:
    out = {}
    for fam in sorted({r["family"] for r in results}):
        rows = [r for r in results if r["family"] == fam and "synth" in r]
        out[fam] = {}
        for key in ("dsp", "bram18", "lut", "ff"):
            errs = [(r["estimate"][key] - r["synth"][key]) / max(1, r["synth"][key]) for r in rows]
            exact = sum(r["estimate"][key] == r["synth"][key] for r in rows)
            out[fam][key] = {"median_abs_error": statistics.median(abs(e) for e in errs),
                             "worst_error": max(errs, key=abs), "exact": exact, "designs": len(rows),
                             "failed": sum(1 for r in results if r["family"] == fam and "error" in r)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="xc7")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="calib.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run_corpus(Path(tmp), [f for f in args.family.split(",") if f], args.jobs,
                             progress=lambda m: print(m, file=sys.stderr, flush=True))
    summary = summarize(results)
    Path(args.out).write_text(json.dumps({"results": results, "summary": summary}, indent=2) + "\n")
    print("| family | resource | exact | median |error| | worst error |\n|---|---|---|---|---|")
    for fam, res in summary.items():
        for key, s in res.items():
            print(f"| {fam} | {key} | {s['exact']}/{s['designs']} | {s['median_abs_error'] * 100:.1f} % | "
                  f"{s['worst_error'] * 100:+.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
