"""Train -> IR -> integer accuracy: the one path `kofn flow`, `kofn explore` and
`kofn compare` share.

:func:`train_to_ir` builds the config's model, trains it, exports the IR and measures the
float model and the integer reference on the test split.  Torch is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import DataError
from ..core.fixed import quantize
from ..core.ir import Model
from ..core.reference import run as reference_run
from .config import FlowConfig

__all__ = ["Trained", "load_data", "build_model", "train_to_ir", "integer_accuracy", "accuracy_of"]


@dataclass(frozen=True)
class Trained:
    """A trained model (``net``, torch, quantization on) and what the flow needs from it."""

    net: Any
    ir: Model
    history: Any  # kofn.pruning.TrainHistory
    accuracy_float: float  # the float model (quantization off) on the test split
    accuracy_int: float  # the integer reference on the test split
    x_test: np.ndarray  # the quantized test inputs (codes)
    ref_test: np.ndarray  # the reference's output codes on them


def load_data(cfg: FlowConfig):
    """The dataset ``cfg`` names, split for training and test."""
    from .data import load_cifar10, load_digits, load_mnist

    if cfg.data.dataset == "digits":
        return load_digits(cfg.data.test_fraction, seed=cfg.seed)
    try:
        return load_cifar10(cfg.data.path) if cfg.data.dataset == "cifar10" else load_mnist(cfg.data.path)
    except DataError as e:
        raise DataError(f"data.path: {e}") from None


def accuracy_of(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of output codes (or logits) against labels."""
    return float((outputs.argmax(axis=1) == labels).mean())


def integer_accuracy(model_ir: Model, ds) -> tuple[np.ndarray, np.ndarray, float]:
    """The quantized test images, the reference's outputs on them, and its accuracy."""
    x_test = quantize(ds.x_test, model_ir.input_fmt)
    ref_test = reference_run(model_ir, x_test)
    return x_test, ref_test, accuracy_of(ref_test, ds.y_test)


def build_model(cfg: FlowConfig, n_features: int, init=None):
    """The untrained model ``cfg`` describes (``init``: float weights and biases per weighted
    layer to start from, or ``None``)."""
    from ..pruning import KofnNet

    t = cfg.train
    shape = cfg.data.image_shape if cfg.is_image_model else (n_features,)
    return KofnNet(shape, cfg.input, cfg.layers, method=t.method, train_cfg=t, seed=cfg.seed, init=init)


def train_to_ir(cfg: FlowConfig, ds, progress: Callable[[str], None], init=None, threads: int = 2) -> Trained:
    """Build and train ``cfg``'s model on ``ds``, export its IR (named ``cfg.name``) and
    measure it.  The model is left with quantization on (what export and the hardware
    compute).

    Training runs on ``cfg.train.device`` (:mod:`kofn.pruning.device`; a CUDA request on a
    machine without one is a :class:`~kofn.core.errors.ConfigError` raised here, before the
    model is built); the model comes back on the CPU, where the float accuracy and the
    export are computed.  A CUDA run draws the CPU run's random numbers, yet its IR may
    differ from the CPU run's (float reduction order flips a weight near a rounding or mask
    boundary); either IR is bit-exact against its own hardware, since the integer reference
    is computed from the exported IR."""
    import torch

    from ..pruning import accuracy, train
    from ..pruning.device import device_label, resolve_device

    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
    progress(f"method {cfg.train.method}: " + ", ".join(l.describe(i) for i, l in enumerate(cfg.layers)))
    if device.type != "cpu":
        progress(f"training on {device_label(device)}")
    net = build_model(cfg, ds.n_features, init)
    hist = train(net, ds.x_train, ds.y_train, cfg.train, seed=cfg.seed, progress=progress, device=device)
    net.set_quantize(False)
    acc_float = accuracy(net, ds.x_test, ds.y_test)
    net.set_quantize(True)
    model_ir = net.to_ir(cfg.name)
    x_test, ref_test, acc_int = integer_accuracy(model_ir, ds)
    return Trained(net, model_ir, hist, acc_float, acc_int, x_test, ref_test)
