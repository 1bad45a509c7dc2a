"""QONNX import (kofn.app.qonnx_import).

The proof: a Brevitas MLP and CNN (QuantLinear, QuantConv2d, QuantReLU, power-of-two scales,
a fixed k-of-n mask), trained briefly and exported by Brevitas's own QONNX export, go through
`kofn flow`; RTL, HLS and kofn's reference must equal the QONNX model run by qonnx's own
executor, every output code of every test vector.  Then hand-made QONNX graphs for each
quantizer kofn accepts (bit-exact against the executor, ties included) and each it refuses
(an error naming the node and the reason)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("brevitas")  # a test-only dependency (pyproject's [test] extra)

from kofn.app.export import nchw_inputs  # noqa: E402
from kofn.app.onnx_import import OnnxImportError, onnx_to_ir  # noqa: E402
from kofn.app.qonnx_import import read_model  # noqa: E402
from kofn.core import ir as ir_mod  # noqa: E402
from kofn.core.reference import run  # noqa: E402
from kofn.core.rules import hwc_from_chw  # noqa: E402
from qonnx_models import build, qonnx_outputs  # noqa: E402

QONNX_DOMAIN = "qonnx.custom_op.general"


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def brevitas_build(request, tmp_path_factory):
    """A Brevitas model exported to QONNX and built by `kofn flow` (RTL + HLS simulated)."""
    from kofn.app.cli import main

    d = tmp_path_factory.mktemp(f"brevitas_{request.param}")
    path, masks = build(request.param, d)
    (d / "c.toml").write_text(f'name = "brevitas_{request.param}"\nmodel = "{path}"\n'
                              "[sim]\nrandom_vectors = 300\ntest_vectors = 359\n")
    assert main(["flow", str(d / "c.toml"), "--out", str(d / "b"), "--quiet"]) == 0
    return request.param, path, masks, d / "b"


@pytest.mark.slow
def test_brevitas_model_is_bit_exact_against_the_qonnx_executor(brevitas_build):
    kind, path, masks, b = brevitas_build
    r = json.loads((b / "report.json").read_text())
    assert r["bitexact"]["rtl"] == {**r["bitexact"]["rtl"], "vectors": 659, "mismatches": 0, "tlast_errors": 0}
    assert r["bitexact"]["hls"] == {"vectors": 659, "mismatches": 0}
    m = ir_mod.load(b / "model")
    x = np.load(b / "vectors" / "inputs.npy")
    expected = np.load(b / "vectors" / "expected.npy")  # what RTL and HLS were checked against
    np.testing.assert_array_equal(expected, run(m, x))
    y = qonnx_outputs(path, nchw_inputs(m, x)) * 2.0 ** m.output_fmt.frac
    assert np.all(y == np.round(y)), "the executor's outputs are not codes of the model's output format"
    mismatches = int((y.astype(np.int64) != expected).sum())
    assert mismatches == 0, f"{mismatches} of {expected.size} output codes differ from qonnx's executor"
    # Brevitas's default rounding (ROUND, ties to even) became the layers' rounding
    assert {L.rounding for L in m.layers if L.weighted} == {"half_even"}
    # the k-of-n structure came through: every kept weight lies inside the fixed mask
    weighted = [L for L in m.layers if L.weighted]
    for L, mask in zip(weighted, masks.values()):
        if L.kind == "conv":  # kofn's HWC window order; the mask is [C_out, C_in, K, K]
            mask = mask.transpose(0, 2, 3, 1).reshape(L.rows, -1)
        elif kind == "cnn":  # the dense head reads kofn's HWC flatten; torch flattened CHW
            mask = mask[:, hwc_from_chw(m.layers[1].out_shape)]
        dense = L.dense_weights()
        assert not np.any((dense != 0) & (mask == 0)), f"layer {L.name}: a weight outside the k-of-n mask"
        assert L.k <= int(mask.sum(axis=1).max())
    assert r["accuracy"]["integer"] > 0.8  # the Brevitas training worked: this is a real model


# -- hand-made QONNX graphs ------------------------------------------------------------------

def _quant(name, x, scale, bits, signed=1, narrow=0, mode="ROUND", zp=0.0, inits=None):
    inits[f"{name}_s"], inits[f"{name}_z"], inits[f"{name}_b"] = scale, zp, float(bits)
    return helper.make_node("Quant", [x, f"{name}_s", f"{name}_z", f"{name}_b"], [f"{name}_o"], name=name,
                            domain=QONNX_DOMAIN, signed=signed, narrow=narrow, rounding_mode=mode)


BATCH = 1000  # the graphs' traced batch: qonnx's executor runs this many inputs per call


def _dense_qonnx(w, b, act=None, weight=None, out_node=None, n_in=None):
    """input Quant (ufixed<8,0>) -> Gemm(Quant(w), Quant(b)) -> output requantization."""
    inits = {"w": np.asarray(w, np.float32), "b": np.asarray(b, np.float32)}
    nodes = [_quant("qin", "x", 2.0 ** -8, 8, signed=0, inits=inits)]
    nodes.append(_quant("qw", "w", **{"scale": 2.0 ** -6, "bits": 8, "narrow": 1, **(weight or {})}, inits=inits))
    nodes.append(_quant("qb", "b", 2.0 ** -14, 16, inits=inits))
    nodes.append(helper.make_node("Gemm", ["qin_o", "qw_o", "qb_o"], ["acc"], name="gemm", transB=1))
    if out_node is not None:
        nodes += out_node(inits)
    else:
        nodes.append(_quant("qout", "acc", **{"scale": 2.0 ** -4, "bits": 8, **(act or {})}, inits=inits))
    out = nodes[-1].output[0]
    n_in = n_in or np.asarray(w).shape[1]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, n_in])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [BATCH, np.asarray(w).shape[0]])],
                          initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])


def _weights(seed=0, rows=6, n=12, k=4):
    rng = np.random.default_rng(seed)
    w = np.zeros((rows, n))
    for r in range(rows):
        w[r, rng.choice(n, k, replace=False)] = rng.integers(-127, 128, k) / 64.0
    return w, rng.integers(-3000, 3000, rows) / 2.0 ** 14


def _check_exact(proto, tmp_path, n=4000, seed=1):
    """kofn's reference of the imported model equals qonnx's executor on ``n`` random inputs;
    returns the IR."""
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    m = onnx_to_ir(read_model(path), "m")
    x = np.random.default_rng(seed).integers(m.input_fmt.min_int, m.input_fmt.max_int + 1, (n, m.n_inputs))
    y = qonnx_outputs(path, nchw_inputs(m, x)) * 2.0 ** m.output_fmt.frac
    assert np.all(y == np.round(y))
    np.testing.assert_array_equal(y.astype(np.int64), run(m, x))
    return m


@pytest.mark.parametrize("mode,signed,rounding", [("ROUND", 1, "half_even"), ("HALF_EVEN", 1, "half_even"),
                                                  ("FLOOR", 1, "floor"), ("HALF_UP", 0, "half_up")])
def test_activation_rounding_modes_are_exact(mode, signed, rounding, tmp_path):
    w, b = _weights()
    m = _check_exact(_dense_qonnx(w, b, act={"mode": mode, "signed": signed}), tmp_path)
    assert m.layers[0].rounding == rounding
    # ties really occur (accumulator 14 fraction bits, output 4): the check above could fail
    assert m.layers[0].accumulator.frac - m.layers[0].output_fmt.frac == 10


def test_per_channel_weight_scales_and_bipolar_weights_are_exact(tmp_path):
    w, b = _weights(seed=2)
    scales = (2.0 ** -np.array([6, 5, 7, 6, 4, 6])).reshape(6, 1)
    m = _check_exact(_dense_qonnx(w, b, weight={"scale": scales}), tmp_path)
    assert (m.layers[0].weight_fmt.width, m.layers[0].weight_fmt.frac) == (8 + 3, 7)  # widened to the finest scale

    proto = _dense_qonnx(w, np.round(b * 2.0 ** 11) / 2.0 ** 11)  # the accumulator has 8 + 3 fraction bits
    g = proto.graph
    for i, n in enumerate(g.node):  # replace the weight Quant by a BipolarQuant of scale 2^-3
        if n.name == "qw":
            g.node.remove(n)
            g.node.insert(i, helper.make_node("BipolarQuant", ["w", "qw_s"], ["qw_o"], name="qw", domain=QONNX_DOMAIN))
            break
    for t in g.initializer:
        if t.name == "qw_s":
            t.CopyFrom(numpy_helper.from_array(np.asarray(2.0 ** -3, np.float32), "qw_s"))
    m = _check_exact(proto, tmp_path)
    assert m.layers[0].k == 12 and set(np.unique(m.layers[0].weights)) <= {-1, 1}


def _multithreshold(thresholds, out_scale, out_bias, mul=None):
    def nodes(inits):
        inits["thr"] = np.asarray(thresholds, np.float32)
        attrs = dict(out_scale=float(out_scale), out_bias=float(out_bias), out_dtype="INT8")
        out = [helper.make_node("MultiThreshold", ["acc", "thr"], ["mt"], name="mt", domain=QONNX_DOMAIN, **attrs)]
        if mul is not None:
            inits["mul_c"] = np.float32(mul)
            out.append(helper.make_node("Mul", ["mt", "mul_c"], ["y"], name="mt_scale"))
        return out
    return nodes


@pytest.mark.parametrize("offset,rounding", [(0.5, "half_up"), (1.0, "floor")])
def test_multithreshold_that_is_a_requantization_is_exact(offset, rounding, tmp_path):
    """Thresholds at (lo + i + offset) steps of 2^-4: round half up (0.5) or floor (1)."""
    w, b = _weights(seed=3)
    lo, steps = -8, 15  # a signed 4-bit output, fixed<4, 0> in steps of 2^-4
    thr = np.tile((lo + np.arange(steps) + offset) * 2.0 ** -4, (6, 1))
    m = _check_exact(_dense_qonnx(w, b, out_node=_multithreshold(thr, 1.0, lo, mul=2.0 ** -4)), tmp_path)
    L = m.layers[0]
    assert (L.output_fmt.width, L.output_fmt.frac, L.output_fmt.signed, L.rounding) == (4, 4, True, rounding)


REFUSED = [
    ("a non-power-of-two weight scale", dict(weight={"scale": 0.01}), "qw", "not a power of two"),
    ("a non-power-of-two activation scale", dict(act={"scale": 0.3}), "qout", "not a power of two"),
    ("an activation zero point", dict(act={"zp": 3.0}), "qout", "zero point"),
    ("a narrow-range activation", dict(act={"narrow": 1}), "qout", "narrow"),
    ("CEIL rounding", dict(act={"mode": "CEIL"}), "qout", "rounding_mode CEIL"),
    ("HALF_UP on a signed output", dict(act={"mode": "HALF_UP"}), "qout", "away from zero"),
    ("a fractional bit width", dict(act={"bits": 7.5}), "qout", "bit width"),
    ("thresholds that are no requantization",
     dict(out_node=_multithreshold(np.tile(np.array([-0.3, 0.1, 0.2]), (6, 1)), 1.0, 0.0)), "mt", "thresholds"),
    ("thresholds that differ by channel",
     dict(out_node=_multithreshold(np.arange(18).reshape(6, 3) / 16.0, 1.0, 0.0)), "mt", "differ"),
]


@pytest.mark.parametrize("what,kw,node,reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_what_kofn_cannot_represent_is_refused_naming_the_node(what, kw, node, reason, tmp_path):
    import onnx

    w, b = _weights()
    onnx.save(_dense_qonnx(w, b, **kw), str(tmp_path / "m.onnx"))
    with pytest.raises(OnnxImportError, match=reason) as e:
        onnx_to_ir(read_model(tmp_path / "m.onnx"), "m")
    assert f"'{node}'" in str(e.value)


def test_unsupported_qonnx_operator_is_named(tmp_path):
    import onnx

    w, b = _weights()

    def trunc(inits):
        inits.update(t_s=1.0, t_z=0.0, t_i=16.0, t_o=8.0)
        return [helper.make_node("Trunc", ["acc", "t_s", "t_z", "t_i", "t_o"], ["y"], name="tr", domain=QONNX_DOMAIN)]

    onnx.save(_dense_qonnx(w, b, out_node=trunc), str(tmp_path / "m.onnx"))
    with pytest.raises(OnnxImportError, match=r"'tr' \(Trunc\).*Trunc is not supported"):
        read_model(tmp_path / "m.onnx")


def test_partly_quantized_model_is_fine_tuned(tmp_path):
    """Quantized weights but float activations: not ready for codegen, so the flow fine-tunes it
    under the config's method from the quantized weights (the float path)."""
    import onnx

    from kofn.app.config import parse_config
    from kofn.app.flow import preflight

    w, b = _weights(seed=5, rows=10, n=64, k=64)
    proto = _dense_qonnx(w, b, out_node=lambda inits: [helper.make_node("Identity", ["acc"], ["y"], name="id")])
    onnx.save(proto, str(tmp_path / "m.onnx"))
    net = read_model(tmp_path / "m.onnx")
    assert not net.quantized
    cfg = parse_config(f'model = "{tmp_path / "m.onnx"}"\n[[layers]]\nout_features = 10\nk = 16\nrelu = false\n'
                       'output = { width = 16, int_bits = 8 }\n')
    pre = preflight(cfg)
    assert pre.imported is None and len(pre.init) == 1
    np.testing.assert_array_equal(pre.init[0][0], np.round(w * 64) / 64)  # Brevitas's quantized weights


@pytest.mark.slow
def test_partly_quantized_brevitas_model_fine_tunes_through_the_flow(tmp_path):
    """Brevitas QuantLinear weights, float ReLU and logits (no activation quantizers): kofn
    takes its quantized weights as the start of the config's k-of-n QAT and proves the result."""
    import re
    import warnings

    import torch
    from brevitas.export import export_qonnx
    from brevitas.nn import QuantLinear
    from brevitas.quant import Int8WeightPerTensorFixedPoint

    import kofn
    from kofn.app.cli import main
    from qonnx_models import train_masked

    torch.manual_seed(0)
    net = torch.nn.Sequential(QuantLinear(64, 32, bias=True, weight_quant=Int8WeightPerTensorFixedPoint),
                              torch.nn.ReLU(), QuantLinear(32, 10, bias=True, weight_quant=Int8WeightPerTensorFixedPoint))
    train_masked(net, {}, image=False, epochs=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(net, torch.rand(1, 64), str(tmp_path / "partial.onnx"))
    assert not read_model(tmp_path / "partial.onnx").quantized
    text = (Path(kofn.__file__).parent / "default.toml").read_text()
    text = re.sub(r'^name = .*$', 'name = "partial"\nmodel = "partial.onnx"', text, count=1, flags=re.M)
    text = re.sub(r"^epochs = .*$", "epochs = 3", text, count=1, flags=re.M)
    (tmp_path / "c.toml").write_text(text)
    assert main(["flow", str(tmp_path / "c.toml"), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    r = json.loads((tmp_path / "b" / "report.json").read_text())
    assert r["bitexact"]["rtl"]["mismatches"] == 0 and r["bitexact"]["hls"]["mismatches"] == 0
    assert [L["k"] for L in r["layers"]] == [16, 8]  # the config's k-of-n, not the model's dense rows
    assert r["accuracy"]["integer"] > 0.85  # started from Brevitas's trained weights
