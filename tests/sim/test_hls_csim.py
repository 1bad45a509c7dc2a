"""HLS C simulation (ap_fixed from the installed hls4ml) is bit-exact with the reference."""

from __future__ import annotations

import numpy as np
import pytest

from designs import ALL_DESIGNS, design
from kofn.codegen import plan_build, render_build, write_design
from kofn.core.reference import run
from kofn.sim import build_csim, run_csim
from kofn.core.testing import random_inputs


@pytest.mark.parametrize("name,schedule", [(n, "dataflow") for n in ALL_DESIGNS]
                         + [("pad", "sequential"), ("cnn_odd", "sequential")])
def test_csim_bit_exact(name, schedule, tmp_path):
    """Dataflow: the layers as stages joined by hls::stream under DATAFLOW; sequential: arrays."""
    m, lanes = design(name, seed=11)
    d = render_build(plan_build(m, lanes, schedule=schedule))
    assert ("hls::stream" in d.files["hls/kofn_top.cpp"]) == (schedule == "dataflow")
    write_design(d, tmp_path)
    binary = build_csim(tmp_path / "hls", "kofn_top", tmp_path / "csim")
    x = random_inputs(m, 2000, seed=5)
    got = run_csim(binary, x, tmp_path / "csim").outputs
    np.testing.assert_array_equal(got, run(m, x))
