"""QAT forward equals the fixed-point rules; the trained model in eval mode equals the reference."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kofn.app.data import load_digits
from kofn.core.fixed import FixedFormat, quantize
import dataclasses

import pytest

from kofn.app.config import METHODS, TrainConfig
from kofn.core.layers import DenseSpec
from kofn.pruning import KofnNet, fake_quant, train
from qat import assert_eval_equals_reference


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-300, 300, allow_nan=False, width=32), min_size=1, max_size=50),
    st.integers(2, 16),
    st.integers(-4, 10),
    st.booleans(),
)
def test_fake_quant_equals_fixed_quantize(xs, width, int_bits, signed):
    if int_bits > width:
        return
    fmt = FixedFormat(width, int_bits, signed)
    x = np.array(xs, dtype=np.float32)
    got = fake_quant(torch.from_numpy(x), fmt).double().numpy() * 2.0**fmt.frac
    np.testing.assert_array_equal(got.astype(np.int64), quantize(x, fmt))


def test_fake_quant_ties_round_up():
    fmt = FixedFormat(8, 4)  # lsb 1/16
    x = torch.tensor([1 / 32, -1 / 32, 3 / 32, -3 / 32])
    assert (fake_quant(x, fmt) * 16).tolist() == [1.0, 0.0, 2.0, -1.0]


def test_straight_through_rounding_gradient():
    x = torch.tensor([0.3, 100.0], requires_grad=True)
    fake_quant(x, FixedFormat(8, 3)).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]  # identity inside the range, 0 where saturation clips


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("gran", ["weight", "block", "feature_map"])
def test_trained_model_in_eval_equals_reference(method, gran):
    """Every method and granularity: the trained torch model (eval) computes exactly the
    exported IR's integers, feature-map pruned neurons removed and all."""
    ds = load_digits()
    block = 8 if gran == "block" else None
    k1 = {"weight": 12, "block": 3, "feature_map": 11}[gran]
    specs = [
        DenseSpec(16, k1, FixedFormat(8, 2), FixedFormat(16, 6), FixedFormat(8, 3, False), True, gran, block),
        DenseSpec(10, 4, FixedFormat(6, 2), FixedFormat(12, 5), FixedFormat(10, 5), False),
    ]
    torch.manual_seed(0)
    model = KofnNet((64,), FixedFormat(8, 1, False), specs, method=method)
    train(model, ds.x_train[:400], ds.y_train[:400], dataclasses.replace(TrainConfig(), epochs=2, batch_size=50))
    m = model.to_ir("t")
    expect_k = {"weight": 12, "block": 3 * 64 // 8, "feature_map": 64}[gran] if method != "dense" else 64
    assert m.layers[0].k == expect_k
    if gran == "feature_map" and method != "dense":
        assert m.layers[0].rows == 11 and m.layers[1].n == 11
    assert_eval_equals_reference(model, m, ds.x_test)
