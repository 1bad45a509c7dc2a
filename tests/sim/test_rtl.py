"""cocotb + Verilator: every output code equals the reference, with random stalls on both
AXI4-Stream sides, and the measured latency and II equal the estimate exactly."""

from __future__ import annotations

import numpy as np
import pytest

from designs import ALL_DESIGNS, design
from kofn.codegen import latency, plan_layers, render, write_design
from kofn.codegen.render import tdata_width
from kofn.core.reference import run
from kofn.sim.rtl import build_rtl, simulate_rtl
from kofn.core.testing import random_inputs

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ALL_DESIGNS)
def test_rtl_bit_exact_and_cycles(name, tmp_path):
    m, lanes = design(name, seed=7)
    plans = plan_layers(m, lanes)
    d = render(m, plans, latency(m, plans))
    write_design(d, tmp_path)
    build_rtl([tmp_path / s for s in d.sources], "kofn_top", tmp_path / "sim_build", tmp_path / "build.log")
    n_vec = 1000 if m.layers[0].kind == "dense" else 120
    x = random_inputs(m, n_vec, seed=3)
    expected = run(m, x)
    r = simulate_rtl(
        tmp_path, "kofn_top", x, expected,
        in_tdata_w=tdata_width(m.input_fmt), out_signed=m.output_fmt.signed,
        build_dir=tmp_path / "sim_build", stall_prob=0.3, timing_vectors=3, seed=1,
    )
    assert r.passed
    assert r.vectors == n_vec
    np.testing.assert_array_equal(r.outputs, expected)
    assert (r.mismatches, r.tlast_errors) == (0, 0)
    lat = latency(m, plans)
    assert r.latency_cycles == lat.total_cycles
    assert r.ii_cycles == lat.ii_cycles
