"""The bench's side of an RTL simulation: its sources, parameters and plusargs, and the files it
reads and writes (``kofn_tb.sv`` in hw_templates/verilog/; run by :mod:`kofn.sim.rtl`).

* ``tb_inputs.bin`` / ``tb_expected.bin``: the input and expected output beats, one tdata word a
  beat, as the bench's ``$fread`` takes them (:func:`write_stimulus`);
* ``tb_outputs.txt``: every received output beat, one tdata word in hex a line
  (:func:`read_output_beats`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.fixed import from_twos_complement, to_twos_complement

__all__ = ["BENCH_CHUNK", "bench_source", "bench_main", "bench_parameters", "bench_plusargs", "write_stimulus",
           "read_output_beats"]

#: Beats the bench reads from a stimulus file at a time ($fread into an array of this size).
BENCH_CHUNK = 1024


def _verilog_template(name: str) -> Path:
    from importlib.resources import files

    return Path(str(files("kofn.hw_templates"))) / "verilog" / name


def bench_source() -> Path:
    """``kofn_tb.sv``, the bench every RTL simulation runs the design in."""
    return _verilog_template("kofn_tb.sv")


def bench_main() -> Path:
    """``kofn_tb_main.cpp``, the C++ main of the bench's cocotb build under Verilator: cocotb's
    time-step loop, plus the bench's clock."""
    return _verilog_template("kofn_tb_main.cpp")


def bench_parameters(*, in_lane_w: int, out_lane_w: int, in_values: int = 1, out_values: int = 1,
                     out_signed: bool, simulator: str = "verilator") -> dict[str, int]:
    """The bench's parameters for a top with this stream layout (:func:`kofn.codegen.axis_args`);
    ``X_IDLE`` (X on idle tdata) for the four-state Icarus."""
    return {"IN_VALUES": int(in_values), "IN_LANE_W": int(in_lane_w), "OUT_VALUES": int(out_values),
            "OUT_LANE_W": int(out_lane_w), "OUT_SIGNED": int(bool(out_signed)),
            "X_IDLE": int(simulator == "icarus"), "CHUNK": BENCH_CHUNK}


def _lanes(codes: np.ndarray, values: int, lane_w: int) -> np.ndarray:
    """``[vectors, n]`` codes as ``[beats, values]`` lane words (two's complement in the lane,
    0 past a vector's last code)."""
    n_vec, n = codes.shape
    beats = -(-n // values)
    words = np.zeros((n_vec, beats * values), dtype=np.int64)
    words[:, :n] = codes
    return to_twos_complement(words, lane_w).reshape(n_vec * beats, values)


def _beat_bytes(words: np.ndarray, lane_w: int) -> bytes:
    """``[beats, values]`` lane words (non-negative, < 2**lane_w) as the bench's ``$fread`` takes
    each beat's tdata word: ceil(values * lane_w / 8) bytes, most significant first, lane 0 in the
    lowest bits."""
    beats, values = words.shape
    nbytes = -(-values * lane_w // 8)
    bits = np.zeros((beats, nbytes * 8), dtype=np.uint8)  # column i: bit i of the word
    bits[:, :values * lane_w] = ((words[:, :, None] >> np.arange(lane_w)) & 1).reshape(beats, values * lane_w)
    return np.packbits(bits[:, ::-1], axis=1).tobytes()


def read_output_beats(path: Path, values: int, lane_w: int, signed: bool) -> np.ndarray:
    """The bench's ``tb_outputs.txt`` (one m_axis_tdata word in hex per received beat) as
    ``[beats, values]`` codes: lane ``j`` is bits ``[j*lane_w, (j+1)*lane_w)``, sign-extended when
    ``signed``; every code of a beat with an X/Z digit (four-state simulators) reads 0."""
    words = path.read_text().split()
    mask = (1 << lane_w) - 1
    codes = np.zeros((len(words), values), dtype=np.int64)
    for i, w in enumerate(words):
        if not any(c in "xXzZ" for c in w):
            v = int(w, 16)
            codes[i] = [(v >> (j * lane_w)) & mask for j in range(values)]
    return from_twos_complement(codes, lane_w) if signed else codes


def write_stimulus(tb_dir: Path, x: np.ndarray, expected: np.ndarray, *, in_lane_w: int, out_lane_w: int,
                   in_values: int = 1, out_values: int = 1, out_signed: bool) -> None:
    """The bench's ``tb_inputs.bin`` (input beats) and ``tb_expected.bin`` (expected output beats,
    pad lanes 0), one tdata word a beat.  The bench compares lane bits, so every expected code
    must fit its lane."""
    x, expected = np.asarray(x, dtype=np.int64), np.asarray(expected, dtype=np.int64)
    lo, hi = (-(1 << (out_lane_w - 1)), (1 << (out_lane_w - 1)) - 1) if out_signed else (0, (1 << out_lane_w) - 1)
    if expected.size and (expected.min() < lo or expected.max() > hi):
        raise ValueError(f"expected output codes outside [{lo}, {hi}] cannot travel in a {out_lane_w}-bit lane")
    (tb_dir / "tb_inputs.bin").write_bytes(_beat_bytes(_lanes(x, in_values, in_lane_w), in_lane_w))
    (tb_dir / "tb_expected.bin").write_bytes(_beat_bytes(_lanes(expected, out_values, out_lane_w), out_lane_w))


def bench_plusargs(n_vec: int, n_in: int, n_out: int, *, timing_vectors: int, seed: int, stall_prob: float,
                   watchdog_cycles: int, tb_dir: str = "sim") -> list[str]:
    """The bench's run-time settings; ``tb_dir`` relative to the simulator's working directory.
    ``stall_prob`` becomes a threshold on 24 random bits."""
    stall = min(1 << 24, max(0, round(stall_prob * (1 << 24))))
    return [f"+tb_dir={tb_dir}", f"+n_vec={n_vec}", f"+n_in={n_in}", f"+n_out={n_out}", f"+timing={timing_vectors}",
            f"+seed={seed}", f"+stall={stall}", f"+watchdog={watchdog_cycles}"]
