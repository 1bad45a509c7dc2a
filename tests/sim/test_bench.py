"""The SystemVerilog bench's checks fail when they should: a wrong expected code, a DUT that breaks
TLAST, fills a pad lane, changes a refused beat, hangs, or (four-state) sends X.

Each faulty DUT is a wrapper around a real kofn top with the same ports (tests write it beside the
generated RTL); each test also states what the bench must report exactly: how many errors, and the
first failure's kind, phase, vector, beat, lane and values."""

from __future__ import annotations

import hashlib

import shutil

import numpy as np
import pytest

from designs import design
from kofn.codegen import axis_args, plan_build, render_build, write_design
from kofn.core.reference import run
from kofn.core.testing import random_inputs
from kofn.sim.rtl import build_rtl, simulate_rtl

pytestmark = pytest.mark.slow

N_VEC, T = 40, 4

WRAPPER = """
module kofn_bad #(parameter int IN_W = {in_w}, parameter int OUT_W = {out_w}) (
    input  logic aclk, input logic aresetn,
    input  logic [IN_W-1:0] s_axis_tdata, input logic s_axis_tvalid, output logic s_axis_tready,
    input  logic s_axis_tlast,
    output logic [OUT_W-1:0] m_axis_tdata, output logic m_axis_tvalid, input logic m_axis_tready,
    output logic m_axis_tlast
);
    logic [OUT_W-1:0] data;
    logic valid, last;
    logic refused;  // the beat on m_axis was offered and refused on the last edge
    always_ff @(posedge aclk) refused <= !aresetn ? 1'b0 : valid && !m_axis_tready;
    {top} dut (.aclk, .aresetn, .s_axis_tdata, .s_axis_tvalid, .s_axis_tready, .s_axis_tlast,
               .m_axis_tdata(data), .m_axis_tvalid(valid), .m_axis_tready, .m_axis_tlast(last));
{body}
endmodule
"""


@pytest.fixture(scope="module")
def pad_design(tmp_path_factory):
    """The 'pad' MLP, 2 codes per output beat over 5 outputs: 3 beats, the last with one pad lane."""
    d = tmp_path_factory.mktemp("pad")
    m, lanes = design("pad", seed=7)
    b = plan_build(m, lanes, stream_in=3, stream_out=2)
    files = render_build(b)
    write_design(files, d)
    x = random_inputs(m, N_VEC, seed=3)
    return b, d, [d / s for s in files.sources], x, run(m, x)


def _run(pad_design, tmp_path, body=None, expected=None, simulator="verilator", **kw):
    b, d, sources, x, e = pad_design
    ax = axis_args(b)
    top = b.top
    # one build per (wrapper, simulator), in the module's folder: tests with the same wrapper
    # share it (build_rtl leaves an unchanged build alone)
    tag = f"{simulator}_{hashlib.sha1((body or '').encode()).hexdigest()[:10]}"
    if body is not None:
        wrapper = d / f"kofn_bad_{tag}.sv"
        wrapper.write_text(WRAPPER.format(in_w=ax["in_values"] * ax["in_lane_w"],
                                          out_w=ax["out_values"] * ax["out_lane_w"], top=b.top, body=body))
        sources, top = [*sources, wrapper], "kofn_bad"
    bdir = d / f"build_{tag}"
    build_rtl(sources, top, bdir, tmp_path / "build.log", simulator=simulator, **ax)
    (tmp_path / "rom").symlink_to(d / "rom")
    return simulate_rtl(tmp_path, top, x, e if expected is None else expected, **ax, build_dir=bdir,
                        timing_vectors=T, seed=5, simulator=simulator, **kw)


PASS_THROUGH = """    assign m_axis_tdata = data;
    assign m_axis_tvalid = valid;
    assign m_axis_tlast = last;"""


def test_a_wrapper_that_changes_nothing_passes(pad_design, tmp_path):
    """The control for the faulty wrappers below: the same wrapper, passing everything through."""
    r = _run(pad_design, tmp_path, PASS_THROUGH, stall_prob=0.4)
    assert (r.mismatches, r.tlast_errors, r.pad_errors, r.unstable_beats, r.first_failure) == (0, 0, 0, 0, None)
    assert r.passed
    np.testing.assert_array_equal(r.outputs, pad_design[4])


def test_a_wrong_expected_code_is_the_first_failure(pad_design, tmp_path):
    """One expected code changed, in a vector past the timing phase: exactly one mismatch, found at
    its vector, beat and lane, with the received and the expected value."""
    e = pad_design[4].copy()
    vec, code = 17, 3  # code 3 of 5: beat 1, lane 1
    e[vec, code] += 1
    r = _run(pad_design, tmp_path, expected=e, stall_prob=0.3)
    assert r.mismatches == 1
    assert r.first_failure == {"kind": "code", "phase": "stress", "vec": vec, "beat": 1, "lane": 1,
                               "got": int(pad_design[4][vec, code]), "exp": int(e[vec, code])}
    assert not r.passed
    np.testing.assert_array_equal(r.outputs, pad_design[4])  # the received codes, not the expected ones


def test_a_wrong_expected_code_in_the_timing_phase_counts_twice(pad_design, tmp_path):
    """Vector 2 streams in both phases (the timing phase is the first T vectors): two mismatches,
    the first one in the timing phase."""
    e = pad_design[4].copy()
    e[2, 0] -= 1
    r = _run(pad_design, tmp_path, expected=e, stall_prob=0.3)
    assert r.mismatches == 2
    assert r.first_failure == {"kind": "code", "phase": "timing", "vec": 2, "beat": 0, "lane": 0,
                               "got": int(pad_design[4][2, 0]), "exp": int(e[2, 0])}


def test_tlast_never_raised_is_caught_on_every_vector(pad_design, tmp_path):
    body = PASS_THROUGH.replace("assign m_axis_tlast = last;", "assign m_axis_tlast = 1'b0;")
    r = _run(pad_design, tmp_path, body, stall_prob=0.3)
    assert r.tlast_errors == T + N_VEC  # the last beat of every vector, both phases
    assert (r.mismatches, r.pad_errors, r.unstable_beats) == (0, 0, 0)
    assert r.first_failure == {"kind": "tlast", "phase": "timing", "vec": 0, "beat": 2, "lane": 0, "got": 0, "exp": 1}
    assert not r.passed


def test_a_non_zero_pad_lane_is_caught(pad_design, tmp_path):
    """Lane 1 of the last beat carries no code (5 outputs, 2 per beat): the wrapper sets its bit 0."""
    b = pad_design[0]
    lane_w = axis_args(b)["out_lane_w"]
    body = PASS_THROUGH.replace("assign m_axis_tdata = data;", f"assign m_axis_tdata = last ? data | (1 << {lane_w}) : data;")
    r = _run(pad_design, tmp_path, body, stall_prob=0.3)
    assert r.pad_errors == T + N_VEC
    assert r.tlast_errors == T + N_VEC  # tlast_errors counts every m_axis protocol error
    assert r.mismatches == 0
    assert r.first_failure == {"kind": "pad", "phase": "timing", "vec": 0, "beat": 2, "lane": 1, "got": 1, "exp": 0}


def test_a_refused_beat_that_changes_is_caught(pad_design, tmp_path):
    """The wrapper flips bit 0 of tdata on every cycle after a refusal: a beat held under a tready
    stall changes.  Without stalls nothing is refused, so the same wrapper passes."""
    body = PASS_THROUGH.replace("assign m_axis_tdata = data;", "assign m_axis_tdata = data ^ OUT_W'(refused);")
    (tmp_path / "calm").mkdir()
    calm = _run(pad_design, tmp_path / "calm", body, stall_prob=0.0)
    assert (calm.unstable_beats, calm.mismatches, calm.first_failure) == (0, 0, None)
    r = _run(pad_design, tmp_path, body, stall_prob=0.4)
    assert r.unstable_beats > 0
    assert r.first_failure["kind"] == "unstable" and r.first_failure["phase"] == "stress"
    assert r.tlast_errors >= r.unstable_beats
    assert not r.passed


def test_a_hung_design_stops_at_the_watchdog(pad_design, tmp_path):
    body = PASS_THROUGH.replace("assign m_axis_tvalid = valid;", "assign m_axis_tvalid = 1'b0;")
    with pytest.raises(RuntimeError, match=r"the design stalled: no beat accepted on either side for 300 cycles "
                                           r"in the timing phase"):
        _run(pad_design, tmp_path, body, stall_prob=0.3, watchdog_cycles=300)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed: apt-get install iverilog")
def test_x_on_m_axis_is_caught_by_icarus(pad_design, tmp_path):
    """Four-state: X in bit 0 of the first beat of every vector; each of that beat's 2 codes
    counts as a mismatch."""
    body = """    logic first;
    always_ff @(posedge aclk) first <= !aresetn ? 1'b1 : (valid && m_axis_tready ? last : first);
    assign m_axis_tdata = first ? {data[OUT_W-1:1], 1'bx} : data;
    assign m_axis_tvalid = valid;
    assign m_axis_tlast = last;"""
    r = _run(pad_design, tmp_path, body, simulator="icarus", stall_prob=0.3)
    assert r.x_beats == T + N_VEC
    assert r.mismatches == 2 * (T + N_VEC)
    assert (r.first_failure["kind"], r.first_failure["phase"], r.first_failure["vec"], r.first_failure["beat"]) == (
        "x", "timing", 0, 0)
