"""cocotb testbench for a kofn top: AXI4-Stream in, AXI4-Stream out.

Run by :func:`kofn.sim.rtl.simulate_rtl`, which writes the stimulus into the folder
named by ``KOFN_TB_DIR``: ``tb_inputs.npy`` (input codes), ``tb_expected.npy``
(the reference's output codes) and ``tb_config.json``.  The test writes
``tb_result.json`` there: every output code it received and, for the stall-free timing
phase, the edge of every inference's first input beat and last output beat.  A beat carries
``in_values`` (``out_values``) codes, code j in lane j of ``in_lane_w`` (``out_lane_w``) bits;
a partial last beat's unused output lanes must be 0.

Two phases stream vectors back to back:

1. timing: the first ``timing_vectors`` vectors with tvalid and tready always high;
2. stress: every vector, with tvalid gaps and tready stalls drawn at random with
   probability ``stall_prob`` each cycle (tvalid, once high, holds until accepted).

One coroutine drives and monitors both sides: after each rising edge it drives the
next cycle's inputs, then samples settled values in ``ReadOnly``; a beat whose
tvalid and tready are both high there is accepted on the next edge.  Edges are
numbered from the simulation time (clock period 10 ns).  While the DUT computes
(the pending input beat is refused and no output is valid) the coroutine sleeps until
s_axis_tready or m_axis_tvalid rises instead of waking every cycle, which is what makes
image models with tens of thousands of cycles per inference quick to simulate; those
signals are registered in every kofn top, so they only change right after an edge.

Four-state simulators (``x_idle`` in the config, set for Icarus Verilog): s_axis_tdata is X
whenever tvalid is low (from reset on), and so are a partial last beat's unused input lanes, so
a design that takes tdata without tvalid shows it.  An output beat whose tdata is not fully 0/1
counts in ``x_beats`` and as a mismatch of every code it carries (its codes are recorded as 0); an
X/Z m_axis_tlast counts as a tlast error.  An unresolvable s_axis_tready or m_axis_tvalid after
reset stops the test (``error`` in the result): the handshakes cannot be followed.  An event-driven
simulator can show tready or tvalid rising and falling again within an edge's time step, so the
sleeping coroutine wakes there only on a settled rise; the stimulus and the stalls drawn then
follow Verilator's run cycle for cycle.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.types import LogicArray
from cocotb.utils import get_sim_time

PERIOD_NS = 10


def _edge() -> int:
    """Index of the latest rising edge (edges at 0, 10, 20 ... ns)."""
    return int(round(get_sim_time(unit="ns") / PERIOD_NS))

__all__ = ["stream_vectors"]


def _pack(x, values: int, lane_w: int) -> list[int]:
    """Input beats: ``values`` codes per beat, code j in bits [j*lane_w, (j+1)*lane_w)."""
    n_vec, n_in = x.shape
    mask = (1 << lane_w) - 1
    beats = []
    for row in x:
        for b in range(0, n_in, values):
            beats.append(sum((int(v) & mask) << (j * lane_w) for j, v in enumerate(row[b : b + values])))
    return beats


def _x_lanes(beats: list[int], n_in: int, values: int, lane_w: int, width: int) -> list[LogicArray]:
    """The input beats as four-state values: X in every bit outside the beat's values (a
    partial last beat's unused lanes and the padding above the last lane)."""
    out = []
    for i, word in enumerate(beats):
        used = min(values, n_in - (i % -(-n_in // values)) * values)
        bits = ["X"] * width
        for b in range(used * lane_w):
            bits[width - 1 - b] = "1" if word >> b & 1 else "0"
        out.append(LogicArray("".join(bits)))
    return out


class XControl(Exception):
    """A handshake signal the testbench reads is X or Z."""


class Stalled(Exception):
    """The design raised neither s_axis_tready nor m_axis_tvalid for the watchdog's cycles."""


#: Cycles without a possible handshake after which the design counts as hung (the flow passes
#: a bound from the estimated latency; this is the default for other callers).
WATCHDOG_CYCLES = 1_000_000


def _bit(handle) -> bool:
    v = handle.value
    if not v.is_resolvable:
        raise XControl(f"{handle._name} is {v} at {get_sim_time(unit='ns')} ns")
    return v == 1


def _unpack(word: int, values: int, lane_w: int, signed: bool) -> list[int]:
    out = []
    for j in range(values):
        v = (word >> (j * lane_w)) & ((1 << lane_w) - 1)
        out.append(v - (1 << lane_w) if signed and v >> (lane_w - 1) else v)
    return out


async def _phase(dut, x, n_out, cfg, stall, rng, clock, progress_file=None):
    n_vec, n_in = x.shape
    v_in, v_out = cfg["in_values"], cfg["out_values"]
    out_lane, out_signed = cfg["out_lane_w"], cfg["out_signed"]
    in_beats, out_beats = -(-n_in // v_in), -(-n_out // v_out)
    beats = _pack(x, v_in, cfg["in_lane_w"])
    x_idle = cfg.get("x_idle", False)
    if x_idle:  # four-state: X outside the values, and while tvalid is low
        width = len(dut.s_axis_tdata)
        beats = _x_lanes(beats, n_in, v_in, cfg["in_lane_w"], width)
        idle_data = LogicArray("X" * width)
    total_in, total_out = len(beats), n_vec * out_beats
    pad_errors = 0
    in_edges: list[int] = []
    out_edges: list[int] = []
    outs: list[int] = []
    x_codes: list[bool] = []  # per received code: its beat was not fully 0/1
    x_beats = 0
    tlast_errors = 0
    ptr = 0
    valid = False
    held = False  # tdata holds a beat (x_idle: else it is X)
    step = max(1, n_vec // 10)
    woke = False
    while len(out_edges) < total_out or ptr < total_in:  # image stages may drop trailing beats after the output
        if not woke:
            await RisingEdge(dut.aclk)
        woke = False
        if not valid and ptr < total_in and (stall == 0 or rng.random() >= stall):
            valid = True
            dut.s_axis_tdata.value = beats[ptr]
            dut.s_axis_tlast.value = int(ptr % in_beats == in_beats - 1)
            held = True
        elif x_idle and held and not valid:  # the beat was taken on this edge: tdata is X again
            dut.s_axis_tdata.value = idle_data
            held = False
        dut.s_axis_tvalid.value = int(valid)
        ready = stall == 0 or rng.random() >= stall
        dut.m_axis_tready.value = int(ready)
        await ReadOnly()
        edge = _edge() + 1  # the edge on which these handshakes complete
        if x_idle:
            in_ready, out_valid = _bit(dut.s_axis_tready), _bit(dut.m_axis_tvalid)
        else:
            in_ready = dut.s_axis_tready.value == 1
            out_valid = dut.m_axis_tvalid.value == 1
        if valid and in_ready:
            in_edges.append(edge)
            ptr += 1
            valid = False
        elif not out_valid and (valid or ptr == total_in):
            # busy: nothing can complete until the DUT raises tready or tvalid (or never: a
            # hung design stops the test after `watchdog_cycles` instead of simulating forever)
            dog = Timer(cfg.get("watchdog_cycles", WATCHDOG_CYCLES) * PERIOD_NS, unit="ns")
            if await First(RisingEdge(dut.s_axis_tready), RisingEdge(dut.m_axis_tvalid), dog) is dog:
                raise Stalled(f"the design stalled: no s_axis_tready or m_axis_tvalid for "
                              f"{cfg.get('watchdog_cycles', WATCHDOG_CYCLES):,} cycles after {ptr} of {total_in} "
                              f"input beats and {len(out_edges)} of {total_out} output beats (at "
                              f"{get_sim_time(unit='ns'):.0f} ns)")
            if x_idle:
                # An event-driven simulator updates the edge's registers one by one, so a tready
                # or tvalid decoded from several of them can rise and fall again within the edge's
                # time step; wake on a settled rise only (as Verilator's callbacks see), then leave
                # ReadOnly to drive the next cycle's inputs (1 ps on: the same edge number).
                await ReadOnly()
                while not (_bit(dut.s_axis_tready) or _bit(dut.m_axis_tvalid)):
                    await First(RisingEdge(dut.s_axis_tready), RisingEdge(dut.m_axis_tvalid))
                    await ReadOnly()
                await Timer(1, unit="ps")
            woke = True
            continue
        if ready and out_valid:
            data = dut.m_axis_tdata.value
            beat = len(out_edges) % out_beats
            keep = min(v_out, n_out - beat * v_out)
            if data.is_resolvable:
                vals = _unpack(data.to_unsigned(), v_out, out_lane, out_signed)
                pad_errors += sum(v != 0 for v in vals[keep:])  # lanes past the vector's end carry 0
                x_codes += [False] * keep
            else:  # four-state only: X or Z somewhere in the beat; every code of it mismatches
                vals = [0] * v_out
                x_beats += 1
                x_codes += [True] * keep
            outs += vals[:keep]
            out_edges.append(edge)
            want_last = beat == out_beats - 1
            tlast = dut.m_axis_tlast.value
            tlast_errors += int(not tlast.is_resolvable or (tlast == 1) != want_last)
            done = len(out_edges) // out_beats
            if progress_file is not None and want_last and done % step == 0:
                progress_file.write_text(f"{done} {n_vec}\n")
    await RisingEdge(dut.aclk)
    clock[0] = _edge()
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 0
    if x_idle and held:
        dut.s_axis_tdata.value = idle_data
    first_in = in_edges[::in_beats]
    last_out = out_edges[out_beats - 1 :: out_beats]
    return outs, first_in, last_out, tlast_errors + pad_errors, x_codes, x_beats


@cocotb.test()
async def stream_vectors(dut):
    """Stream every vector through the DUT and compare every output code with the reference."""
    d = Path(os.environ["KOFN_TB_DIR"])
    cfg = json.loads((d / "tb_config.json").read_text())
    x = np.load(d / "tb_inputs.npy")
    expected = np.load(d / "tb_expected.npy")
    n_vec, n_in = x.shape
    n_out = expected.shape[1]
    rng = random.Random(cfg["seed"])

    x_idle = cfg.get("x_idle", False)
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    dut.aresetn.value = 0
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tdata.value = LogicArray("X" * len(dut.s_axis_tdata)) if x_idle else 0
    dut.s_axis_tlast.value = 0
    dut.m_axis_tready.value = 0
    for _ in range(4):
        await RisingEdge(dut.aclk)
    dut.aresetn.value = 1
    await RisingEdge(dut.aclk)

    clock = [0]
    t = min(cfg["timing_vectors"], n_vec)
    try:
        t_outs, first_in, last_out, t_err, t_x, t_xb = await _phase(dut, x[:t], n_out, cfg, 0.0, rng, clock)
        s_outs, _, _, s_err, s_x, s_xb = await _phase(dut, x, n_out, cfg, cfg["stall_prob"], rng, clock,
                                                        d / "tb_progress.txt")
    except (XControl, Stalled) as e:
        (d / "tb_result.json").write_text(json.dumps({"error": str(e)}))
        raise AssertionError(str(e)) from None

    got = np.array(s_outs, dtype=np.int64).reshape(n_vec, n_out)
    got_t = np.array(t_outs, dtype=np.int64).reshape(t, n_out)
    bad = got != expected
    bad_t = got_t != expected[:t]
    x_beats = t_xb + s_xb
    if x_beats:  # codes of beats with X or Z mismatch whatever they decoded to
        bad |= np.array(s_x, dtype=bool).reshape(n_vec, n_out)
        bad_t |= np.array(t_x, dtype=bool).reshape(t, n_out)
    mismatches = int(bad.sum()) + int(bad_t.sum())
    result = {
        "vectors": int(n_vec),
        "outputs": got.tolist(),
        "timing_outputs": got_t.tolist(),
        "mismatches": mismatches,
        "tlast_errors": t_err + s_err,
        "x_beats": x_beats,
        "first_in": [e - first_in[0] for e in first_in],
        "last_out": [e - first_in[0] for e in last_out],
        "cycles_total": clock[0],
    }
    (d / "tb_result.json").write_text(json.dumps(result))
    assert x_beats == 0, f"{x_beats} output beats had X or Z on m_axis_tdata"
    assert t_err + s_err == 0, f"{t_err + s_err} beats had a wrong m_axis_tlast or a non-zero padding lane"
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_t, expected[:t])
