"""C simulation of the generated HLS C++ with g++ and the ap_types headers from hls4ml."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tools import ToolNotFound, ap_types_include

__all__ = ["CsimResult", "build_csim", "run_csim", "write_vectors_txt"]


@dataclass(frozen=True)
class CsimResult:
    outputs: np.ndarray  # [vectors, n_out] int64 codes
    binary: Path


def write_vectors_txt(x: np.ndarray, path: Path) -> None:
    """The testbench's text format: ``vectors width`` then one vector per line."""
    x = np.asarray(x, dtype=np.int64)
    lines = [f"{x.shape[0]} {x.shape[1]}"] + [" ".join(map(str, row)) for row in x]
    path.write_text("\n".join(lines) + "\n")


def build_csim(hls_dir: Path, top: str, out_dir: Path | None = None) -> Path:
    """Compile ``hls_dir/{top}.cpp`` and its testbench with g++; returns the binary."""
    gxx = shutil.which("g++")
    if gxx is None:
        raise ToolNotFound("g++ is needed for HLS C simulation")
    out_dir = Path(out_dir or hls_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"csim_{top}"
    cmd = [
        gxx, "-std=c++14", "-O1", "-w",
        "-I", str(ap_types_include()), "-I", str(hls_dir),
        str(hls_dir / f"{top}.cpp"), str(hls_dir / f"tb_{top}.cpp"),
        "-o", str(binary),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"g++ failed on the HLS C++ ({' '.join(cmd)}):\n{res.stderr[-4000:]}")
    return binary


def run_csim(binary: Path, x: np.ndarray, work: Path) -> CsimResult:
    """Run the C simulation on input codes ``x``; returns the output codes."""
    work.mkdir(parents=True, exist_ok=True)
    fin, fout = work / "csim_inputs.txt", work / "csim_outputs.txt"
    write_vectors_txt(x, fin)
    res = subprocess.run([str(binary), str(fin), str(fout)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"C simulation failed: {res.stderr[-2000:]}")
    rows = [line.split() for line in fout.read_text().splitlines() if line.strip()]
    return CsimResult(outputs=np.array(rows, dtype=np.int64).reshape(len(rows), -1), binary=binary)
