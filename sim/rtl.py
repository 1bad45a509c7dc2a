"""Build the generated RTL with Verilator (or Icarus Verilog) and run the cocotb testbench on it.

Verilator is kofn's simulator: two-state, every register starts at 0.  Icarus Verilog
(``simulator="icarus"``) is four-state, as Vivado xsim and Questa are: registers start at X,
so it shows whether any output depends on an uninitialised register or on s_axis_tdata taken
while tvalid was low (its testbench drives X on tdata then; an X on m_axis_tdata counts as a
mismatch of the whole beat, ``RtlResult.x_beats``)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.rules import steady_ii
from .tools import ToolNotFound, verilator_bin, verilator_env

__all__ = ["RtlResult", "lint", "build_rtl", "simulate_rtl", "SIMULATORS", "icarus_bin"]

TB_MODULE = "kofn.sim.axis_tb"
SIMULATORS = ("verilator", "icarus")
# Icarus: modules without a `timescale directive (all of kofn's) get this unit/precision; the
# testbench's 10 ns clock needs a unit no coarser than 1 ns.
ICARUS_TIMESCALE = ("1ns", "1ps")


@dataclass(frozen=True)
class RtlResult:
    outputs: np.ndarray  # [vectors, n_out] int64 codes received on m_axis (stress phase)
    vectors: int
    mismatches: int  # differing output codes, both phases
    tlast_errors: int
    latency_cycles: int  # first input beat accepted -> last output beat accepted, no stalls
    ii_cycles: int | None  # between the last two inferences' last output beats, back to back, no stalls
    sim_cycles: int
    passed: bool
    first_in: tuple[int, ...] = ()  # timing phase: each inference's first input beat (edges from the first)
    last_out: tuple[int, ...] = ()  # ... and its last output beat
    x_beats: int = 0  # output beats whose tdata held X or Z (four-state simulators only), both phases
    simulator: str = "verilator"


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


def build_rtl(sources: list[Path], top: str, build_dir: Path, log_file: Path | None = None,
              simulator: str = "verilator") -> Path:
    """Verilate and compile ``sources`` for cocotb (``simulator="icarus"``: compile them with
    ``iverilog -g2012``); returns the build folder."""
    from cocotb_tools.runner import get_runner

    _check_simulator(simulator)
    runner = get_runner(simulator)
    extra = {"timescale": ICARUS_TIMESCALE} if simulator == "icarus" else {}
    runner.build(
        sources=[str(s) for s in sources],
        hdl_toplevel=top,
        build_dir=str(build_dir),
        always=True,
        log_file=str(log_file) if log_file else None,
        **extra,
    )
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
    :func:`build_rtl` built ``build_dir`` with; under ``"icarus"`` the testbench drives X on
    s_axis_tdata (and on a partial last beat's unused lanes) whenever tvalid is low.
    ``watchdog_cycles``: a design that raises neither s_axis_tready nor m_axis_tvalid for this
    many cycles is hung, and the run stops with a :class:`RuntimeError` saying where (default:
    the testbench's ``WATCHDOG_CYCLES``, a million).
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    _check_simulator(simulator)
    design_dir = Path(design_dir).resolve()  # the simulator's working directory
    build_dir = Path(build_dir).resolve()
    tb_dir = design_dir / "sim"
    tb_dir.mkdir(parents=True, exist_ok=True)
    np.save(tb_dir / "tb_inputs.npy", np.asarray(x, dtype=np.int64))
    np.save(tb_dir / "tb_expected.npy", np.asarray(expected, dtype=np.int64))
    (tb_dir / "tb_config.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "stall_prob": stall_prob,
                "timing_vectors": max(2, timing_vectors),
                "in_lane_w": in_lane_w,
                "out_lane_w": out_lane_w,
                "in_values": in_values,
                "out_values": out_values,
                "out_signed": out_signed,
                "x_idle": simulator == "icarus",
                **({"watchdog_cycles": int(watchdog_cycles)} if watchdog_cycles else {}),
            }
        )
    )
    result_file = tb_dir / "tb_result.json"
    progress_file = tb_dir / "tb_progress.txt"
    for f in (result_file, progress_file):
        f.unlink(missing_ok=True)
    runner = get_runner(simulator)
    run = functools.partial(
        runner.test,
        hdl_toplevel=top,
        hdl_toplevel_lang="verilog",
        test_module=TB_MODULE,
        build_dir=str(build_dir),
        test_dir=str(design_dir),
        extra_env={"KOFN_TB_DIR": str(tb_dir), "PYGPI_PYTHON_BIN": sys.executable},
        results_xml=str(tb_dir / "results.xml"),
        log_file=str(tb_dir / "sim.log"),
        seed=seed,
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(run)
        last = ""
        while True:
            try:
                xml = fut.result(timeout=2.0)
                break
            except FuturesTimeout:
                now = progress_file.read_text().strip() if progress_file.exists() else ""
                if progress and now and now != last:
                    done, total = now.split()
                    progress(f"RTL simulation: {done}/{total} vectors streamed with stalls")
                    last = now
    _, failed = get_results(Path(xml))
    if not result_file.exists():
        raise RuntimeError(f"the RTL simulation ended without results; see {tb_dir / 'sim.log'}")
    r = json.loads(result_file.read_text())
    if r.get("error"):
        raise RuntimeError(f"the RTL simulation ({simulator}) stopped: {r['error']}; see {tb_dir / 'sim.log'}")
    return RtlResult(
        outputs=np.array(r["outputs"], dtype=np.int64),
        vectors=r["vectors"],
        mismatches=r["mismatches"],
        tlast_errors=r["tlast_errors"],
        latency_cycles=r["last_out"][0] - r["first_in"][0],
        ii_cycles=steady_ii(r["last_out"]) if len(r["last_out"]) > 1 else None,
        sim_cycles=r["cycles_total"],
        passed=failed == 0,
        first_in=tuple(r["first_in"]),
        last_out=tuple(r["last_out"]),
        x_beats=r.get("x_beats", 0),
        simulator=simulator,
    )
