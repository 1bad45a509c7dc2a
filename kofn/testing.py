"""Helpers for tests: random k-out-of-n models with valid formats (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .fixed import FixedFormat
from .ir import DenseLayer, Model

__all__ = ["random_model", "random_inputs"]


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
) -> Model:
    """A model ``sizes[0] -> sizes[1] -> ...`` whose layer ``i`` keeps ``ks[i]`` inputs per row.

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
        idx = np.sort(np.stack([rng.choice(n, size=k, replace=False) for _ in range(rows)]), axis=1)
        w = rng.integers(weight_fmt.min_int, weight_fmt.max_int + 1, size=(rows, k))
        b = rng.integers(bias_fmt.min_int, bias_fmt.max_int + 1, size=rows)
        layers.append(
            DenseLayer(f"l{i}", n, idx, w, b, fmt_in, weight_fmt, bias_fmt, fmt_out, relu=(relu_last or not last))
        )
        fmt_in = fmt_out
    return Model("random", tuple(layers))


def random_inputs(model: Model, count: int, seed: int = 0) -> np.ndarray:
    """``count`` input vectors uniform over the input format's codes."""
    rng = np.random.default_rng(seed)
    f = model.input_fmt
    return rng.integers(f.min_int, f.max_int + 1, size=(count, model.n_inputs), dtype=np.int64)
