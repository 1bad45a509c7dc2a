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
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge
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
    total_in, total_out = len(beats), n_vec * out_beats
    pad_errors = 0
    in_edges: list[int] = []
    out_edges: list[int] = []
    outs: list[int] = []
    tlast_errors = 0
    ptr = 0
    valid = False
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
        dut.s_axis_tvalid.value = int(valid)
        ready = stall == 0 or rng.random() >= stall
        dut.m_axis_tready.value = int(ready)
        await ReadOnly()
        edge = _edge() + 1  # the edge on which these handshakes complete
        in_ready = dut.s_axis_tready.value == 1
        out_valid = dut.m_axis_tvalid.value == 1
        if valid and in_ready:
            in_edges.append(edge)
            ptr += 1
            valid = False
        elif not out_valid and (valid or ptr == total_in):
            # busy: nothing can complete until the DUT raises tready or tvalid
            await First(RisingEdge(dut.s_axis_tready), RisingEdge(dut.m_axis_tvalid))
            woke = True
            continue
        if ready and out_valid:
            vals = _unpack(dut.m_axis_tdata.value.to_unsigned(), v_out, out_lane, out_signed)
            beat = len(out_edges) % out_beats
            keep = min(v_out, n_out - beat * v_out)
            outs += vals[:keep]
            pad_errors += sum(v != 0 for v in vals[keep:])  # lanes past the vector's end carry 0
            out_edges.append(edge)
            want_last = beat == out_beats - 1
            tlast_errors += int((dut.m_axis_tlast.value == 1) != want_last)
            done = len(out_edges) // out_beats
            if progress_file is not None and want_last and done % step == 0:
                progress_file.write_text(f"{done} {n_vec}\n")
    await RisingEdge(dut.aclk)
    clock[0] = _edge()
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 0
    first_in = in_edges[::in_beats]
    last_out = out_edges[out_beats - 1 :: out_beats]
    return outs, first_in, last_out, tlast_errors + pad_errors


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

    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    dut.aresetn.value = 0
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tdata.value = 0
    dut.s_axis_tlast.value = 0
    dut.m_axis_tready.value = 0
    for _ in range(4):
        await RisingEdge(dut.aclk)
    dut.aresetn.value = 1
    await RisingEdge(dut.aclk)

    clock = [0]
    t = min(cfg["timing_vectors"], n_vec)
    t_outs, first_in, last_out, t_err = await _phase(dut, x[:t], n_out, cfg, 0.0, rng, clock)
    s_outs, _, _, s_err = await _phase(dut, x, n_out, cfg, cfg["stall_prob"], rng, clock, d / "tb_progress.txt")

    got = np.array(s_outs, dtype=np.int64).reshape(n_vec, n_out)
    got_t = np.array(t_outs, dtype=np.int64).reshape(t, n_out)
    mismatches = int((got != expected).sum()) + int((got_t != expected[:t]).sum())
    result = {
        "vectors": int(n_vec),
        "outputs": got.tolist(),
        "timing_outputs": got_t.tolist(),
        "mismatches": mismatches,
        "tlast_errors": t_err + s_err,
        "first_in": [e - first_in[0] for e in first_in],
        "last_out": [e - first_in[0] for e in last_out],
        "cycles_total": clock[0],
    }
    (d / "tb_result.json").write_text(json.dumps(result))
    assert t_err + s_err == 0, f"{t_err + s_err} beats had a wrong m_axis_tlast or a non-zero padding lane"
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_t, expected[:t])
