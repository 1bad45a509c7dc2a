"""Benchmark: RTL simulation speed of the cocotb run against a plain `verilator --binary` harness.

    python benchmarks/sim_speed.py [--designs default,cnn_digits,lenet5_mnist] [--runs 3]
                                   [--work DIR] [--epochs N] [--flat-rw] [--json FILE]

For each design, `kofn flow` builds it once into WORK/NAME (kept between runs of this script;
``--epochs`` shortens the training of the example configs, which changes the weights but not
the hardware's shape or cycles).  Then, on the flow's own RTL vectors, side by side:

* cocotb: :func:`kofn.sim.rtl.simulate_rtl`, what `kofn flow` runs (the SystemVerilog bench
  ``kofn_tb`` under cocotb and Verilator); ``sim s`` is the simulator's wall time from time 0 to
  the bench's done (``rtl_seconds`` in report.json), ``process s`` the whole simulator process
  (Python start-up and cocotb included);
* plain: the same bench and RTL built with ``verilator --binary`` (no cocotb, no VPI; the bench
  makes its clock and calls $finish), run on the same files and plusargs; its process wall time;
* ``--flat-rw``: also the cocotb build with ``--public-flat-rw`` (cocotb's default), to show what
  dropping it is worth.

Medians over ``--runs``.  Build times (seconds): cocotb's runner as the flow used it before (the
top alone, ``--public-flat-rw``), kofn's build with an empty object cache, with the cached
Verilator run-time objects, and a second build of unchanged RTL (kept as it is), and the plain
harness.  The figures quoted in the README come from here, not from the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = {"cnn_digits": REPO / "examples" / "cnn_digits.toml", "lenet5_mnist": REPO / "examples" / "lenet5_mnist.toml"}


def _config(name: str, epochs: int | None, work: Path) -> Path | None:
    """The config to build ``name`` from (None: the embedded default), with ``epochs`` and an
    absolute data path when shortened."""
    if name == "default":
        return None
    src = EXAMPLES[name]
    if epochs is None:
        return src
    text = src.read_text()
    text = re.sub(r"^epochs = \d+", f"epochs = {epochs}", text, flags=re.M)
    text = re.sub(r'^path = "([^"]+)"', lambda m: f'path = "{(src.parent / m.group(1)).resolve()}"', text, flags=re.M)
    out = work / f"{name}.toml"
    out.write_text(text)
    return out


def _flow(name: str, cfg: Path | None, out: Path) -> None:
    if (out / "report.json").exists():
        return
    cmd = [sys.executable, "-m", "kofn", "flow", "-q", "--out", str(out)] + ([str(cfg)] if cfg else [])
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"{name}: kofn flow in {time.perf_counter() - t:.0f} s", flush=True)


def _design(out: Path):
    """Top, sources, stream layout and the RTL run's settings and vectors of a flow build."""
    from kofn.app.build_dir import open_build
    from kofn.app.flow import plan_build, watchdog_cycles
    from kofn.codegen import axis_args

    b = open_build(out, need_config=True)
    plan = plan_build(b.model, b.config)
    report = json.loads((out / "report.json").read_text())
    n = report["bitexact"]["rtl"]["vectors"]
    x = np.load(out / "vectors" / "inputs.npy")[:n]
    e = np.load(out / "vectors" / "expected.npy")[:n]
    srcs = [out / "rtl" / f for f in (out / "rtl" / "filelist.f").read_text().split()]
    sim = b.config.sim
    run = dict(stall_prob=sim.stall_prob, timing_vectors=sim.timing_vectors, seed=sim.seed,
               watchdog_cycles=watchdog_cycles(plan))
    return plan.top, srcs, axis_args(plan), run, x, e


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _runner_build(srcs, top, bdir: Path) -> None:
    """The build the flow ran before the SV bench: cocotb's runner, the top alone."""
    from cocotb_tools.runner import get_runner

    from kofn.sim.rtl import _use_verilator

    _use_verilator()
    get_runner("verilator").build(sources=[str(s) for s in srcs], hdl_toplevel=top, build_dir=str(bdir), always=True,
                                  log_file=str(bdir.parent / f"{bdir.name}.log"))


def _plain_build(srcs, top, axis, bdir: Path, extra=()) -> Path:
    from kofn.sim.rtl import MODEL_OPT, VERILATOR_TIMING_ARGS, bench_parameters, bench_source
    from kofn.sim.tools import verilator_bin, verilator_env

    params = bench_parameters(**axis)
    cmd = [verilator_bin(), "--binary", *VERILATOR_TIMING_ARGS, "-j", str(os.cpu_count() or 1), "--timescale",
           "1ns/1ps", *(arg for opt in MODEL_OPT for arg in ("-MAKEFLAGS", opt)), "-DKOFN_TB_FINISH", f"-DKOFN_DUT={top}", "--top-module", "kofn_tb",
           *(f"-G{k}={v}" for k, v in params.items()), "-Mdir", str(bdir), *extra, str(bench_source()), *map(str, srcs)]
    with open(bdir.parent / f"{bdir.name}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=verilator_env())
    return bdir / "Vkofn_tb"


def _flat_rw_build(srcs, top, axis, bdir: Path) -> None:
    """kofn's cocotb build plus --public-flat-rw (what cocotb's runner would add)."""
    import kofn.sim.rtl as rtl

    saved = rtl.VERILATOR_BENCH_ARGS
    rtl.VERILATOR_BENCH_ARGS = (*saved, "--public-flat-rw")
    try:
        rtl.build_rtl(srcs, top, bdir, bdir.parent / f"{bdir.name}.log", **axis)
    finally:
        rtl.VERILATOR_BENCH_ARGS = saved


def measure(name: str, out: Path, runs: int, flat_rw: bool, build_times: bool = True) -> dict:
    from kofn.sim.rtl import bench_plusargs, build_rtl, simulate_rtl, write_stimulus

    top, srcs, axis, run, x, e = _design(out)
    bench = out / "sim_speed"
    shutil.rmtree(bench, ignore_errors=True)
    bench.mkdir()
    builds = {}
    if build_times:
        builds["runner, top alone (before)"] = _timed(lambda: _runner_build(srcs, top, bench / "runner"))
    with tempfile.TemporaryDirectory() as cache:  # a fresh object cache: this script leaves the user's alone
        old = os.environ.get("KOFN_CACHE_DIR")
        os.environ["KOFN_CACHE_DIR"] = cache
        try:
            if build_times:
                builds["kofn_tb, empty object cache"] = _timed(lambda: build_rtl(srcs, top, bench / "cold", **axis))
            label = "kofn_tb, cached run-time objects" if build_times else "kofn_tb"
            builds[label] = _timed(lambda: build_rtl(srcs, top, bench / "cocotb", **axis))
            builds["kofn_tb, unchanged RTL again"] = _timed(lambda: build_rtl(srcs, top, bench / "cocotb", **axis))
            if flat_rw:
                builds["kofn_tb + --public-flat-rw (cached objects)"] = _timed(
                    lambda: _flat_rw_build(srcs, top, axis, bench / "flat_rw"))
        finally:
            if old is None:
                del os.environ["KOFN_CACHE_DIR"]
            else:
                os.environ["KOFN_CACHE_DIR"] = old
    builds["plain verilator --binary"] = _timed(lambda: _plain_build(srcs, top, axis, bench / "plain"))
    shutil.rmtree(bench / "cold", ignore_errors=True)
    shutil.rmtree(bench / "runner", ignore_errors=True)

    sim_dir = bench / "run"  # the simulations' working directory: rom/ beside it as in the build
    sim_dir.mkdir()
    (sim_dir / "rom").symlink_to(out / "rom")
    cocotb, process, cycles = [], [], None
    cocotb_cpu, process_cpu, plain_cpu = [], [], []
    flat = []
    for _ in range(runs):
        c0 = _children_cpu()
        r = simulate_rtl(sim_dir, top, x, e, **axis, build_dir=bench / "cocotb", **run)
        process_cpu.append(_children_cpu() - c0)
        assert r.passed and r.mismatches == 0, r
        cocotb.append(r.rtl_seconds)
        cocotb_cpu.append(json.loads((sim_dir / "sim" / "tb_result.json").read_text())["sim_cpu_seconds"])
        process.append(r.run_seconds)
        cycles = r.sim_cycles
        if flat_rw:
            rf = simulate_rtl(sim_dir, top, x, e, **axis, build_dir=bench / "flat_rw", **run)
            assert rf.sim_cycles == cycles
            flat.append(rf.rtl_seconds)
    # the plain harness on the same stimulus files and settings
    write_stimulus(sim_dir / "sim", x, e, **axis)
    plus = bench_plusargs(len(x), x.shape[1], e.shape[1], timing_vectors=min(max(2, run["timing_vectors"]), len(x)),
                          seed=run["seed"], stall_prob=run["stall_prob"], watchdog_cycles=run["watchdog_cycles"])
    plain = []
    for _ in range(runs):
        t, c0 = time.perf_counter(), _children_cpu()
        p = subprocess.run([str(bench / "plain" / "Vkofn_tb"), *plus], cwd=sim_dir, capture_output=True, text=True,
                           check=True)
        plain.append(time.perf_counter() - t)
        plain_cpu.append(_children_cpu() - c0)
        m = re.search(r"kofn_tb: cycles (\d+) mismatches (\d+)", p.stdout)
        # the plain harness prints on the edge after done: one cycle more than the bench's end_cycle
        assert m and int(m.group(2)) == 0 and int(m.group(1)) == cycles + 1, p.stdout[-500:]
    res = {"design": name, "top": top, "vectors": len(x), "cycles": cycles, "runs": runs,
           "cocotb_sim_s": statistics.median(cocotb), "cocotb_process_s": statistics.median(process),
           "plain_process_s": statistics.median(plain), "cocotb_sim_cpu_s": statistics.median(cocotb_cpu),
           "cocotb_process_cpu_s": statistics.median(process_cpu), "plain_process_cpu_s": statistics.median(plain_cpu),
           "load_avg_1min": os.getloadavg()[0], "build_s": builds}
    if flat:
        res["cocotb_flat_rw_sim_s"] = statistics.median(flat)
    return res


def _table(rows: list[dict]) -> str:
    lines = ["| design | vectors | cycles | cocotb sim s | M cycles/s | cocotb process s | M cycles/s | "
             "plain --binary s | M cycles/s | cocotb / plain time (sim) | cocotb / plain time (process) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["cycles"]
        lines.append(f"| {r['design']} | {r['vectors']} | {c:,} | {r['cocotb_sim_s']:.3f} | {c / r['cocotb_sim_s'] / 1e6:.2f} | "
                     f"{r['cocotb_process_s']:.2f} | {c / r['cocotb_process_s'] / 1e6:.2f} | {r['plain_process_s']:.3f} | "
                     f"{c / r['plain_process_s'] / 1e6:.2f} | {r['cocotb_sim_s'] / r['plain_process_s']:.2f}x | "
                     f"{r['cocotb_process_s'] / r['plain_process_s']:.2f}x |")
    lines += ["", "CPU seconds (user + system), less sensitive to other load on the machine:", "",
              "| design | cocotb sim | M cycles/CPU s | cocotb process | plain --binary | M cycles/CPU s | "
              "cocotb / plain time (sim) | load avg |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["cycles"]
        lines.append(f"| {r['design']} | {r['cocotb_sim_cpu_s']:.3f} | {c / r['cocotb_sim_cpu_s'] / 1e6:.2f} | "
                     f"{r['cocotb_process_cpu_s']:.2f} | {r['plain_process_cpu_s']:.3f} | "
                     f"{c / r['plain_process_cpu_s'] / 1e6:.2f} | {r['cocotb_sim_cpu_s'] / r['plain_process_cpu_s']:.2f}x | "
                     f"{r['load_avg_1min']:.1f} |")
    if any("cocotb_flat_rw_sim_s" in r for r in rows):
        lines += ["", "| design | cocotb sim s | with --public-flat-rw | slowdown |", "|---|---|---|---|"]
        for r in rows:
            if "cocotb_flat_rw_sim_s" in r:
                lines.append(f"| {r['design']} | {r['cocotb_sim_s']:.3f} | {r['cocotb_flat_rw_sim_s']:.3f} | "
                             f"{r['cocotb_flat_rw_sim_s'] / r['cocotb_sim_s']:.2f}x |")
    names = list(rows[0]["build_s"]) if rows else []
    lines += ["", "| build (s) | " + " | ".join(r["design"] for r in rows) + " |", "|---|" + "---|" * len(rows)]
    for k in names:
        lines.append(f"| {k} | " + " | ".join(f"{r['build_s'].get(k, float('nan')):.1f}" for r in rows) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--designs", default="default,cnn_digits,lenet5_mnist")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("kofn-out/sim_speed"))
    ap.add_argument("--epochs", type=int, default=None, help="train the example configs for this many epochs")
    ap.add_argument("--flat-rw", action="store_true", help="also measure a --public-flat-rw build")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--no-build-times", action="store_true",
                    help="skip the builds made only to time them (cocotb's runner, an empty object cache): "
                         "minutes on LeNet-5")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    work = args.work.resolve()
    rows = []
    for name in args.designs.split(","):
        out = work / name
        _flow(name, _config(name, args.epochs, work), out)
        rows.append(measure(name, out, args.runs, args.flat_rw, not args.no_build_times))
        print(f"{name}: done", flush=True)
        if args.json:  # after every design: a long run interrupted keeps what it measured
            args.json.write_text(json.dumps({"cpus": os.cpu_count(), "epochs": args.epochs, "rows": rows}, indent=2) + "\n")
    print(_table(rows))


if __name__ == "__main__":
    main()
