"""`kofn explore` three ways: the plain process pool, the embedded Dask LocalCluster, and a Dask
cluster started beside it (``dask scheduler`` + ``dask worker`` processes on localhost).

    python benchmarks/sweep_dask.py                  # the default sweep, 3 runs each way
    python benchmarks/sweep_dask.py --repeats 1 --epochs 5 -- --ratios 1/4,1/2

Every run is ``kofn explore`` with no config (the embedded digits default) and the default
sweep grid (ratios 1/8,1/4,1/2 x weight bits 4,8 x activation bits 8: 6 trainings of the
config's 60 epochs; lanes 1,2,4,8), ``--fresh`` into a new folder, as a subprocess; its wall
time counts from the command's start to its end (the interpreter, the cluster's start for
the local one, training, the hardware points, the plots).  The external cluster is started
once before the runs and its start is not counted (a user starts it once for many sweeps).
Runs are interleaved (a, b, c, a, b, c, ...) so that machine load hits every way alike.

Then ``resume``: the same command again into the last local run's folder: every training
cached.  Checks: the points, the Pareto front and the pick are identical across every run.
Exit status 0 only when they are.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = {
    "processes": "(a) process pool, `--scheduler processes` (no Dask)",
    "local": "(b) embedded LocalCluster (the default)",
    "external": "(c) `dask scheduler` + {n} `dask worker --nthreads 1`, `--scheduler tcp://...`",
}


def _start_cluster(base: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    sfile = base / "scheduler.json"

    def dask(*args, log):
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=base)

    procs = [dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sfile),
                  log=base / "scheduler.log")]
    deadline = time.monotonic() + 60
    while not sfile.exists():
        if time.monotonic() > deadline or procs[0].poll() is not None:
            raise SystemExit(f"dask scheduler did not start: {(base / 'scheduler.log').read_text()}")
        time.sleep(0.2)
    address = json.loads(sfile.read_text())["address"]
    for i in range(workers):
        wd = base / f"worker{i}"
        wd.mkdir()
        procs.insert(0, dask("worker", address, "--nthreads", "1", "--no-dashboard", "--local-directory", str(wd),
                             log=wd / "worker.log"))
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as c:
        c.wait_for_workers(workers, timeout=120)
    return address, procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def _explore(out: Path, extra: list[str]) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "kofn", "explore", "--out", str(out), "-q", *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):  # 1: no design meets the targets (none are set here)
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return wall, json.loads((out / "explore.json").read_text())


def _result(doc: dict) -> str:
    return json.dumps({"points": doc["points"], "pareto": doc["pareto"], "pick": doc["pick"]}, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs per way (default 3; the table shows medians)")
    ap.add_argument("--workers", type=int, default=None,
                    help="workers of every way (default: the machine's cores, at least 2)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per training (default: the config's, 60)")
    ap.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    ap.add_argument("extra", nargs="*", help="more `kofn explore` options (after --)")
    a = ap.parse_args(argv)
    try:
        n = a.workers or max(2, len(os.sched_getaffinity(0)))
    except AttributeError:
        n = a.workers or max(2, os.cpu_count() or 2)
    extra = [*a.extra, "--fresh"] + (["--epochs", str(a.epochs)] if a.epochs else [])
    walls: dict[str, list[float]] = {w: [] for w in WAYS}
    results: dict[str, set[str]] = {w: set() for w in WAYS}
    docs = {}
    with tempfile.TemporaryDirectory(prefix="kofn-sweep-bench-") as tmp:
        base = Path(tmp)
        (base / "cluster").mkdir()
        address, procs = _start_cluster(base / "cluster", n)
        try:
            args = {"processes": ["--scheduler", "processes", "--workers", str(n)],
                    "local": ["--workers", str(n)],
                    "external": ["--scheduler", address]}
            for rep in range(a.repeats):
                for way in WAYS:
                    wall, doc = _explore(base / f"{way}{rep}", args[way] + extra)
                    walls[way].append(wall)
                    results[way].add(_result(doc))
                    docs[way] = doc
                    print(f"run {rep + 1}/{a.repeats} {way}: {wall:.1f} s", file=sys.stderr, flush=True)
            resume, retrained = [], 0
            for _ in range(a.repeats):
                wall, doc = _explore(base / f"local{a.repeats - 1}", [x for x in extra if x != "--fresh"])
                retrained += doc["sweep"]["trained"]  # 0 unless kofn's code changed under the benchmark
                resume.append(wall)
                results["local"].add(_result(doc))
        finally:
            _stop(procs)
    every = set().union(*results.values())
    same = len(every) == 1
    d = docs["local"]
    sw = d["sweep"]
    trainings = len(sw["ratios"]) * len(sw["weight_bits"]) * len(sw["act_bits"])
    print(f"\n`kofn explore` on {d['name']}: {trainings} trainings x {sw['epochs']} epochs, lanes "
          f"{','.join(map(str, sw['lanes']))} ({len(d['points'])} designs, {len(d['pareto'])} on the Pareto front); "
          f"{n} workers each way; {a.repeats} run(s) each, interleaved; {len(os.sched_getaffinity(0))} cores\n")
    print("| way | wall s, median | min | max | points, front, pick |")
    print("|---|---|---|---|---|")
    for way, label in WAYS.items():
        w = walls[way]
        print(f"| {label.format(n=n)} | {statistics.median(w):.1f} | {min(w):.1f} | {max(w):.1f} | "
              f"{'identical' if len(results[way]) == 1 and same else 'DIFFER'} |")
    print(f"| resume: (b) again into the same --out, all {trainings} trainings cached | "
          f"{statistics.median(resume):.1f} | {min(resume):.1f} | {max(resume):.1f} | "
          f"{'identical' if same else 'DIFFER'} |")
    if retrained:
        print(f"\nWARNING: the resume runs retrained {retrained} points (kofn's code changed during the benchmark?)")
    print(f"\npoints, Pareto front and pick identical across all {sum(map(len, walls.values())) + len(resume)} runs: "
          f"{'yes' if same else 'NO'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"walls": walls, "resume": resume, "identical": same, "workers": n,
                                            "sweep": sw}, indent=1) + "\n")
    return 0 if same and not retrained else 1


if __name__ == "__main__":
    sys.exit(main())
