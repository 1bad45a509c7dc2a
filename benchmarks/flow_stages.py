"""Benchmark: stage times of `kofn flow` on a config, median over repeated runs.

    python benchmarks/flow_stages.py [CONFIG.toml] [--runs 3]

Prints one row per stage (median and spread of seconds) and the total; the
figures quoted in issues and notes come from here, not from the tests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kofn.app.config import default_config_text, load_config
from kofn.app.flow import Progress, run_flow


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(args.config)
    text = Path(args.config).read_text() if args.config else default_config_text()
    stages: dict[str, list[float]] = {}
    totals = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            p = Progress(quiet=True)
            t = time.perf_counter()
            run_flow(cfg, Path(d), p, config_text=text)
            totals.append(time.perf_counter() - t)
            for k, v in p.times.items():
                stages.setdefault(k, []).append(v)
        print(f"run {i + 1}/{args.runs}: {totals[-1]:.1f}s", flush=True)
    print(f"{'stage':55s} {'median s':>9s} {'min':>7s} {'max':>7s}")
    for k, v in stages.items():
        print(f"{k:55s} {statistics.median(v):9.2f} {min(v):7.2f} {max(v):7.2f}")
    print(f"{'total':55s} {statistics.median(totals):9.2f} {min(totals):7.2f} {max(totals):7.2f}")


if __name__ == "__main__":
    main()
