"""ONNX for residual graphs (issue 28): kofn's export of a ResNet runs exactly in onnxruntime
and imports back as the same graph; a ResNet written as a plain ``nn.Module`` and exported by
``torch.onnx.export`` imports as a graph whose weights start kofn's training, which then exports
bit-exact; a requantization on one branch of a fork is refused by name."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from onnx import helper
from torch import nn

from kofn.app.export import run_onnx, to_onnx
from kofn.app.onnx_import import OnnxImportError, float_init, onnx_to_ir, read_onnx
from kofn.core.fixed import FixedFormat as F
from kofn.core.layers import AddSpec, ConvSpec, DenseSpec, GapSpec
from kofn.core.reference import run
from kofn.core.testing import random_inputs, random_resnet
from qat import assert_eval_equals_reference


@pytest.mark.parametrize("seed", [0, 1])
def test_a_resnet_exported_to_onnx_is_exact_in_onnxruntime_and_imports_back(seed, tmp_path):
    m = random_resnet((8, 8, 3), 4, [(4, 1), (8, 2)], 5, keep=0.5, seed=seed)
    proto = to_onnx(m, tmp_path / "r.onnx")
    assert [n.op_type for n in proto.graph.node].count("GlobalAveragePool") == 1
    x = random_inputs(m, 400, seed=seed)
    ref = run(m, x)
    got = run_onnx(m, tmp_path / "r.onnx", x)
    assert int((got != ref).sum()) == 0
    back = onnx_to_ir(read_onnx(tmp_path / "r.onnx"), m.name)
    assert back.inputs == m.inputs and [l.name for l in back.layers] == [l.name for l in m.layers]
    np.testing.assert_array_equal(run(back, x), ref)


class TinyResNet(nn.Module):
    """A plain float ResNet, as a user writes one: stem, an identity block, a block with a
    stride-2 1x1 projection, global average pooling, a linear classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.a0, self.b0 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.a1, self.b1 = nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.s1 = nn.Conv2d(4, 8, 1, stride=2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.b0(torch.relu(self.a0(x))) + x)
        x = torch.relu(self.b1(torch.relu(self.a1(x))) + self.s1(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


WF, BF, HF, BR = F(8, 2), F(16, 6), F(8, 3, False), F(8, 4)
SPECS = [
    ConvSpec(4, 3, 9, WF, BF, HF, padding="same", name="stem"),
    ConvSpec(4, 3, 12, WF, BF, HF, padding="same"),
    ConvSpec(4, 3, 12, WF, BF, BR, padding="same", relu=False),
    AddSpec(inputs=("l2", "stem"), output=HF, name="add0"),
    ConvSpec(8, 3, 12, WF, BF, HF, stride=2, padding="same"),
    ConvSpec(8, 3, 24, WF, BF, BR, padding="same", relu=False),
    ConvSpec(8, 1, 2, WF, BF, BR, stride=2, relu=False, inputs=("add0",)),
    AddSpec(inputs=("l5", "l6"), output=HF),
    GapSpec(output=F(10, 3, False)),
    DenseSpec(10, 4, WF, BF, F(12, 6), relu=False),
]


@pytest.fixture(scope="module")
def torch_resnet(tmp_path_factory):
    """A TinyResNet (seed 0) and its ``torch.onnx.export`` file."""
    path = tmp_path_factory.mktemp("tiny_resnet") / "r.onnx"
    torch.manual_seed(0)
    net = TinyResNet().eval()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but still the plain-ONNX one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.rand(1, 1, 8, 8),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
    return net, path


def test_a_plain_torch_resnet_imports_as_a_graph_and_trains_bit_exact(torch_resnet):
    from kofn.app.data import load_digits
    from kofn.app.config import TrainConfig
    from kofn.pruning import KofnNet, train

    net, path = torch_resnet
    onet = read_onnx(path)
    assert [l.kind for l in onet.layers] == ["conv", "conv", "conv", "add", "conv", "conv", "conv", "add", "gap",
                                             "dense"]
    assert [l.inputs for l in onet.layers] == [[-1], [0], [1], [2, 0], [3], [4], [3], [5, 6], [7], [8]]
    assert [l.relu for l in onet.layers] == [True, True, False, True, True, False, False, True, False, False]
    init = float_init(onet, SPECS, (8, 8, 1))
    np.testing.assert_array_equal(init[5][0], net.s1.weight.detach().numpy())  # the projection (6th weighted layer)
    ds = load_digits()
    model = KofnNet((8, 8, 1), F(8, 1, False), SPECS, method="dpp", init=init)
    train(model, ds.x_train[:200], ds.y_train[:200], dataclasses.replace(TrainConfig(), epochs=1, batch_size=50),
          log_metrics=False)
    m = model.to_ir("r")
    assert not m.is_chain
    assert_eval_equals_reference(model, m, ds.x_test)


def test_the_config_must_wire_the_layers_as_the_onnx_model_does(torch_resnet):
    _, path = torch_resnet
    specs = list(SPECS)
    specs[6] = dataclasses.replace(specs[6], inputs=("stem",), stride=2)  # the projection reads the stem instead
    with pytest.raises(OnnxImportError, match=r"layers\[6\] .*: the ONNX layer reads \['add0'\], the config's \['stem'\]"):
        float_init(read_onnx(path), specs, (8, 8, 1))


def test_a_requantization_on_one_branch_of_a_fork_is_refused():
    """``c`` feeds both a Relu and an Add: the Relu would change one reader's view only."""
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("Add", ["r", "c"], ["s"], name="join")],
        "g", [helper.make_tensor_value_info("x", 1, [1, 1, 2, 2])], [helper.make_tensor_value_info("s", 1, None)],
        initializer=[helper.make_tensor("w", 1, [1, 1, 1, 1], [1.0])])
    with pytest.raises(OnnxImportError, match=r"node 'relu' \(Relu\): modifies 'c', which another node reads too"):
        read_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]))


def test_an_identical_requantization_after_a_pool_or_flatten_is_the_identity():
    """Q/DQ pairs after MaxPool and Flatten with the format the values already have (as
    onnxruntime's quantizer writes them) change nothing and import."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_u"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s_in", "z_u"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "s_w", "z_s"], ["w"]),
             helper.make_node("Conv", ["xd", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("QuantizeLinear", ["c", "s_a", "z_s"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "s_a", "z_s"], ["cd"]),
             helper.make_node("MaxPool", ["cd"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["p", "s_a", "z_s"], ["pq"], name="q_after_pool"),
             helper.make_node("DequantizeLinear", ["pq", "s_a", "z_s"], ["pd"]),
             helper.make_node("Flatten", ["pd"], ["f"]),
             helper.make_node("QuantizeLinear", ["f", "s_a", "z_s"], ["fq"], name="q_after_flatten"),
             helper.make_node("DequantizeLinear", ["fq", "s_a", "z_s"], ["fd"]),
             helper.make_node("DequantizeLinear", ["vq", "s_w", "z_s"], ["v"]),
             helper.make_node("Gemm", ["fd", "v"], ["g"], name="fc", transB=1),
             helper.make_node("QuantizeLinear", ["g", "s_a", "z_s"], ["gq"]),
             helper.make_node("DequantizeLinear", ["gq", "s_a", "z_s"], ["y"])]
    from onnx import numpy_helper

    inits = [numpy_helper.from_array(np.float32(v), n) for n, v in (("s_in", 1 / 128), ("s_w", 1 / 64), ("s_a", 1 / 16))]
    inits += [numpy_helper.from_array(np.uint8(0), "z_u"), numpy_helper.from_array(np.int8(0), "z_s"),
              numpy_helper.from_array(np.ones((2, 1, 1, 1), np.int8), "wq"),
              numpy_helper.from_array(np.ones((3, 8), np.int8), "vq")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, ["N", 1, 4, 4])],
                          [helper.make_tensor_value_info("y", 1, ["N", 3])], initializer=inits)
    net = read_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]))
    assert [l.kind for l in net.layers] == ["conv", "maxpool", "dense"] and net.quantized
    assert net.layers[0].output_fmt == net.layers[2].output_fmt == F(8, 4)


def test_kofn_flow_refuses_a_quantized_residual_onnx_model_in_its_preflight(tmp_path, capsys):
    from kofn.app.cli import main

    m = random_resnet((8, 8, 1), 4, [(4, 1)], 10, keep=0.5, seed=3)
    to_onnx(m, tmp_path / "r.onnx")
    (tmp_path / "c.toml").write_text('name = "r"\nmodel = "r.onnx"\n')
    assert main(["flow", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "r.onnx: layer 'b0_add': a layer of kind 'add'; the hardware generator builds chains" in err
    assert not (tmp_path / "o").exists()
