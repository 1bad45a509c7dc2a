"""Helpers for tests: random k-out-of-n models with valid formats (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .fixed import FixedFormat
from .ir import INPUT, AddLayer, Conv2dLayer, DenseLayer, GlobalAvgPoolLayer, MaxPool2dLayer, Model

__all__ = ["random_model", "random_cnn", "random_resnet", "random_inputs"]


def _random_rows(rng, n: int, rows: int, k: int, weights_per_index: int, weight_fmt: FixedFormat,
                 bias_fmt: FixedFormat, banks: int = 1):
    """``rows`` ascending k-of-n index rows, ``k * weights_per_index`` weights per row and a
    bias each, all uniform over their formats (drawn in this order).  ``banks`` P > 1: k/P
    of every bank (input i in bank i mod P)."""
    if banks > 1:
        local = [np.stack([rng.choice(n // banks, size=k // banks, replace=False) for _ in range(banks)])
                 for _ in range(rows)]  # [P, k/P] bank-local addresses per row
        idx = np.sort(np.stack([(a * banks + np.arange(banks)[:, None]).ravel() for a in local]), axis=1)
    else:
        idx = np.sort(np.stack([rng.choice(n, size=k, replace=False) for _ in range(rows)]), axis=1)
    w = rng.integers(weight_fmt.min_int, weight_fmt.max_int + 1, size=(rows, k * weights_per_index))
    b = rng.integers(bias_fmt.min_int, bias_fmt.max_int + 1, size=rows)
    return idx, w, b


def random_model(
    sizes: Sequence[int],
    ks: Sequence[int],
    seed: int = 0,
    input_fmt: FixedFormat = FixedFormat(8, 1, signed=False),
    weight_fmt: FixedFormat = FixedFormat(8, 2),
    bias_fmt: FixedFormat = FixedFormat(12, 4),
    hidden_fmt: FixedFormat = FixedFormat(8, 3, signed=False),
    output_fmt: FixedFormat = FixedFormat(12, 6),
    relu_last: bool = False,
    banks: Sequence[int] | None = None,
) -> Model:
    """A model ``sizes[0] -> sizes[1] -> ...`` whose layer ``i`` keeps ``ks[i]`` inputs per row
    (``banks[i]`` > 1: k/P of each of P banks, the ``bank`` granularity).

    Weights and biases are uniform over their whole formats, so saturation and
    extreme codes are exercised.
    """
    rng = np.random.default_rng(seed)
    if len(ks) != len(sizes) - 1:
        raise ValueError("need one k per layer")
    layers = []
    fmt_in = input_fmt
    for i, (n, rows, k) in enumerate(zip(sizes, sizes[1:], ks)):
        last = i == len(ks) - 1
        fmt_out = output_fmt if last else hidden_fmt
        p = banks[i] if banks else 1
        idx, w, b = _random_rows(rng, n, rows, k, 1, weight_fmt, bias_fmt, p)
        layers.append(
            DenseLayer(f"l{i}", n, idx, w, b, fmt_in, weight_fmt, bias_fmt, fmt_out, relu=(relu_last or not last),
                       banks=p)
        )
        fmt_in = fmt_out
    return Model("random", tuple(layers))


def random_cnn(
    input_shape: tuple[int, int, int],
    spec: Sequence[tuple],
    seed: int = 0,
    input_fmt: FixedFormat = FixedFormat(8, 1, signed=False),
    weight_fmt: FixedFormat = FixedFormat(8, 2),
    bias_fmt: FixedFormat = FixedFormat(12, 4),
    hidden_fmt: FixedFormat = FixedFormat(8, 3, signed=False),
    output_fmt: FixedFormat = FixedFormat(12, 6),
) -> Model:
    """A random image model.  ``spec`` lists the layers:

    * ``("conv", out_channels, kernel, stride, pad, granularity, k)``; granularity ``"bank"``
      takes the banks P as an eighth entry (a weight-level conv keeping k/P of every bank)
    * ``("pool",)``: 2x2 max pooling
    * ``("gap",)``: global average pooling, two more fraction bits out than in; ``("gap", fmt)``
    * ``("dense", out_features, k)``, or ``("dense", out_features, k, P)`` with P banks

    Hidden layers use ``hidden_fmt`` with ReLU, the last one ``output_fmt`` without.
    """
    rng = np.random.default_rng(seed)
    layers = []
    shape = tuple(input_shape)
    fmt_in = input_fmt
    for i, s in enumerate(spec):
        last = i == len(spec) - 1
        fmt_out = output_fmt if last else hidden_fmt
        name = f"l{i}"
        if s[0] == "pool":
            layers.append(MaxPool2dLayer(name, shape, fmt_in))
            shape = layers[-1].out_shape
            continue
        if s[0] == "gap":  # ("gap",): two more fraction bits than its input; ("gap", fmt)
            fmt_g = s[1] if len(s) > 1 else FixedFormat(fmt_in.width + 2, fmt_in.int_bits, fmt_in.signed)
            layers.append(GlobalAvgPoolLayer(name, shape, fmt_in, fmt_g))
            shape, fmt_in = layers[-1].out_shape, fmt_g
            continue
        if s[0] == "conv":
            _, c_out, kern, stride, pad, gran, k, *bk = s
            p = bk[0] if gran == "bank" else 1
            gran = "weight" if gran == "bank" else gran
            c_in = shape[2]
            n = kern * kern * c_in if gran == "weight" else c_in
            idx, w, b = _random_rows(rng, n, c_out, k, kern * kern if gran == "kernel" else 1, weight_fmt, bias_fmt, p)
            layers.append(Conv2dLayer(name, shape, kern, stride, pad, gran, idx, w, b,
                                      fmt_in, weight_fmt, bias_fmt, fmt_out, relu=not last, banks=p))
            shape = layers[-1].out_shape
        else:
            _, rows, k, *bk = s
            p = bk[0] if bk else 1
            n = int(np.prod(shape))
            idx, w, b = _random_rows(rng, n, rows, k, 1, weight_fmt, bias_fmt, p)
            layers.append(DenseLayer(name, n, idx, w, b, fmt_in, weight_fmt, bias_fmt, fmt_out, relu=not last,
                                     banks=p))
            shape = (rows,)
        fmt_in = fmt_out
    return Model("random_cnn", tuple(layers))


def random_resnet(
    input_shape: tuple[int, int, int],
    stem: int,
    blocks: Sequence[tuple[int, int]],
    classes: int,
    keep: float = 0.25,
    seed: int = 0,
    granularity: str = "weight",
    input_fmt: FixedFormat = FixedFormat(8, 1, signed=False),
    weight_fmt: FixedFormat = FixedFormat(8, 2),
    bias_fmt: FixedFormat = FixedFormat(12, 4),
    hidden_fmt: FixedFormat = FixedFormat(8, 3, signed=False),
    branch_fmt: FixedFormat = FixedFormat(8, 4),
    shortcut_fmt: FixedFormat = FixedFormat(9, 4),
    pool_fmt: FixedFormat = FixedFormat(10, 3, signed=False),
    output_fmt: FixedFormat = FixedFormat(12, 6),
) -> Model:
    """A random ResNet in the MLPerf Tiny ResNet-8 pattern: a 3x3 stem conv of ``stem``
    channels, then per ``(channels, stride)`` of ``blocks`` a residual block ``relu(b(a(x)) +
    s(x))`` (``a``: 3x3, the block's stride, ReLU; ``b``: 3x3, no ReLU, ``branch_fmt``; ``s``:
    the identity where stride 1 keeps the channels, else a 1x1 projection with the stride,
    ``shortcut_fmt``), global average pooling (``pool_fmt``) and a dense classifier.  Every
    weighted layer keeps ``max(1, round(keep * n))`` of its n (weights, or kernels at the
    ``kernel`` granularity; 1x1 convs keep weights)."""
    rng = np.random.default_rng(seed)
    layers: list = []
    inputs: list[tuple[str, ...]] = []
    state = {"shape": tuple(input_shape), "fmt": input_fmt, "src": INPUT}

    def conv(name, src, shape, fmt_in, c_out, kern, stride, fmt_out, relu):
        gran = granularity if kern > 1 else "weight"
        n = kern * kern * shape[2] if gran == "weight" else shape[2]
        k = max(1, round(keep * n))
        idx, w, b = _random_rows(rng, n, c_out, k, kern * kern if gran == "kernel" else 1, weight_fmt, bias_fmt)
        layers.append(Conv2dLayer(name, shape, kern, stride, kern // 2, gran, idx, w, b, fmt_in, weight_fmt,
                                  bias_fmt, fmt_out, relu=relu))
        inputs.append((src,))
        return layers[-1]

    s0 = conv("stem", INPUT, tuple(input_shape), input_fmt, stem, 3, 1, hidden_fmt, True)
    src, shape, fmt = s0.name, s0.out_shape, hidden_fmt
    for i, (ch, stride) in enumerate(blocks):
        a = conv(f"b{i}_a", src, shape, fmt, ch, 3, stride, hidden_fmt, True)
        b = conv(f"b{i}_b", a.name, a.out_shape, hidden_fmt, ch, 3, 1, branch_fmt, False)
        if stride == 1 and ch == shape[2]:
            short, short_fmt = src, fmt
        else:
            short, short_fmt = conv(f"b{i}_s", src, shape, fmt, ch, 1, stride, shortcut_fmt, False).name, shortcut_fmt
        layers.append(AddLayer(f"b{i}_add", b.out_shape, branch_fmt, short_fmt, hidden_fmt, relu=True))
        inputs.append((b.name, short))
        src, shape, fmt = layers[-1].name, b.out_shape, hidden_fmt
    layers.append(GlobalAvgPoolLayer("gap", shape, fmt, pool_fmt))
    inputs.append((src,))
    n = shape[2]
    k = max(1, round(keep * n))
    idx, w, b = _random_rows(rng, n, classes, k, 1, weight_fmt, bias_fmt)
    layers.append(DenseLayer("fc", n, idx, w, b, pool_fmt, weight_fmt, bias_fmt, output_fmt, relu=False))
    inputs.append(("gap",))
    return Model("random_resnet", tuple(layers), inputs=tuple(inputs))


def random_inputs(model: Model, count: int, seed: int = 0) -> np.ndarray:
    """``count`` input vectors uniform over the input format's codes."""
    rng = np.random.default_rng(seed)
    f = model.input_fmt
    return rng.integers(f.min_int, f.max_int + 1, size=(count, model.n_inputs), dtype=np.int64)
