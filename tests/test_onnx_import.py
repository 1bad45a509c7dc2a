"""ONNX import: kofn's own export and float models trained elsewhere (torch.onnx) come back
in; unsupported graphs and masks that are not k-of-n are errors naming the node."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from designs import ALL_DESIGNS, design
from kofn.app.config import parse_config
from kofn.app.export import to_onnx
from kofn.app.onnx_import import OnnxImportError, float_init, onnx_to_ir, read_onnx
from kofn.core.reference import run
from kofn.core.testing import random_inputs
from qat import assert_eval_equals_reference


@pytest.mark.parametrize("name", ALL_DESIGNS)
def test_kofn_onnx_round_trip_is_identical(name):
    m, _ = design(name, seed=3)
    m2 = onnx_to_ir(read_onnx(to_onnx(m)), m.name)
    assert [(l.name, l.kind) for l in m2.layers] == [(l.name, l.kind) for l in m.layers]
    for a, b in zip(m.layers, m2.layers):
        assert a.input_fmt == b.input_fmt and a.output_fmt == b.output_fmt
        if a.weighted:
            assert (a.k, a.weight_fmt, a.bias_fmt, a.relu) == (b.k, b.weight_fmt, b.bias_fmt, b.relu)
            np.testing.assert_array_equal(a.dense_weights(), b.dense_weights())
            np.testing.assert_array_equal(a.bias, b.bias)
    x = random_inputs(m, 300, seed=1)
    np.testing.assert_array_equal(run(m2, x), run(m, x))


def _float_cnn_onnx(path, seed=0):
    """A float CNN 'trained elsewhere': a few plain float32 epochs on digits, then torch.onnx."""
    from kofn.app.data import load_digits

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(96, 10))
    ds = load_digits()
    x = torch.as_tensor(ds.x_train).reshape(-1, 1, 8, 8)
    y = torch.as_tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but still the plain-ONNX one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x[:1],), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}})
    return net


@pytest.fixture(scope="module")
def float_cnn(tmp_path_factory):
    """The float CNN and its ONNX file, trained once for the tests below."""
    path = tmp_path_factory.mktemp("float_onnx") / "f.onnx"
    return _float_cnn_onnx(path), path


_CNN_CFG = """
name = "imported"
model = "{model}"
[train]
method = "dpp"
epochs = {epochs}
[[layers]]
type = "conv"
out_channels = 6
kernel = 3
padding = "same"
k = 5
[[layers]]
type = "maxpool"
[[layers]]
out_features = 10
k = 24
relu = false
output = {{ width = 16, int_bits = 8 }}
[sim]
random_vectors = 20
test_vectors = 40
"""


def test_float_onnx_initialises_the_kofn_model(float_cnn):
    from kofn.core.layers import ConvSpec, DenseSpec, PoolSpec
    from kofn.pruning import KofnNet
    from kofn.core.fixed import FixedFormat as F

    net, path = float_cnn
    parsed = read_onnx(path)
    assert not parsed.quantized and [l.kind for l in parsed.layers] == ["conv", "maxpool", "dense"]
    cfg = parse_config(_CNN_CFG.format(model=path, epochs=1))
    init = float_init(parsed, cfg.layers, (8, 8, 1))
    specs = [ConvSpec(6, 3, 9, F(8, 2), F(16, 6), F(8, 3, False), padding="same"), PoolSpec(),
             DenseSpec(10, 96, F(8, 2), F(16, 6), F(16, 8), relu=False)]
    model = KofnNet((8, 8, 1), F(8, 1, False), specs, method="dense", init=init)
    model.set_quantize(False)
    model.eval()
    from kofn.app.data import load_digits

    ds = load_digits()
    with torch.no_grad():
        want = net(torch.as_tensor(ds.x_test).reshape(-1, 1, 8, 8))
        got = model(torch.as_tensor(ds.x_test))  # HWC input, HWC flatten: the CHW columns were permuted
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_float_onnx_through_flow(tmp_path, float_cnn):
    import json

    from kofn.app.cli import main

    (tmp_path / "c.toml").write_text(_CNN_CFG.format(model=float_cnn[1], epochs=3))
    assert main(["flow", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert r["bitexact"]["rtl"]["mismatches"] == 0 and r["bitexact"]["hls"]["mismatches"] == 0
    assert (r["layers"][0]["kind"], r["layers"][0]["k"], r["layers"][2]["k"]) == ("conv", 5, 24)
    assert r["accuracy"]["integer"] > 0.8  # started from trained weights: 3 epochs of QAT suffice


def _graph(nodes, inits, in_shape, out_dim):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])],
                          initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


def test_unsupported_op_names_the_node():
    m = _graph([helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc1", transB=1),
                helper.make_node("Sigmoid", ["h"], ["y"], name="act1")],
               {"w": np.ones((3, 4)), "b": np.zeros(3)}, [4], 3)
    with pytest.raises(OnnxImportError, match=r"node 'act1' \(Sigmoid\): operator Sigmoid is not supported"):
        read_onnx(m)


def test_mask_that_is_not_kofn_names_the_node():
    w = np.array([[1, 0, 0, 2], [1, 1, 1, 0], [0, 0, 3, 0]]) * 0.25  # rows keep 2, 3, 1
    nodes = [helper.make_node("Mul", ["x", "up"], ["a"]), helper.make_node("Add", ["a", "half"], ["b"]),
             helper.make_node("Floor", ["b"], ["c"]), helper.make_node("Clip", ["c", "lo", "hi"], ["d"]),
             helper.make_node("Mul", ["d", "down"], ["e"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("Gemm", ["e", "wd", "b"], ["g"], name="fc_sparse", transB=1),
             helper.make_node("Mul", ["g", "up2"], ["g1"]), helper.make_node("Add", ["g1", "half"], ["g2"]),
             helper.make_node("Floor", ["g2"], ["g3"]), helper.make_node("Clip", ["g3", "lo2", "hi2"], ["g4"]),
             helper.make_node("Mul", ["g4", "down2"], ["y"])]
    inits = {"up": 128.0, "half": 0.5, "lo": 0.0, "hi": 255.0, "down": 1 / 128, "ws": 0.25, "b": np.zeros(3),
             "up2": 8.0, "lo2": -128.0, "hi2": 127.0, "down2": 0.125}
    m = _graph(nodes, inits, [4], 3)
    m.graph.initializer.extend([numpy_helper.from_array((w * 4).astype(np.int8), "wq"),
                                numpy_helper.from_array(np.int8(0), "wz")])
    net = read_onnx(m)
    assert net.quantized and net.input_fmt.describe() == "ufixed<8,1>"
    with pytest.raises(OnnxImportError, match=r"node 'fc_sparse' \(Gemm\): rows keep 1\.\.3 nonzero weights"):
        onnx_to_ir(net)


def test_structure_mismatch_and_scales_are_errors(float_cnn):
    _, path = float_cnn
    cfg = parse_config(_CNN_CFG.format(model=path, epochs=1).replace("out_channels = 6", "out_channels = 8"))
    with pytest.raises(OnnxImportError, match=r"layers\[0\] .*out_channels, kernel, stride, pad = \(6, 3, 1, 1\)"):
        float_init(read_onnx(path), cfg.layers, (8, 8, 1))
    m = _graph([helper.make_node("Mul", ["x", "s"], ["y"], name="scale")], {"s": 3.0}, [4], 4)
    with pytest.raises(OnnxImportError, match=r"node 'scale' \(Mul\): scale 3.0 is not a power of two"):
        read_onnx(m)


def test_torch_ao_sparsified_model_is_accepted_and_exact():
    """A float MLP sparsified by torch.ao.pruning (1 of every 4 weights per row) enters kofn
    with its masks and weights, fine-tunes with QAT, and exports an exact k-of-n IR."""
    import dataclasses

    from torch.ao.pruning import WeightNormSparsifier

    from kofn.app.config import TrainConfig
    from kofn.app.data import load_digits
    from kofn.core.fixed import FixedFormat as F
    from kofn.core.layers import DenseSpec
    from kofn.pruning import KofnNet, masks_from_torch_ao, train

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    sp = WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, 4), zeros_per_block=3)
    sp.prepare(net, [{"tensor_fqn": "0.weight"}, {"tensor_fqn": "2.weight"}])
    sp.step()
    masks = masks_from_torch_ao(net, k=1, n=4)
    init = [(net[i].parametrizations.weight.original.detach().numpy(), net[i].bias.detach().numpy()) for i in (0, 2)]
    specs = [DenseSpec(16, 1, F(8, 2), F(16, 6), F(8, 3, False), True, "block", 4),
             DenseSpec(10, 1, F(8, 2), F(16, 6), F(12, 6), False, "block", 4)]
    model = KofnNet((64,), F(8, 1, False), specs, masks=[m.reshape(-1, 4) for m in masks], init=init)
    ds = load_digits()
    train(model, ds.x_train[:300], ds.y_train[:300], dataclasses.replace(TrainConfig(), epochs=1), log_metrics=False)
    ir = model.to_ir("ao")
    assert [l.k for l in ir.layers] == [16, 4]  # 1 of every 4 inputs: a fixed stride of n/4 per row
    assert_eval_equals_reference(model, ir, ds.x_test)
