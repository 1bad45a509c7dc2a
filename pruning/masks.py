"""Pure k-out-of-n mask maths over groups ``[G, n]`` (see :mod:`.groups`)."""

from __future__ import annotations

import torch

__all__ = ["kofn_topk", "relaxed_khot", "gumbel_like"]


def kofn_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Hard k-hot float mask of the ``k`` largest scores in every row of ``[G, n]``."""
    idx = scores.topk(k, dim=-1).indices
    return torch.zeros_like(scores).scatter_(-1, idx, 1.0)


def _khot_forward(a: torch.Tensor, k: int, upd: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """k successive softmaxes of the scaled logits ``a``; ``a_{j+1} = a_j + log(1 - p_j) * upd``."""
    ps = []
    khot = torch.zeros_like(a)
    for j in range(k):
        p = torch.softmax(a, dim=-1)
        ps.append(p)
        khot += p
        if j + 1 < k:
            a = a + torch.log1p(-p.clamp(max=1 - 1e-6)) * upd
    return khot, ps


def _khot_backward(g: torch.Tensor, ps: list[torch.Tensor], upd: torch.Tensor) -> torch.Tensor:
    """The gradient with respect to the scaled logits of :func:`_khot_forward`."""
    ga_next = torch.zeros_like(g)  # dL / d a_{j+1}
    for j in range(len(ps) - 1, -1, -1):
        p = ps[j]
        gp = g
        if j + 1 < len(ps):
            open_ = p < 1 - 1e-6
            gp = g - torch.where(open_, ga_next * upd / (1 - p).clamp_min(1e-6), 0.0)
        ga_next = ga_next + p * (gp - (gp * p).sum(-1, keepdim=True))  # softmax Jacobian
    return ga_next


class _RelaxedKhot(torch.autograd.Function):
    """The k successive softmaxes with a hand-written backward: no autograd graph of
    ~7k nodes per call, which dominates a small layer's training step."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int, tau: float) -> torch.Tensor:  # noqa: D102
        upd = torch.full((scores.shape[-1],), 1.0 / tau, dtype=scores.dtype, device=scores.device)
        khot, ps = _khot_forward(scores / tau, k, upd)
        ctx.save_for_backward(upd, *ps)
        ctx.tau = tau
        return khot

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: D102
        upd, *ps = ctx.saved_tensors
        return _khot_backward(g, ps, upd) / ctx.tau, None, None


class _TailKhot(torch.autograd.Function):
    """The relaxed k-hot on candidates ``idx`` plus one aggregated tail (see
    :func:`relaxed_khot`), forward and backward by hand so that only a few passes touch
    all n entries."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, idx: torch.Tensor, k: int, tau: float) -> torch.Tensor:  # noqa: D102
        a = scores / tau
        a_c = a.gather(-1, idx)
        lse_all = torch.logsumexp(a, dim=-1, keepdim=True)
        lse_c = torch.logsumexp(a_c, dim=-1, keepdim=True)
        log_tail = lse_all + torch.log(-torch.expm1((lse_c - lse_all).clamp(max=-1e-30)))  # log(sum_tail e^a)
        upd = torch.full((idx.shape[-1] + 1,), 1.0 / tau, dtype=scores.dtype, device=scores.device)
        upd[-1] = 0.0  # the tail is never masked by a choice
        soft_ext, ps = _khot_forward(torch.cat([a_c, log_tail], dim=-1), k, upd)
        t = soft_ext[..., -1:]
        w = torch.exp(a - log_tail)  # a tail entry's share of the tail
        out = (w * t).scatter_(-1, idx, soft_ext[..., :-1])
        ctx.save_for_backward(w, idx, t, upd, *ps)
        ctx.tau = tau
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: D102
        w, idx, t, upd, *ps = ctx.saved_tensors
        g_c = g.gather(-1, idx)
        gw = g * w
        g_t = gw.sum(-1, keepdim=True) - gw.gather(-1, idx).sum(-1, keepdim=True)  # tail entries only
        ga_ext = _khot_backward(torch.cat([g_c, g_t], dim=-1), ps, upd)
        g_log_tail = ga_ext[..., -1:] - g_t * t
        ga = (w * (g * t + g_log_tail)).scatter_(-1, idx, ga_ext[..., :-1])
        return ga / ctx.tau, None, None, None


def relaxed_khot(
    scores: torch.Tensor, k: int, tau: float, candidates: int | None = None, indices: torch.Tensor | None = None
) -> torch.Tensor:
    """Relaxed k-hot: the sum of ``k`` successive softmaxes, each one masking (softly)
    what the previous ones chose: ``s_{j+1} = s_j + log(1 - p_j)``, ``p_j = softmax(s_j / tau)``.
    Every row sums to ``k`` and every entry lies in [0, 1] (up to near-ties).

    ``candidates = m < n`` runs the recursion exactly on each row's ``m`` largest scores
    and treats the other ``n - m`` as one aggregated tail: they share the softmax
    normaliser, but the masking factor ``(1 - p_i)^(1/tau)`` of a tail entry, within
    ``p_i / tau`` of 1 because ``p_i`` is below the m-th largest probability, is taken
    as 1.  Each tail entry then gets ``exp(a_i - logsumexp(tail)) * tail_mass``.  The cost
    falls from ``k`` passes over ``n`` entries to ``k`` passes over ``m + 1`` plus a few
    over ``n``; rows still sum to ``k``, and every entry keeps a gradient.  ``indices``:
    the candidates' positions when the caller already has them (``topk(m)`` of ``scores``)."""
    n = scores.shape[-1]
    if candidates is None or candidates >= n:
        return _RelaxedKhot.apply(scores, k, float(tau))
    if candidates < k:
        raise ValueError(f"candidates={candidates} must be >= k={k}")
    if indices is None:
        indices = scores.detach().topk(candidates, dim=-1, sorted=False).indices
    return _TailKhot.apply(scores, indices, k, float(tau))


def gumbel_like(x: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise of ``x``'s shape, ``-log(-log U)`` (``rand`` is ~4x faster
    than ``exponential_`` on CPU), on ``x``'s device.

    Drawn and transformed on the CPU from torch's default CPU generator (which
    ``torch.manual_seed`` seeds) and then moved, whatever ``x``'s device: a CUDA run sees
    exactly the noise of the CPU run with the same seed (see :mod:`.device`)."""
    u = torch.rand(x.shape, dtype=x.dtype, device="cpu")
    return u.clamp_(1e-10, 1.0 - 1e-7).log_().neg_().log_().neg_().to(x.device)
