"""The integer reference against an independent model in exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from kofn.core import ir
from kofn.core.reference import run, run_layers
from kofn.core.testing import random_inputs, random_model


def _rational_layer(x, layer):
    """Real-valued semantics: y = relu(sat(round_half_up(b + sum a*w, 2**-out.frac)))."""
    a_s = Fraction(1, 2**layer.input_fmt.frac) if layer.input_fmt.frac >= 0 else Fraction(2 ** -layer.input_fmt.frac)
    w_s = Fraction(1, 2**layer.weight_fmt.frac)
    b_s = Fraction(1, 2**layer.bias_fmt.frac)
    o = layer.output_fmt
    out = []
    for r in range(layer.rows):
        v = layer.bias[r] * b_s + sum(
            x[int(i)] * a_s * int(w) * w_s for i, w in zip(layer.indices[r], layer.weights[r])
        )
        q = math.floor(v * 2**o.frac + Fraction(1, 2))
        q = min(max(q, o.min_int), o.max_int)
        out.append(max(q, 0) if layer.relu else q)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_reference_matches_rational_model(seed):
    m = random_model([13, 7, 4], [5, 3], seed=seed)
    x = random_inputs(m, 40, seed=seed)
    got = run(m, x)
    for v in range(len(x)):
        h = [int(c) for c in x[v]]
        for layer in m.layers:
            h = _rational_layer(h, layer)
        assert got[v].tolist() == h


def test_run_layers_and_input_checks():
    m = random_model([6, 4, 2], [2, 2])
    x = random_inputs(m, 3)
    outs = run_layers(m, x)
    assert [o.shape for o in outs] == [(3, 4), (3, 2)]
    with pytest.raises(ValueError, match="inputs must be"):
        run(m, x[:, :5])
    with pytest.raises(ValueError, match="outside"):
        run(m, x + 1000)


@pytest.mark.parametrize("banks", [None, [3, 2]])
def test_ir_round_trip(tmp_path, banks):
    m = random_model([9, 6, 3], [6, 2], seed=3, banks=banks)
    ir.save(m, tmp_path)
    m2 = ir.load(tmp_path)
    for a, b in zip(m.layers, m2.layers):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert (a.input_fmt, a.weight_fmt, a.bias_fmt, a.output_fmt, a.relu, a.banks) == (
            b.input_fmt, b.weight_fmt, b.bias_fmt, b.output_fmt, b.relu, b.banks)
    assert [L.banks for L in m2.layers] == (banks or [1, 1])
    x = random_inputs(m, 10)
    np.testing.assert_array_equal(run(m, x), run(m2, x))


def test_ir_rejects_bad_layers():
    m = random_model([9, 5, 3], [4, 2])
    L = m.layers[0]
    kw = dict(name="x", n=L.n, bias=L.bias, input_fmt=L.input_fmt, weight_fmt=L.weight_fmt,
              bias_fmt=L.bias_fmt, output_fmt=L.output_fmt, relu=True)
    with pytest.raises(ValueError, match="strictly ascending"):
        ir.DenseLayer(indices=L.indices[:, ::-1], weights=L.weights, **kw)
    with pytest.raises(ValueError, match="outside 0..8"):
        ir.DenseLayer(indices=L.indices + 9, weights=L.weights, **kw)
    with pytest.raises(ValueError, match="weight code is outside"):
        ir.DenseLayer(indices=L.indices, weights=L.weights * 0 + 1000, **kw)
    # banks: P must divide n and k, and every row keeps exactly k/P of each bank (i mod P)
    idx = np.array([[0, 2, 4, 6]] * 5)  # all in bank 0 of 2
    with pytest.raises(ValueError, match=r"row 0 keeps 4 inputs of bank 0, expected exactly k/P = 2"):
        ir.DenseLayer(indices=idx, weights=L.weights, banks=2, **{**kw, "n": 8})
    with pytest.raises(ValueError, match="banks P=2 must divide both n=9"):
        ir.DenseLayer(indices=L.indices, weights=L.weights, banks=2, **kw)
    with pytest.raises(ValueError, match="reads"):
        ir.Model("m", (m.layers[0], m.layers[0].__class__(**{**_fields(m.layers[1]), "input_fmt": m.layers[1].weight_fmt})))


def _fields(layer):
    return {k: getattr(layer, k) for k in ("name", "n", "indices", "weights", "bias", "input_fmt", "weight_fmt",
                                          "bias_fmt", "output_fmt", "relu")}
