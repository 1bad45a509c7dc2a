"""KofnNet on images: every method at every conv granularity (weight, kernel, feature map), with and
without BatchNorm, exports an IR whose integers equal the trained model in eval mode;
BatchNorm folding equals an explicit BatchNorm in floating point."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kofn.app.config import METHODS, TrainConfig
from kofn.app.data import load_digits
from kofn.core.fixed import FixedFormat as F
from kofn.core.layers import ConvSpec, DenseSpec, PoolSpec
from kofn.pruning import KofnNet, train
from qat import assert_eval_equals_reference

WF, BF, HF = F(8, 2), F(16, 6), F(8, 3, False)


def _specs(gran: str, bn: bool):
    k2 = {"weight": 20, "kernel": 2, "feature_map": 5}[gran]
    return [
        ConvSpec(4, 3, 9, WF, BF, HF, padding="same", bn=bn),  # dense conv (k = n)
        PoolSpec(),
        ConvSpec(8, 3, k2, WF, BF, HF, padding="same", granularity=gran, bn=bn),
        PoolSpec(),
        DenseSpec(10, 12, WF, BF, F(12, 6), relu=False),
    ]


def _trained(method: str, gran: str, bn: bool) -> tuple[KofnNet, object]:
    ds = load_digits()
    torch.manual_seed(0)
    model = KofnNet((8, 8, 1), F(8, 1, False), _specs(gran, bn), method=method)
    train(model, ds.x_train[:300], ds.y_train[:300], dataclasses.replace(TrainConfig(), epochs=2, batch_size=50),
          log_metrics=False)
    return model, ds


def _assert_exact(model: KofnNet, ds) -> None:
    assert_eval_equals_reference(model, model.to_ir("t"), ds.x_test)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("gran", ["weight", "kernel", "feature_map"])
def test_trained_cnn_in_eval_equals_reference(method, gran):
    model, ds = _trained(method, gran, bn=(gran != "weight"))
    m = model.to_ir("t")
    conv2, dense = m.layers[2], m.layers[4]
    assert [l.kind for l in m.layers] == ["conv", "maxpool", "conv", "maxpool", "dense"]
    assert m.layers[0].granularity == "kernel" and m.layers[0].k == 1  # dense 1-channel conv: one index
    if method == "dense":
        assert (conv2.granularity, conv2.k) == ("kernel", 4)
    elif gran == "weight":
        assert (conv2.granularity, conv2.k) == ("weight", 20)
    elif gran == "kernel":
        assert (conv2.granularity, conv2.k, conv2.k_eff) == ("kernel", 2, 18)
    else:  # 5 of 8 filters survive; the dense layer's inputs shrink with them
        assert conv2.rows == 5 and m.layers[3].out_shape == (2, 2, 5) and dense.n == 20
    _assert_exact(model, ds)


def test_feature_map_pruning_shrinks_the_next_conv():
    specs = [ConvSpec(6, 3, 4, WF, BF, HF, padding="same", granularity="feature_map", bn=True),
             ConvSpec(8, 3, 3, WF, BF, HF, granularity="kernel"), PoolSpec(),
             DenseSpec(10, 12, WF, BF, F(12, 6), relu=False)]
    ds = load_digits()
    torch.manual_seed(1)
    model = KofnNet((8, 8, 1), F(8, 1, False), specs, method="dpp")
    train(model, ds.x_train[:200], ds.y_train[:200], dataclasses.replace(TrainConfig(), epochs=1, batch_size=50),
          log_metrics=False)
    m = model.to_ir("t")
    assert m.layers[0].rows == 4 and m.layers[1].in_shape == (8, 8, 4)
    assert m.layers[1].k == 3  # still exactly k kernels per filter (zero kernels pad a removed channel)
    _assert_exact(model, ds)


def test_batchnorm_fold_equals_explicit_batchnorm():
    """With quantization off, the folded conv equals conv followed by BatchNorm2d (eval)."""
    torch.manual_seed(2)
    model = KofnNet((6, 6, 2), F(8, 1, False), [ConvSpec(3, 3, 18, WF, BF, HF, bn=True),
                                                 DenseSpec(2, 48, WF, BF, F(12, 6), relu=False)], method="dense")
    model.set_quantize(False)
    model.train()
    x = torch.rand(32, 72)
    for _ in range(5):
        model(x)  # updates the running statistics
    model.eval().double()
    conv = model.mods[0]
    fold = model.bns["0"]
    bn = torch.nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        fold.weight.copy_(bn.weight)
        fold.bias.copy_(bn.bias)
        bn.running_mean.copy_(fold.running_mean)
        bn.running_var.copy_(fold.running_var)
        assert not torch.allclose(fold.running_var, torch.ones(3, dtype=torch.float64))  # statistics were learnt
        img = x.double().reshape(-1, 6, 6, 2).permute(0, 3, 1, 2)
        raw = torch.nn.functional.conv2d(img, conv.parametrizations.weight.original, conv.bias)
        want = torch.relu(bn(raw)).permute(0, 2, 3, 1).reshape(32, -1)
        folded = torch.nn.functional.conv2d(img, conv.weight, model._bias(0, None))
        got = torch.relu(folded).permute(0, 2, 3, 1).reshape(32, -1)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_bad_cnn_specs_are_rejected():
    with pytest.raises(ValueError, match="last layer must be dense"):
        KofnNet((8, 8, 1), F(8, 1, False), [ConvSpec(2, 3, 9, WF, BF, HF)], method="dense")
    with pytest.raises(ValueError, match="does not fit"):
        KofnNet((2, 2, 1), F(8, 1, False), [ConvSpec(2, 3, 9, WF, BF, HF), DenseSpec(2, 1, WF, BF, HF)], method="dense")
    with pytest.raises(ValueError, match="maxpool needs an image"):
        KofnNet((4, 4, 1), F(8, 1, False), [DenseSpec(4, 2, WF, BF, HF), PoolSpec(), DenseSpec(2, 1, WF, BF, HF)],
                method="dense")
