"""The integer reference (golden model): integer-only inference of a :class:`kofn.core.ir.Model`.

All arithmetic comes from :mod:`kofn.core.fixed`; this module only moves data:

* a dense layer is :func:`kofn.core.fixed.dense_layer`;
* a convolution gathers every output pixel's window (:func:`windows`, zero codes
  where the window overlaps the padding) and applies the same
  :func:`kofn.core.fixed.dense_layer` to each window, filters as rows;
* max pooling takes the largest code of each window (codes are monotonic in value,
  so no arithmetic is involved);
* an add is :func:`kofn.core.fixed.add_codes` on its two inputs, global average pooling
  :func:`kofn.core.fixed.avg_pool_codes` per channel.

A graph runs in the model's (topological) layer order, each layer on the tensors it names.

Images are HWC vectors throughout, as they stream into the hardware.
"""

from __future__ import annotations

import numpy as np

from .fixed import add_codes, avg_pool_codes, dense_layer
from .ir import INPUT, AddLayer, Conv2dLayer, DenseLayer, GlobalAvgPoolLayer, MaxPool2dLayer, Model

__all__ = ["run", "run_layers", "windows", "conv2d", "maxpool2d", "add", "global_avg_pool"]


def windows(x: np.ndarray, in_shape: tuple[int, int, int], kernel: int, stride: int, pad: int) -> np.ndarray:
    """Receptive fields of a batch of HWC images: ``[batch, OH * OW, K * K * C]``, each
    window flattened in ``(ky, kx, c)`` order, with code 0 in the padding."""
    h, w, c = in_shape
    img = np.asarray(x, dtype=np.int64).reshape(-1, h, w, c)
    if pad:
        img = np.pad(img, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh = (h + 2 * pad - kernel) // stride + 1
    ow = (w + 2 * pad - kernel) // stride + 1
    taps = [
        img[:, ky : ky + stride * (oh - 1) + 1 : stride, kx : kx + stride * (ow - 1) + 1 : stride, :]
        for ky in range(kernel)
        for kx in range(kernel)
    ]  # each [batch, oh, ow, c]
    return np.stack(taps, axis=3).reshape(img.shape[0], oh * ow, kernel * kernel * c)


def conv2d(x: np.ndarray, L: Conv2dLayer, max_elements: int = 1 << 24) -> np.ndarray:
    """Output codes ``[batch, OH * OW * C_out]`` (HWC) of convolution ``L``.

    Images are processed in chunks so the gathered products stay under
    ``max_elements`` int64 values (the result does not depend on the chunking)."""
    x = np.asarray(x, dtype=np.int64)
    oh, ow, _ = L.out_shape
    per_image = oh * ow * L.rows * L.k_eff
    chunk = max(1, max_elements // per_image)
    outs = []
    for i in range(0, max(1, len(x)), chunk):
        win = windows(x[i : i + chunk], L.in_shape, L.kernel, L.stride, L.pad)
        b, p, f = win.shape
        y = dense_layer(
            win.reshape(b * p, f), L.field_indices, L.field_weights, L.bias,
            L.input_fmt, L.weight_fmt, L.bias_fmt, L.output_fmt, L.relu, L.rounding,
        )
        outs.append(y.reshape(b, p * L.rows))
    return np.concatenate(outs)


def maxpool2d(x: np.ndarray, L: MaxPool2dLayer) -> np.ndarray:
    """Output codes ``[batch, OH * OW * C]`` (HWC) of ``L``; trailing odd rows/columns are dropped."""
    h, w, c = L.in_shape
    s = L.size
    oh, ow, _ = L.out_shape
    img = np.asarray(x, dtype=np.int64).reshape(-1, h, w, c)[:, : oh * s, : ow * s, :]
    return img.reshape(-1, oh, s, ow, s, c).max(axis=(2, 4)).reshape(img.shape[0], -1)


def run_layers(model: Model, x: np.ndarray) -> list[np.ndarray]:
    """Integer codes after every layer for input codes ``x[batch, n_in]`` (int64)."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise ValueError(f"inputs must be [batch, {model.n_inputs}], got {x.shape}")
    fmt = model.input_fmt
    if x.size and (x.min() < fmt.min_int or x.max() > fmt.max_int):
        raise ValueError(f"an input code is outside {fmt.describe()}")
    values = {INPUT: x}
    outs = []
    for L, srcs in zip(model.layers, model.inputs):
        y = OPS[type(L)](*(values[s] for s in srcs), L)
        values[L.name] = y
        outs.append(y)
    return outs


def dense(x: np.ndarray, L: DenseLayer) -> np.ndarray:
    """Output codes ``[batch, rows]`` of a dense layer: :func:`kofn.core.fixed.dense_layer`."""
    return dense_layer(x, L.indices, L.weights, L.bias, L.input_fmt, L.weight_fmt, L.bias_fmt, L.output_fmt, L.relu,
                       L.rounding)


def add(a: np.ndarray, b: np.ndarray, L: AddLayer) -> np.ndarray:
    """Output codes ``[batch, size]`` of ``L``: :func:`kofn.core.fixed.add_codes` element by element."""
    return add_codes(a, L.a_fmt, b, L.b_fmt, L.output_fmt, L.relu, L.rounding)


def global_avg_pool(x: np.ndarray, L: GlobalAvgPoolLayer) -> np.ndarray:
    """Output codes ``[batch, C]`` of ``L``: :func:`kofn.core.fixed.avg_pool_codes` over H and W."""
    h, w, c = L.in_shape
    return avg_pool_codes(np.asarray(x, dtype=np.int64).reshape(-1, h, w, c), L.input_fmt, L.output_fmt)


OPS = {DenseLayer: dense, Conv2dLayer: conv2d, MaxPool2dLayer: maxpool2d, AddLayer: add,
       GlobalAvgPoolLayer: global_avg_pool}
"""The reference op of each IR layer class: ``op(*codes[batch, in_size], layer) -> codes[batch, out_size]``,
one ``codes`` per input the layer reads."""


def run(model: Model, x: np.ndarray) -> np.ndarray:
    """Output codes ``[batch, n_out]`` (int64) for input codes ``x[batch, n_in]``."""
    return run_layers(model, x)[-1]
