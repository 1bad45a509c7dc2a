"""Pure k-out-of-n mask maths over groups ``[G, n]`` (rows of a Linear weight here)."""

from __future__ import annotations

import torch

__all__ = ["kofn_topk", "relaxed_khot", "gumbel_like", "check_kofn"]


def kofn_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Hard k-hot float mask of the ``k`` largest scores in every row of ``[G, n]``."""
    idx = scores.topk(k, dim=-1).indices
    return torch.zeros_like(scores).scatter_(-1, idx, 1.0)


def relaxed_khot(scores: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """Relaxed k-hot: the sum of ``k`` successive softmaxes, each one masking (softly)
    what the previous ones chose: ``s_{j+1} = s_j + log(1 - p_j)``, ``p_j = softmax(s_j / tau)``.
    Every row sums to ``k`` and every entry lies in [0, 1]."""
    khot = torch.zeros_like(scores)
    p = torch.zeros_like(scores)
    s = scores
    for _ in range(k):
        s = s + torch.log1p(-p.clamp(max=1 - 1e-6))
        p = torch.softmax(s / tau, dim=-1)
        khot = khot + p
    return khot


def gumbel_like(x: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise of ``x``'s shape."""
    u = torch.rand_like(x).clamp_(1e-10, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def check_kofn(mask: torch.Tensor, k: int, where: str = "mask") -> None:
    """Raise ``ValueError`` unless every row of ``mask`` has exactly ``k`` ones and zeros elsewhere."""
    m = mask.detach()
    if not torch.all((m == 0) | (m == 1)):
        raise ValueError(f"{where}: mask has entries other than 0 and 1")
    counts = m.sum(dim=-1)
    bad = torch.nonzero(counts != k).flatten()
    if bad.numel():
        r = int(bad[0])
        raise ValueError(f"{where}: row {r} keeps {int(counts[r])} inputs, expected exactly k={k}")
