"""The integer reference (golden model): integer-only inference of a :class:`kofn.ir.Model`.

All arithmetic comes from :mod:`kofn.fixed`; this module only chains layers.
"""

from __future__ import annotations

import numpy as np

from .fixed import dense_layer
from .ir import Model

__all__ = ["run", "run_layers"]


def run_layers(model: Model, x: np.ndarray) -> list[np.ndarray]:
    """Integer codes after every layer for input codes ``x[batch, n_in]`` (int64)."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise ValueError(f"inputs must be [batch, {model.n_inputs}], got {x.shape}")
    fmt = model.input_fmt
    if x.size and (x.min() < fmt.min_int or x.max() > fmt.max_int):
        raise ValueError(f"an input code is outside {fmt.describe()}")
    outs = []
    for L in model.layers:
        x = dense_layer(
            x, L.indices, L.weights, L.bias, L.input_fmt, L.weight_fmt, L.bias_fmt, L.output_fmt, L.relu
        )
        outs.append(x)
    return outs


def run(model: Model, x: np.ndarray) -> np.ndarray:
    """Output codes ``[batch, n_out]`` (int64) for input codes ``x[batch, n_in]``."""
    return run_layers(model, x)[-1]
