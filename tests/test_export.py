"""Exports: hls4ml's C simulation (Xilinx's ap_fixed, hls4ml's own layer code) and
onnxruntime on the exported ONNX both reproduce the integer reference exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from designs import ALL_DESIGNS, design
from kofn.app.cli import main
from kofn.app.export import check_hls4ml, onnx_exactness_bound, run_onnx, to_onnx, to_torch, nchw_inputs
from kofn.core.reference import run
from kofn.core.testing import random_inputs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pad", "deep", "cnn_mixed", "cnn_odd", "cnn_stride"])
def test_hls4ml_csim_is_bit_exact(name, tmp_path):
    m, _ = design(name, seed=4)
    x = random_inputs(m, 300, seed=8)
    codes, mismatches = check_hls4ml(m, x, tmp_path / "h4")
    assert mismatches == 0
    np.testing.assert_array_equal(codes, run(m, x))


@pytest.mark.parametrize("name", ALL_DESIGNS)
def test_onnx_runtime_matches_reference(name, tmp_path):
    m, _ = design(name, seed=2)
    x = random_inputs(m, 500, seed=9)
    proto = to_onnx(m, tmp_path / "m.onnx")
    assert proto.opset_import[0].version == 19
    bound = onnx_exactness_bound(m)
    got, ref = run_onnx(m, tmp_path / "m.onnx", x), run(m, x)
    assert bound["exact"]  # every test design's accumulators fit 24 bits ...
    np.testing.assert_array_equal(got, ref)  # ... so float32 onnxruntime is exact


def test_onnx_bound_flags_wide_accumulators():
    from kofn.core.fixed import FixedFormat as F
    from kofn.core.testing import random_model

    m = random_model([300, 4], [300], weight_fmt=F(16, 4), bias_fmt=F(16, 4), input_fmt=F(12, 2))
    assert m.layers[0].accumulator.width > 24
    assert onnx_exactness_bound(m)["exact"] is False


def test_torch_view_is_the_reference_before_requantization():
    """The plain torch module reproduces the accumulators: one dense layer without ReLU,
    whose output format keeps every accumulator bit, equals the reference."""
    import torch

    from kofn.core.fixed import FixedFormat as F
    from kofn.core.testing import random_cnn

    m = random_cnn((5, 5, 2), [("conv", 3, 3, 1, 1, "kernel", 1), ("dense", 4, 20)], seed=3,
                   hidden_fmt=F(8, 3, False), output_fmt=F(32, 20))
    x = random_inputs(m, 50, seed=1)
    t = to_torch(m)
    with torch.no_grad():
        conv_out = t.l0(torch.as_tensor(nchw_inputs(m, x)))
    from kofn.core.reference import run_layers

    acc_frac = m.layers[0].accumulator.frac
    want = run_layers(m, x)[0]  # requantized conv outputs (HWC)
    got = np.floor(conv_out.permute(0, 2, 3, 1).reshape(50, -1).numpy() * 2.0 ** acc_frac + 0.5)
    from kofn.core.fixed import requantize

    got = requantize(got.astype(np.int64), acc_frac, m.layers[0].output_fmt, True)
    np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_export_cli_on_a_build(tmp_path, capsys):
    """`kofn export onnx|hls4ml BUILD` on a build folder written by `kofn sim`-style codegen."""
    from kofn.core import ir

    m, _ = design("cnn_mixed", seed=1)
    build = tmp_path / "b"
    ir.save(m, build / "model")
    (build / "vectors").mkdir()
    np.save(build / "vectors" / "inputs.npy", random_inputs(m, 40, seed=3))
    assert main(["export", "onnx", str(build)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["vectors"], r["mismatches"], r["argmax_agree"]) == (40, 0, 1.0)
    assert (build / "random_cnn.onnx").exists()
    assert main(["export", "hls4ml", str(build), "-o", str(tmp_path / "h"), "--vectors", "10"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["vectors"], r["mismatches"]) == (10, 0)
    assert main(["export", "onnx", str(tmp_path / "nothing")]) == 2
