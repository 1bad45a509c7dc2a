"""Dynamic Probabilistic Pruning (Gonzalez-Carabarin et al., IEEE TNNLS 2022) as a
``torch.nn.utils.parametrize`` parametrization.

Each output neuron (row) owns a logit per input.  In training the forward pass uses a
hard k-hot mask sampled by Gumbel-top-k of the perturbed logits; the backward pass
uses a relaxed k-hot (``k`` successive masked softmaxes at temperature ``tau``),
joined by straight-through: ``mask = hard + soft - soft.detach()``.  In eval mode
the mask is the deterministic top-k of the logits, which is what export uses.

Logit initialisation: ``logits = init_scale * |w| / mean(|w|)`` of the weight at
registration, so the sampling starts biased toward large weights (``init_scale=0``
gives uniform logits).
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import gumbel_like, kofn_topk, relaxed_khot

__all__ = ["DPPMask"]


class DPPMask(nn.Module):
    """``forward(w) = w * mask`` with exactly ``k`` ones per row of the mask."""

    def __init__(self, weight: torch.Tensor, k: int, init_scale: float = 1.0, tau: float = 5.0) -> None:
        super().__init__()
        rows, n = weight.shape
        if not 1 <= k <= n:
            raise ValueError(f"k={k} must be in 1..n={n}")
        a = weight.detach().abs()
        self.logits = nn.Parameter(init_scale * a / a.mean().clamp_min(1e-12))
        self.k = k
        self.tau = tau

    def mask(self) -> torch.Tensor:
        if not self.training:
            return kofn_topk(self.logits.detach(), self.k)
        s = self.logits + gumbel_like(self.logits)
        hard = kofn_topk(s.detach(), self.k)
        soft = relaxed_khot(s, self.k, self.tau)
        return hard + (soft - soft.detach())  # exactly `hard` forward; the bracket is exactly 0

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask().to(w.dtype)

    def extra_repr(self) -> str:
        return f"k={self.k}, n={self.logits.shape[1]}, tau={self.tau:.3g}"
