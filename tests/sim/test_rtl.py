"""cocotb + Verilator: every output code equals the reference, with random stalls on both
AXI4-Stream sides, and the measured cycles equal the analytical schedule exactly.

Dataflow: the stall-free phase streams 12 inferences back to back, and the cycle of every
one's first input beat and last output beat must equal :mod:`kofn.codegen.dataflow`'s
prediction (so the isolated latency, the pipeline's fill and the steady II are all checked).
Sequential: latency and II equal the closed form."""

from __future__ import annotations

import numpy as np
import pytest

from designs import ALL_DESIGNS, design
from kofn.codegen import axis_args, plan_build, render_build, write_design
from kofn.core.reference import run
from kofn.core.fixed import FixedFormat as F
from kofn.core.testing import random_inputs, random_model
from kofn.sim.rtl import build_rtl, simulate_rtl

pytestmark = pytest.mark.slow

TIMING_VECTORS = 12


def _simulate(build, tmp_path, n_vec, stall_prob=0.3):
    d = render_build(build)
    write_design(d, tmp_path)
    build_rtl([tmp_path / s for s in d.sources], build.top, tmp_path / "sim_build", tmp_path / "build.log", **axis_args(build))
    m = build.model
    x = random_inputs(m, n_vec, seed=3)
    expected = run(m, x)
    r = simulate_rtl(tmp_path, build.top, x, expected, **axis_args(build), build_dir=tmp_path / "sim_build",
                     stall_prob=stall_prob, timing_vectors=TIMING_VECTORS, seed=1)
    assert r.passed
    assert r.vectors == n_vec
    np.testing.assert_array_equal(r.outputs, expected)
    assert (r.mismatches, r.tlast_errors) == (0, 0)
    return r


@pytest.mark.parametrize("name", ALL_DESIGNS)
def test_dataflow_bit_exact_under_stalls_and_cycle_exact(name, tmp_path):
    m, lanes = design(name, seed=7)
    b = plan_build(m, lanes)
    r = _simulate(b, tmp_path, 600 if m.layers[0].kind == "dense" else 80)
    lat = b.latency
    assert r.first_in == lat.first_in[:TIMING_VECTORS]
    assert r.last_out == lat.last_out[:TIMING_VECTORS]
    assert (r.latency_cycles, r.ii_cycles) == (lat.total_cycles, lat.ii_cycles)
    # the point of the dataflow schedule: the steady II is the slowest stage's, not the sum
    seq = plan_build(m, lanes, schedule="sequential").latency.ii_cycles
    assert lat.ii_cycles < seq


@pytest.mark.parametrize("name", ["pad", "cnn_odd", "bank"])
def test_sequential_bit_exact_and_cycles(name, tmp_path):
    m, lanes = design(name, seed=7)
    b = plan_build(m, lanes, schedule="sequential")
    r = _simulate(b, tmp_path, 300 if m.layers[0].kind == "dense" else 40)
    assert (r.latency_cycles, r.ii_cycles) == (b.latency.total_cycles, b.latency.ii_cycles)


@pytest.mark.parametrize("name,stream_in,stream_out", [("pad", 3, 2), ("deep", 8, 3), ("edge", 4, 2)])
def test_wide_beats_with_a_partial_last_beat(name, stream_in, stream_out, tmp_path):
    """Several values per beat on both sides; n is not a multiple of either width, so the last
    input beat carries fewer values and the last output beat's unused lanes must be 0 (the
    testbench counts a non-zero one as an error)."""
    m, lanes = design(name, seed=11)
    assert m.n_inputs % stream_in and m.n_outputs % stream_out
    b = plan_build(m, lanes, stream_in=stream_in, stream_out=stream_out)
    r = _simulate(b, tmp_path, 400, stall_prob=0.4)
    assert (r.first_in, r.last_out) == (b.latency.first_in[:TIMING_VECTORS], b.latency.last_out[:TIMING_VECTORS])


@pytest.mark.parametrize("stall_prob", [0.0, 0.3])
def test_a_fast_stage_waits_for_its_output_bank_to_drain(stall_prob, tmp_path):
    """Issue 26's reproducer: one dense stage of 11 cycles whose pipeline is deeper than its
    issue time, in front of m_axis.  Frame t may start only once frame t-2 has left bank t mod 2
    of the output buffer, both the results still in the core's pipeline and those m_axis has not
    sent (kofn_df_resv); the old rule (bank merely not full) started it while frame t-2's last
    results were still in flight, so a beat was dropped under stalls and the II measured 11
    against the schedule's 13.5."""
    m = random_model([13, 11], [2], seed=413, input_fmt=F(6, 2))
    b = plan_build(m, None, stream_in=2)
    r = _simulate(b, tmp_path, 300, stall_prob=stall_prob)
    lat = b.latency
    assert (r.first_in, r.last_out) == (lat.first_in[:TIMING_VECTORS], lat.last_out[:TIMING_VECTORS])
    assert (r.latency_cycles, r.ii_cycles) == (lat.total_cycles, lat.ii_cycles)
