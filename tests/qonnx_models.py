"""Brevitas models with power-of-two scales and a fixed k-of-n mask, trained briefly on the
digits set and exported with Brevitas's own QONNX export: models no one here wrote by hand.

Used by tests/test_qonnx.py and benchmarks/qonnx_roundtrip.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def kofn_mask(rows: int, n: int, k: int, seed: int):
    """``[rows, n]`` 0/1 float mask keeping ``k`` random inputs per row."""
    import torch

    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(rows, n)
    for r in range(rows):
        m[r, torch.randperm(n, generator=g)[:k]] = 1.0
    return m


def brevitas_mlp(k1: int = 16, k2: int = 6):
    """64 -> 16 (ReLU) -> 10, 8-bit power-of-two weights and activations, 16-bit biases."""
    import torch
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias
    from brevitas.quant import Uint8ActPerTensorFixedPoint

    torch.manual_seed(0)

    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = QuantIdentity(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.fc1 = QuantLinear(64, 16, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                                   bias_quant=Int16Bias, return_quant_tensor=True)
            self.relu = QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.fc2 = QuantLinear(16, 10, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                                   bias_quant=Int16Bias, return_quant_tensor=True)
            self.out = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)

        def forward(self, x):
            return self.out(self.fc2(self.relu(self.fc1(self.inp(x)))))

    net = Mlp()
    masks = {"fc1": kofn_mask(16, 64, k1, 1), "fc2": kofn_mask(10, 16, k2, 2)}
    return net, masks


def brevitas_cnn(k_conv: int = 5, k_fc: int = 24):
    """1x8x8 -> conv 6 3x3 same (ReLU) -> maxpool 2 -> flatten -> 10, weight-level k-of-n."""
    import torch
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias
    from brevitas.quant import Uint8ActPerTensorFixedPoint

    torch.manual_seed(0)

    class Cnn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = QuantIdentity(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.conv = QuantConv2d(1, 6, 3, padding=1, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                                    bias_quant=Int16Bias, return_quant_tensor=True)
            self.relu = QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.pool = torch.nn.MaxPool2d(2)
            self.fc = QuantLinear(96, 10, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                                  bias_quant=Int16Bias, return_quant_tensor=True)
            self.out = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)

        def forward(self, x):
            x = self.pool(self.relu(self.conv(self.inp(x))))
            return self.out(self.fc(x.flatten(1)))

    net = Cnn()
    masks = {"conv": kofn_mask(6, 9, k_conv, 3).reshape(6, 1, 3, 3), "fc": kofn_mask(10, 96, k_fc, 4)}
    return net, masks


def train_masked(net, masks: dict, image: bool, epochs: int = 15, seed: int = 0):
    """A few epochs of plain QAT on digits with the fixed masks re-applied after every step."""
    import torch

    from kofn.app.data import load_digits

    ds = load_digits(0.2, seed=seed)
    x = torch.as_tensor(ds.x_train, dtype=torch.float32)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    y = torch.as_tensor(ds.y_train)
    layers = dict(net.named_modules())

    def apply():
        with torch.no_grad():
            for name, m in masks.items():
                layers[name].weight.mul_(m)

    apply()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
            apply()
    net.eval()
    return net


def export(net, path: Path, image: bool) -> Path:
    """Brevitas's QONNX export (batch of 1 traced)."""
    import torch
    from brevitas.export import export_qonnx

    x = torch.rand(1, 1, 8, 8) if image else torch.rand(1, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(net, x, str(path))
    return path


def qonnx_outputs(path: Path, x_real: np.ndarray) -> np.ndarray:
    """The QONNX model run by qonnx's own executor on ``x_real`` (NCHW or [N, n]), one image at a time."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    mw = ModelWrapper(str(path)).transform(InferShapes())  # the executor wants every shape known
    iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
    batch = mw.get_tensor_shape(iname)[0] or 1
    outs = []
    for i in range(0, len(x_real), batch):
        outs.append(np.asarray(execute_onnx(mw, {iname: x_real[i:i + batch].astype(np.float32)})[oname]))
    return np.concatenate(outs).reshape(len(x_real), -1).astype(np.float64)


def build(kind: str, folder: Path, epochs: int = 15) -> tuple[Path, dict]:
    """Train and export the ``kind`` ("mlp" or "cnn") model into ``folder``; returns the
    ONNX path and the masks (numpy)."""
    image = kind == "cnn"
    net, masks = brevitas_cnn() if image else brevitas_mlp()
    train_masked(net, masks, image, epochs)
    path = export(net, Path(folder) / f"brevitas_{kind}.onnx", image)
    return path, {k: v.numpy() for k, v in masks.items()}
