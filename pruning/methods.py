"""k-out-of-n pruning methods as ``torch.nn.utils.parametrize`` parametrizations.

Every method is a :class:`KofnPruner`: ``forward(w) = w * expand(mask)`` where the mask
lives at structure level (``[G, n]``, see :mod:`.groups`).  They differ in how the mask is
made while training; all of them end in an exact k-hot mask in eval mode and at export
(:meth:`KofnPruner.hard_mask`).

==========  ==================================================================================
method      training mask
==========  ==================================================================================
dpp         Gumbel top-k sample of learned logits forward, k successive softmaxes backward
psp         learned scales alpha per structure (weight decay on alpha), top-k |alpha| projection
dtp         entropic optimal transport (Sinkhorn) of learned scores onto exactly k ones,
            annealed by a proximal (Bregman) step per training step
magnitude   dense until ``prune_at``, then the top-k structure norms, frozen (fine-tuning)
gradual     top-k_t by magnitude with k_t falling cubically from n to k (Zhu & Gupta)
srste       top-k by magnitude every step, straight-through to the dense weights, plus
            lambda_W (1 - mask) w in the gradient (Zhou et al., SR-STE)
random      a fixed random k-hot mask
fixed       a given mask (e.g. from ``torch.ao.pruning``), checked to be exactly k-of-n
==========  ==================================================================================

Training-time hooks: :meth:`set_progress` (fraction of training done; drives schedules),
:meth:`regularizer` (added to the loss), :meth:`mask_parameters` with
:meth:`optimizer_options` (their own optimiser group), :meth:`selection` (inclusion probabilities for the mask metrics).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .baselines import FixedPruner, GradualPruner, MagnitudePruner, RandomPruner, SRSTEPruner
from .groups import Grouping
from .hparams import DPPConfig, DTPConfig, PSPConfig, TrainConfig
from .masks import gumbel_like, kofn_topk, relaxed_khot
from .pruner import KofnPruner


__all__ = [
    "KofnPruner",
    "DPPPruner",
    "PSPPruner",
    "DTPPruner",
    "MagnitudePruner",
    "GradualPruner",
    "SRSTEPruner",
    "RandomPruner",
    "FixedPruner",
    "make_pruner",
    "sinkhorn_kofn",
]



class DPPPruner(KofnPruner):
    """Dynamic Probabilistic Pruning.

    One logit per structure.  Training forward: the hard k-hot of Gumbel-perturbed
    logits (a sample of k-out-of-n without replacement); backward: the relaxed k-hot
    (:func:`.masks.relaxed_khot`, k successive masked softmaxes at temperature tau),
    joined by straight-through.  tau falls linearly from ``tau_start`` to ``tau_end``.
    Logits start at ``init_scale * |structure| / mean |structure|``, so sampling starts
    biased toward large weights (``init_scale = 0``: uniform).  Optional regulariser:
    ``entropy_weight`` times the mean normalised entropy of ``softmax(logits)``.
    Wide groups run the relaxation on the largest perturbed logits plus one aggregated
    tail (``candidates``, see :func:`.masks.relaxed_khot`).
    """

    method = "dpp"

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, cfg: DPPConfig = DPPConfig()) -> None:
        super().__init__(weight, k, grouping)
        a = grouping.norms(weight.detach())
        self.logits = nn.Parameter(cfg.init_scale * a / a.mean().clamp_min(1e-12))
        self.cfg = cfg
        self.tau = cfg.tau_start

    def set_progress(self, fraction: float) -> None:
        super().set_progress(fraction)
        self.tau = self.cfg.tau_start + (self.cfg.tau_end - self.cfg.tau_start) * self.progress

    def mask_parameters(self) -> list[nn.Parameter]:
        return [self.logits]

    @property
    def candidates(self) -> int | None:
        """Entries per group the relaxed k-hot runs on exactly (``None``: all n)."""
        n, c = self.grouping.n, self.cfg.candidates
        if c == -1:
            return None
        if c == 0:
            m = 2 * self.k + 32
            return m if 2 * m <= n else None
        return max(c, self.k) if c < n else None

    def train_mask(self, w: torch.Tensor) -> torch.Tensor:
        s = self.logits + gumbel_like(self.logits)
        m = self.candidates
        if m is None:
            hard = kofn_topk(s.detach(), self.k)
            soft = relaxed_khot(s, self.k, self.tau)
        else:  # one (unsorted, cheaper) topk over n serves both; the hard sample is the top k of it
            vals, idx = s.detach().topk(m, dim=-1, sorted=False)
            hard = torch.zeros_like(s).scatter_(-1, idx.gather(-1, vals.topk(self.k, dim=-1).indices), 1.0)
            soft = relaxed_khot(s, self.k, self.tau, m, indices=idx)
        return hard + (soft - soft.detach())  # exactly `hard` forward; the bracket is exactly 0

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:
        return kofn_topk(self.logits.detach(), self.k)

    def regularizer(self) -> torch.Tensor | None:
        if not self.cfg.entropy_weight or self.grouping.n < 2:
            return None
        logp = torch.log_softmax(self.logits, dim=-1)
        h = -(logp.exp() * logp).sum(-1) / math.log(self.grouping.n)
        return self.cfg.entropy_weight * h.mean()

    @torch.no_grad()
    def selection(self, w: torch.Tensor, samples: int = 64) -> torch.Tensor:
        """Monte-Carlo inclusion probabilities of the Gumbel top-k sampler."""
        acc = torch.zeros_like(self.logits)
        for _ in range(samples):
            acc += kofn_topk(self.logits + gumbel_like(self.logits), self.k)
        return acc / samples

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={self.tau:.3g}"


# ----------------------------------------------------------------------------------------
class PSPPruner(KofnPruner):
    """Parameterized Structured Pruning.

    A scale ``alpha`` per structure multiplies its weights before quantization
    (:meth:`pre_quant`), so the gradient reaching ``alpha`` is the sum over its
    structure; weight decay acts on ``alpha`` (its own optimiser group, ``decay``).
    The k-of-n constraint: the top-k ``|alpha|`` per group, applied from ``ste_start``
    of training on with straight-through (the projection's gradient is the identity,
    so dropped structures can return), and always at export, where alpha is folded
    into the exported weights.
    """

    method = "psp"
    has_pre_quant = True

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, cfg: PSPConfig = PSPConfig()) -> None:
        super().__init__(weight, k, grouping)
        self.alpha = nn.Parameter(torch.ones(grouping.groups, grouping.n, dtype=weight.dtype, device=weight.device))
        self.cfg = cfg

    def mask_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def optimizer_options(self, cfg: TrainConfig) -> dict:
        """alpha learns at ``psp.lr`` (0: the weights' ``lr``) under weight decay ``psp.decay``."""
        return {"lr": cfg.psp.lr or cfg.lr, "weight_decay": cfg.psp.decay}

    def pre_quant(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.grouping.expand(self.alpha)

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:
        return kofn_topk(self.alpha.detach().abs(), self.k)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(w)
        if self.progress < self.cfg.ste_start:
            self.last_mask = torch.ones_like(self.alpha)
            return w
        m = self.hard_mask(w)
        self.last_mask = m
        return w + (w * self.grouping.expand(m.to(w.dtype)) - w).detach()


# ----------------------------------------------------------------------------------------
@torch.no_grad()
def sinkhorn_kofn(
    z: torch.Tensor, k: int, sinkhorn_iters: int = 10, tol: float = 1e-9, max_newton: int = 60
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic optimal transport of a group's ``n`` unit masses onto two bins holding
    ``n - k`` (dropped) and ``k`` (kept).  Item i's kernel is ``[1, exp(z_i)]`` (``z``:
    the log-odds of "kept", already divided by the regularisation), so after the row
    projection the plan's kept column is ``sigmoid(z - theta)`` with one column dual
    ``theta`` per group.

    Sinkhorn's alternating projections update ``theta`` by the log-ratio of the column
    sums to their targets.  They converge linearly, and slowly once the plan is nearly
    hard, so after ``sinkhorn_iters`` of them the same fixed point ``sum_i sigmoid(z_i -
    theta) = k`` is finished with bracketed Newton steps to ``tol``.  Returns ``(theta,
    plan_kept)``; a last column projection makes every row of ``plan_kept`` sum to ``k``
    exactly (the exact budget)."""
    g, n = z.shape
    z = z.double()
    theta = torch.zeros(g, 1, dtype=z.dtype, device=z.device)
    if n == k:
        return theta, torch.ones_like(z)
    log_k, log_nk = math.log(k), math.log(n - k)
    for _ in range(sinkhorn_iters):
        p = torch.sigmoid(z - theta)  # row projection: every item's mass sums to 1
        kept, dropped = p.sum(-1, keepdim=True), (1 - p).sum(-1, keepdim=True)
        theta = theta + (torch.log(kept) - log_k) - (torch.log(dropped) - log_nk)  # column projection
    lo = z.amin(-1, keepdim=True) - 40.0  # f(lo) ~ n > k
    hi = z.amax(-1, keepdim=True) + 40.0  # f(hi) ~ 0 < k
    for _ in range(max_newton):
        p = torch.sigmoid(z - theta)
        f = p.sum(-1, keepdim=True) - k  # decreasing in theta
        if float(f.abs().max()) < tol:
            break
        lo = torch.where(f > 0, theta, lo)
        hi = torch.where(f < 0, theta, hi)
        step = theta + f / (p * (1 - p)).sum(-1, keepdim=True).clamp_min(1e-300)
        theta = torch.where((step > lo) & (step < hi), step, (lo + hi) / 2)
    p = torch.sigmoid(z - theta)
    p = p * (k / p.sum(-1, keepdim=True))  # the final column projection: exactly k per group
    return theta, p


class DTPPruner(KofnPruner):
    """Differentiable Transportation Pruning.

    One learned importance score per structure (start: ``score_init * |structure| /
    max |structure|`` of its group).  The soft mask is the kept column of the entropic
    optimal-transport plan that moves the group's n structures onto a {0, 1} target with
    exactly k ones (:func:`sinkhorn_kofn`); its rows sum to k exactly.  The cost of
    keeping a structure is minus its score.

    Annealing: every training step is a proximal (Bregman/KL) step from the previous
    plan, ``P_t = argmin <C_t, P> + eps_step KL(P || P_{t-1})``, so the kernel
    accumulates ``-sum C / eps_step`` and the effective regularisation falls as
    ``eps_step / t``.  ``eps_step = eps * total_steps`` makes that ``eps`` at the last
    step, whatever the data size: the masks harden on their own.  Gradients to the
    scores go through the converged plan by implicit differentiation of the dual.
    Eval/export: the top-k of the plan.
    """

    method = "dtp"

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, cfg: DTPConfig = DTPConfig()) -> None:
        super().__init__(weight, k, grouping)
        a = grouping.norms(weight.detach())
        self.scores = nn.Parameter(cfg.score_init * a / a.amax(-1, keepdim=True).clamp_min(1e-12))
        self.cfg = cfg
        # log-odds of the previous plan (kept vs dropped); 0 = the prior (uniform on each side)
        self.register_buffer("prior", torch.zeros(grouping.groups, grouping.n, dtype=torch.float64,
                                                  device=weight.device))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long, device=weight.device))
        self._steps = 0  # the buffer's value, read without a device sync

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._steps = int(self.steps)

    def mask_parameters(self) -> list[nn.Parameter]:
        return [self.scores]

    @property
    def eps_step(self) -> float:
        return self.cfg.eps * self.total_steps

    def _plan(self, update: bool) -> torch.Tensor:
        s = self.scores
        z_new = s.double() / self.eps_step  # this step's -C / eps, kept bin minus dropped bin
        z = self.prior + z_new.detach()
        theta, p = sinkhorn_kofn(z, self.k)
        if update:
            with torch.no_grad():
                # keep the plan's log-odds (minus its dual, which is per group and re-solved)
                self.prior.copy_(z - theta)
                self.steps += 1
                self._steps += 1
        if not s.requires_grad:
            return p.to(s.dtype)
        # implicit gradient: p = sigmoid(z - theta(z)), sum p = k  =>  dtheta = sum(sig' dz) / sum(sig')
        pd = p.detach()
        sig = (pd * (1 - pd)).clamp_min(1e-12)
        dz = z_new - z_new.detach()  # zero forward, carries d z / d scores backward
        dtheta = (sig * dz).sum(-1, keepdim=True) / sig.sum(-1, keepdim=True)
        return (pd + sig * (dz - dtheta)).to(s.dtype)

    def train_mask(self, w: torch.Tensor) -> torch.Tensor:
        return self._plan(update=True)

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:
        if self._steps == 0:
            return kofn_topk(self.scores.detach(), self.k)
        return kofn_topk(self.prior.float() + 1e-6 * self.scores.detach().float(), self.k)

    @torch.no_grad()
    def selection(self, w: torch.Tensor) -> torch.Tensor:
        return self._plan(update=False).float()


# ----------------------------------------------------------------------------------------


def make_pruner(method: str, weight: torch.Tensor, k: int, grouping: Grouping, train_cfg=None, seed: int = 0) -> KofnPruner:
    """The pruner of ``method`` (a :data:`kofn.app.config.METHODS` name other than ``dense``)
    with the method's settings from a :class:`kofn.app.config.TrainConfig`."""
    t = train_cfg or TrainConfig()
    if method == "random":
        return RandomPruner(weight, k, grouping, seed)
    table = {
        "dpp": (DPPPruner, t.dpp),
        "psp": (PSPPruner, t.psp),
        "dtp": (DTPPruner, t.dtp),
        "magnitude": (MagnitudePruner, t.magnitude),
        "gradual": (GradualPruner, t.gradual),
        "srste": (SRSTEPruner, t.srste),
    }
    if method in table:
        cls, cfg = table[method]
        return cls(weight, k, grouping, cfg)
    raise ValueError(f"unknown pruning method {method!r}")
