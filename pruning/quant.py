"""Fixed-point quantization-aware training pieces (straight-through rounding).

The forward pass applies :func:`kofn.core.fixed.quantize`'s rule, calling the same
:func:`kofn.core.fixed.round_half_up` and clamping to the format's codes, so a trained
model in eval mode computes the same integers as the reference; ``tests/pruning``
checks that.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.fixed import FixedFormat, round_half_up

__all__ = ["round_half_up_ste", "fake_quant", "FakeQuant"]


class _RoundHalfUpSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return round_half_up(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return g


def round_half_up_ste(x: torch.Tensor) -> torch.Tensor:
    """:func:`kofn.core.fixed.round_half_up` forward, identity gradient backward."""
    return _RoundHalfUpSTE.apply(x)


def fake_quant(x: torch.Tensor, fmt: FixedFormat) -> torch.Tensor:
    """Quantize to ``fmt`` and back to real values; the gradient is straight-through
    inside the format's range and zero where saturation clips."""
    s = 2.0 ** fmt.frac
    q = torch.clamp(round_half_up_ste(x * s), fmt.min_int, fmt.max_int)
    return q / s


class FakeQuant(nn.Module):
    """A parametrization (or plain module) applying :func:`fake_quant` with ``fmt``."""

    def __init__(self, fmt: FixedFormat, enabled: bool = True) -> None:
        super().__init__()
        self.fmt = fmt
        self.enabled = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x, self.fmt) if self.enabled else x

    def extra_repr(self) -> str:
        return self.fmt.describe()
