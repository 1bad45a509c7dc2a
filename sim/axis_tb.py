"""cocotb test of a kofn top inside the SystemVerilog bench ``kofn_tb`` (hw_templates/verilog/kofn_tb.sv).

Run by :func:`kofn.sim.rtl.simulate_rtl`, which writes the stimulus into the folder named by
``KOFN_TB_DIR`` (``tb_inputs.bin``, ``tb_expected.bin``) and passes the run's sizes, seed and
stall threshold to the bench as plusargs.  The bench does the per-beat work in the simulator: it
drives every AXI4-Stream beat (a stall-free timing phase, then every vector with seeded random
tvalid gaps and tready stalls), compares every output code, checks pad lanes, TLAST, beats held
stable under stalls, X beats (four-state), runs the watchdog, and writes every received code
(``tb_outputs.txt``, one tdata word a beat) and the timing phase's edges (``tb_timing.txt``).

This test only waits: a coarse timer every ``POLL_CYCLES`` cycles writes the progress and looks at
``done`` (the bench stops its clock after ``done``, so the last wait simulates nothing); then it
reads the bench's counters and its first failure, and writes ``tb_result.json``
(what :class:`kofn.sim.rtl.RtlResult` is made from).  The clock is the bench's own ``#5`` loop
(Verilator --timing), so Python never runs per cycle: on cnn_digits (294 k cycles) a cocotb GPI
clock took 1.3x and a Python clock 4.8x the SV clock's wall time."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.triggers import Timer

__all__ = ["stream_vectors", "COUNTERS", "FAIL_KINDS"]

PERIOD_NS = 10
#: Cycles between two looks at the bench (progress and ``done``).
POLL_CYCLES = 200_000

#: The bench's counters copied into tb_result.json.
COUNTERS = ("end_cycle", "mismatches", "pad_errors", "tlast_errors", "unstable_beats", "x_beats", "xctl",
            "stalled", "stop_phase", "in_done", "out_done", "vec_done")
#: ``fail_kind`` codes of kofn_tb.sv.
FAIL_KINDS = {1: "code", 2: "pad", 3: "tlast", 4: "unstable", 5: "x"}


def _int(handle) -> int:
    v = handle.value  # an int for an SV int under Icarus, a LogicArray under Verilator
    return v if isinstance(v, int) else int(v.to_signed()) if len(v) > 1 else int(v)


@cocotb.test()
async def stream_vectors(dut):
    """Wait for the bench to stream every vector; report its counters and first failure."""
    d = Path(os.environ["KOFN_TB_DIR"])
    n_vec = int(os.environ["KOFN_TB_VECTORS"])
    progress = d / "tb_progress.txt"
    t0, c0 = time.perf_counter(), time.process_time()  # time 0: the bench is about to read its files
    last = -1
    while not int(dut.done.value):  # the bench's clock stops once done: the last wait costs nothing
        await Timer(POLL_CYCLES * PERIOD_NS, unit="ns")
        now = _int(dut.vec_done)
        if now != last:
            progress.write_text(f"{now} {n_vec}\n")
            last = now
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    r = {k: _int(getattr(dut, k)) for k in COUNTERS}
    r["sim_seconds"], r["sim_cpu_seconds"] = seconds, cpu
    kind = _int(dut.fail_kind)
    if kind:
        r["first_failure"] = {"kind": FAIL_KINDS[kind], "phase": ("timing", "stress")[_int(dut.fail_phase)],
                              **{k: _int(getattr(dut, f"fail_{k}")) for k in ("vec", "beat", "lane", "got", "exp")}}
    (d / "tb_result.json").write_text(json.dumps(r))
    assert not r["xctl"], "s_axis_tready or m_axis_tvalid was X or Z after reset"
    assert not r["stalled"], "the watchdog fired"
    f = r.get("first_failure")
    assert f is None, (f"first failure: {f['kind']} in the {f['phase']} phase, vector {f['vec']}, beat {f['beat']}, "
                       f"lane {f['lane']}: got {f['got']}, expected {f['exp']}")
