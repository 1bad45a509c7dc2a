"""KofnNet on residual graphs (issue 28): a ResNet block with an identity shortcut and one with
a strided 1x1 projection, global average pooling and a dense classifier.  Every method exports
an IR whose integers equal the trained model in eval mode on every output; feature-map pruning
inside a block keeps the add's inputs aligned; malformed graphs are config errors naming the key."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kofn.app.config import METHODS, TrainConfig
from kofn.app.data import load_digits
from kofn.core.errors import ConfigError
from kofn.core.fixed import FixedFormat as F
from kofn.core.layers import AddSpec, ConvSpec, DenseSpec, GapSpec
from kofn.pruning import KofnNet, train
from qat import assert_eval_equals_reference

WF, BF, HF = F(8, 2), F(16, 6), F(8, 3, False)
BR = F(8, 4)  # a block's second conv and the projection: signed, no ReLU before the add


def resnet_specs(gran: str = "weight", first_gran: str | None = None):
    """stem 4@3x3 -> block (identity) -> block (4 -> 8, stride 2, a 1x1 projection with stride 2) -> gap -> dense."""
    k3 = {"weight": 12, "kernel": 2, "feature_map": 3}[gran]
    fg = first_gran or gran
    k_first = {"weight": 12, "kernel": 2, "feature_map": 3}[fg]
    return [
        ConvSpec(4, 3, 9, WF, BF, HF, padding="same", name="stem"),
        ConvSpec(4, 3, k_first, WF, BF, HF, padding="same", granularity=fg, name="b0_a"),
        ConvSpec(4, 3, k3 if gran != "feature_map" else 12, WF, BF, BR, padding="same", relu=False,
                 granularity=gran if gran != "feature_map" else "weight", name="b0_b"),
        AddSpec(inputs=("b0_b", "stem"), output=HF, name="b0_add"),
        ConvSpec(8, 3, k3, WF, BF, HF, stride=2, padding="same", granularity=gran, name="b1_a"),
        ConvSpec(8, 3, 24 if gran != "kernel" else 4, WF, BF, BR, padding="same", relu=False,
                 granularity="weight" if gran != "kernel" else "kernel", name="b1_b"),
        ConvSpec(8, 1, 2, WF, BF, BR, stride=2, relu=False, inputs=("b0_add",), name="b1_s"),
        AddSpec(inputs=("b1_b", "b1_s"), output=HF, name="b1_add"),
        GapSpec(output=F(10, 3, False)),
        DenseSpec(10, 4, WF, BF, F(12, 6), relu=False),
    ]


def _trained(method: str, specs, epochs: int = 2, seed: int = 0):
    ds = load_digits()
    torch.manual_seed(seed)
    model = KofnNet((8, 8, 1), F(8, 1, False), specs, method=method)
    train(model, ds.x_train[:300], ds.y_train[:300], dataclasses.replace(TrainConfig(), epochs=epochs, batch_size=50),
          log_metrics=False)
    return model, ds


@pytest.mark.parametrize("method", METHODS)
def test_a_trained_resnet_in_eval_equals_the_reference(method):
    model, ds = _trained(method, resnet_specs())
    m = model.to_ir("t")
    assert not m.is_chain
    kinds = {l.name: l.kind for l in m.layers}
    assert kinds["b0_add"] == "add" and kinds["l8"] == "gap" and kinds["l9"] == "dense"
    edges = dict(zip([l.name for l in m.layers], m.inputs))
    assert edges["b0_add"] == ("b0_b", "stem") and edges["b1_add"] == ("b1_b", "b1_s")
    assert edges["l9"] == ("l8",) and edges["l8"] == ("b1_add",)
    if method != "dense":
        assert next(l for l in m.layers if l.name == "b1_a").k == 12
    assert_eval_equals_reference(model, m, ds.x_test)


@pytest.mark.parametrize("gran", ["kernel", "feature_map"])
def test_kernel_and_feature_map_pruning_inside_a_block(gran):
    """Feature-map pruning on each block's first conv (as DPP prunes ResNets) removes its
    filters and the second conv's inputs; the add's two inputs keep every channel."""
    model, ds = _trained("dpp", resnet_specs(gran))
    m = model.to_ir("t")
    L = {l.name: l for l in m.layers}
    if gran == "feature_map":
        assert L["b0_a"].rows == 3 and L["b0_b"].in_shape == (8, 8, 3)
        assert L["b1_a"].rows == 3 and L["b1_b"].in_shape == (4, 4, 3)
        assert L["b0_add"].shape == (8, 8, 4) and L["b1_add"].shape == (4, 4, 8)
    else:
        assert L["b0_a"].granularity == "kernel" and L["b0_a"].k == 2
    assert_eval_equals_reference(model, m, ds.x_test)


def test_feature_map_pruning_into_an_add_is_a_config_error():
    specs = resnet_specs()
    specs[2] = dataclasses.replace(specs[2], granularity="feature_map", k=3)
    with pytest.raises(ConfigError, match=r"layers\[2\]\.granularity: feature-map pruning would remove channels of "
                                          r"one input of the add layers\[3\]"):
        KofnNet((8, 8, 1), F(8, 1, False), specs)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.__setitem__(3, AddSpec(inputs=("b0_b",), name="b0_add")), r"layers\[3\]\.inputs: an add layer reads 2 tensors, got 1"),
    (lambda s: s.__setitem__(3, AddSpec(name="b0_add")), r"layers\[3\]\.inputs: an add layer reads 2 tensors: name them"),
    (lambda s: s.__setitem__(3, AddSpec(inputs=("b0_b", "b1_a"), name="b0_add")), r"'b1_a' is a later layer"),
    (lambda s: s.__setitem__(3, AddSpec(inputs=("b0_b", "nope"), name="b0_add")), r"'nope' is no layer"),
    (lambda s: s.__setitem__(7, AddSpec(inputs=("b1_b", "b0_add"), name="b1_add")),
     r"layers\[7\]\.inputs: an add needs two inputs of one shape: 'b1_b' is \(4, 4, 8\), 'b0_add' is \(8, 8, 4\)"),
    (lambda s: s.__setitem__(1, dataclasses.replace(s[1], name="stem")), r"layers\[1\]\.name: 'stem' is already layers\[0\]"),
    (lambda s: s.__setitem__(1, dataclasses.replace(s[1], name="input")), r"layers\[1\]\.name: .*'input'"),
    (lambda s: [s.__setitem__(i, dataclasses.replace(s[i], inputs=("stem",))) for i in (4, 6)],
     r"layers\[3\]\.name: layer 'b0_add' feeds no other"),
    (lambda s: s.__setitem__(8, GapSpec(inputs=("l9",))), r"'l9' is a later layer"),
    (lambda s: s.__setitem__(9, dataclasses.replace(s[9], inputs=("l8", "stem"))), r"a dense layer reads 1 tensor, got 2"),
])
def test_malformed_graph_configs_name_the_key(change, message):
    specs = resnet_specs()
    change(specs)
    with pytest.raises(ConfigError, match=message):
        KofnNet((8, 8, 1), F(8, 1, False), specs)


def test_the_add_is_exact_where_float_addition_needs_care():
    """Adding two signed branches whose formats differ by four fraction bits: the sum and its
    rounding in eval mode equal the integer reference on every output."""
    specs = resnet_specs()
    specs[2] = dataclasses.replace(specs[2], output=F(10, 2))  # b0_b: 8 fraction bits, the stem 5
    model, ds = _trained("dpp", specs, epochs=1, seed=3)
    m = model.to_ir("t")
    add = next(l for l in m.layers if l.name == "b0_add")
    assert add.a_fmt.frac != add.b_fmt.frac
    assert_eval_equals_reference(model, m, ds.x_test)
