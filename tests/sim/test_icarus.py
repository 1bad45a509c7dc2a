"""Four-state simulation: a sample of designs in Icarus Verilog as well as Verilator.

Verilator is two-state (every register starts at 0, a ROM word missing from its file reads 0);
Icarus, like Vivado xsim and Questa, starts registers at X, and its testbench drives X on
s_axis_tdata whenever tvalid is low (and on a partial last beat's unused lanes).  So here an
output that depends on an uninitialised register, on tdata taken without tvalid or on a ROM
word its file does not hold comes out as X (``x_beats``).  Every design must give the
reference's exact integer codes in both simulators, no X, and the same cycles: latency, II and
every inference's first input and last output beat."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from designs import design
from kofn.codegen import axis_args, plan_build, render_build, write_design
from kofn.core.reference import run
from kofn.core.testing import random_cnn, random_inputs
from kofn.sim.rtl import build_rtl, simulate_rtl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                       reason="Icarus Verilog (iverilog, vvp) not installed: apt-get install iverilog"),
]

TIMING_VECTORS = 12

# Issue 16's CNN: 8x8 digits, conv 2@4x4/2 "valid" (weight level, k = 10, P = 1) -> 3x3x2,
# maxpool dropping the trailing row and column -> 1x1x2, a 1x1 conv to 6 channels keeping both
# input kernels (kernel level, as a BatchNorm-folded conv with every kernel kept exports) on one
# lane, so two steps per row, dense 6 -> 10 (k = 5).  The 1x1 kernel-level core read its
# one-word-per-row channel ROM as a two-words-per-row index ROM: X in Icarus on every output beat.
ISSUE_CNN = ((8, 8, 1), [("conv", 2, 4, 2, 0, "weight", 10), ("pool",), ("conv", 6, 1, 1, 0, "kernel", 2),
                         ("dense", 10, 5)], [1, None, 1, None])


def _model(name):
    if name == "issue_cnn":
        shape, spec, lanes = ISSUE_CNN
        return random_cnn(shape, spec, seed=5), lanes
    return design(name, seed=7)


def _both(build, tmp_path, n_vec, stall_prob=0.3):
    d = render_build(build)
    write_design(d, tmp_path)
    sources = [tmp_path / s for s in d.sources]
    m = build.model
    x = random_inputs(m, n_vec, seed=3)
    expected = run(m, x)
    res = {}
    for sim in ("verilator", "icarus"):
        build_dir = tmp_path / f"sim_build_{sim}"
        build_rtl(sources, build.top, build_dir, tmp_path / f"{sim}.log", simulator=sim, **axis_args(build))
        r = simulate_rtl(tmp_path, build.top, x, expected, **axis_args(build), build_dir=build_dir,
                         stall_prob=stall_prob, timing_vectors=TIMING_VECTORS, seed=1, simulator=sim)
        log = (tmp_path / "sim" / "sim.log").read_text()
        assert "$readmem" not in log, f"{sim}: a ROM file does not fill its array:\n" + "\n".join(
            line for line in log.splitlines() if "$readmem" in line)
        assert r.simulator == sim and r.vectors == n_vec
        assert (r.mismatches, r.x_beats, r.tlast_errors) == (0, 0, 0), sim
        assert r.outputs.dtype == np.int64
        np.testing.assert_array_equal(r.outputs, expected, err_msg=sim)
        assert r.passed, sim
        res[sim] = r
    v, i = res["verilator"], res["icarus"]
    assert (i.first_in, i.last_out) == (v.first_in, v.last_out)
    assert (i.latency_cycles, i.ii_cycles, i.sim_cycles) == (v.latency_cycles, v.ii_cycles, v.sim_cycles)
    return v


@pytest.mark.parametrize("name,schedule,stream_in,stream_out", [
    ("issue_cnn", "dataflow", 0, 0),  # maxpool dropping a row and a column, a 1x1 kernel-level conv on P < k lanes
    ("pad", "dataflow", 3, 2),  # MLP: lane padding, partial last beats on both sides (X in the unused input lanes)
    ("cnn_bank", "dataflow", 0, 0),  # bank memories (kofn_bankbuf), a banked conv and dense, pool
    ("cnn_stride", "sequential", 0, 0),  # the sequential top: line buffer, collector, trailing input row
])
def test_icarus_matches_verilator_without_x(name, schedule, stream_in, stream_out, tmp_path):
    m, lanes = _model(name)
    b = plan_build(m, lanes, schedule=schedule, stream_in=stream_in, stream_out=stream_out)
    r = _both(b, tmp_path, 60 if m.layers[0].kind == "dense" else 16)
    lat = b.latency
    assert (r.latency_cycles, r.ii_cycles) == (lat.total_cycles, lat.ii_cycles)
    if schedule == "dataflow":
        assert (r.first_in, r.last_out) == (lat.first_in[:TIMING_VECTORS], lat.last_out[:TIMING_VECTORS])
