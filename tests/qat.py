"""The check every QAT export test makes: a trained kofn torch model in eval mode, run in
float64 on the quantized inputs, computes exactly the integer reference's output codes."""

from __future__ import annotations

import numpy as np
import torch

from kofn.core.fixed import quantize
from kofn.core.ir import Model
from kofn.core.reference import run


def assert_eval_equals_reference(model: torch.nn.Module, m: Model, x: np.ndarray) -> None:
    """``model`` (switched to float64 eval mode) on ``x`` equals ``run(m, ...)`` code for code."""
    xq = quantize(x, m.input_fmt)
    ref = run(m, xq)
    model.double().eval()
    with torch.no_grad():
        y = model(torch.from_numpy(xq * m.input_fmt.scale)).numpy() * 2.0**m.output_fmt.frac
    assert np.all(y == np.round(y))
    np.testing.assert_array_equal(y.astype(np.int64), ref)
