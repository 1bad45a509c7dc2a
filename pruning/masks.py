"""Pure k-out-of-n mask maths over groups ``[G, n]`` (see :mod:`.groups`)."""

from __future__ import annotations

import torch

__all__ = ["kofn_topk", "relaxed_khot", "gumbel_like"]


def kofn_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Hard k-hot float mask of the ``k`` largest scores in every row of ``[G, n]``."""
    idx = scores.topk(k, dim=-1).indices
    return torch.zeros_like(scores).scatter_(-1, idx, 1.0)


class _RelaxedKhot(torch.autograd.Function):
    """The k successive softmaxes with a hand-written backward: no autograd graph of
    ~7k nodes per call, which dominates a small layer's training step."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int, tau: float, frozen_last: bool) -> torch.Tensor:  # noqa: D102
        a = scores / tau
        ps = []
        khot = torch.zeros_like(scores)
        upd = torch.ones(scores.shape[-1], dtype=scores.dtype, device=scores.device) / tau
        if frozen_last:  # the last column is the aggregated tail: never masked by a choice
            upd[-1] = 0.0
        for j in range(k):
            p = torch.softmax(a, dim=-1)
            ps.append(p)
            khot += p
            if j + 1 < k:
                a = a + torch.log1p(-p.clamp(max=1 - 1e-6)) * upd
        ctx.save_for_backward(upd, *ps)
        return khot

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: D102
        upd, *ps = ctx.saved_tensors
        ga_next = torch.zeros_like(g)  # dL / d a_{j+1}
        for j in range(len(ps) - 1, -1, -1):
            p = ps[j]
            gp = g
            if j + 1 < len(ps):  # a_{j+1} = a_j + log(1 - p_j) * upd  (upd = 1/tau)
                open_ = p < 1 - 1e-6
                gp = g - torch.where(open_, ga_next * upd / (1 - p).clamp_min(1e-6), 0.0)
            ga_next = ga_next + p * (gp - (gp * p).sum(-1, keepdim=True))  # softmax Jacobian
        return ga_next / ctx_tau(upd), None, None, None


def ctx_tau(upd: torch.Tensor) -> float:
    return float(1.0 / upd[0])


def relaxed_khot(scores: torch.Tensor, k: int, tau: float, candidates: int | None = None) -> torch.Tensor:
    """Relaxed k-hot: the sum of ``k`` successive softmaxes, each one masking (softly)
    what the previous ones chose: ``s_{j+1} = s_j + log(1 - p_j)``, ``p_j = softmax(s_j / tau)``.
    Every row sums to ``k`` and every entry lies in [0, 1] (up to near-ties).

    ``candidates = m < n`` runs the recursion exactly on each row's ``m`` largest scores
    and treats the other ``n - m`` as one aggregated tail: they share the softmax
    normaliser, but the masking factor ``(1 - p_i)^(1/tau)`` of a tail entry, within
    ``p_i / tau`` of 1 because ``p_i`` is below the m-th largest probability, is taken
    as 1.  Each tail entry then gets ``exp(a_i - logsumexp(tail)) * tail_mass``.  The cost
    falls from ``k`` passes over ``n`` entries to ``k`` passes over ``m + 1`` plus a few
    over ``n``; rows still sum to ``k``, and every entry keeps a gradient."""
    n = scores.shape[-1]
    if candidates is None or candidates >= n:
        return _RelaxedKhot.apply(scores, k, float(tau), False)
    if candidates < k:
        raise ValueError(f"candidates={candidates} must be >= k={k}")
    idx = scores.detach().topk(candidates, dim=-1).indices
    a = scores / tau
    tail = a.scatter(-1, idx, float("-inf"))
    log_tail = torch.logsumexp(tail, dim=-1, keepdim=True)
    ext = torch.cat([a.gather(-1, idx), log_tail], dim=-1) * tau
    soft_ext = _RelaxedKhot.apply(ext, k, float(tau), True)
    soft = torch.exp(tail - log_tail) * soft_ext[..., -1:]
    return soft.scatter(-1, idx, soft_ext[..., :-1])


def relaxed_khot_reference(scores: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """:func:`relaxed_khot` written with plain autograd ops (the tests' reference)."""
    khot = torch.zeros_like(scores)
    p = torch.zeros_like(scores)
    s = scores
    for _ in range(k):
        s = s + torch.log1p(-p.clamp(max=1 - 1e-6))
        p = torch.softmax(s / tau, dim=-1)
        khot = khot + p
    return khot


def gumbel_like(x: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise of ``x``'s shape: ``-log E`` with ``E ~ Exponential(1)``."""
    return torch.empty_like(x).exponential_().log_().neg_()
