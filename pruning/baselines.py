"""Baseline k-out-of-n methods: one-shot and gradual magnitude pruning, SR-STE, a random
and a given (fixed) mask.  Every one ends in an exact k-hot mask (:class:`.pruner.KofnPruner`)."""

from __future__ import annotations

import torch

from .groups import Grouping, check_kofn
from .hparams import GradualConfig, MagnitudeConfig, SRSTEConfig
from .masks import kofn_topk
from .pruner import KofnPruner

__all__ = ["MagnitudePruner", "GradualPruner", "SRSTEPruner", "FixedPruner", "RandomPruner"]


class MagnitudePruner(KofnPruner):
    """One-shot magnitude pruning: dense until ``prune_at`` of training, then the top-k
    structure norms of the weights at that moment, frozen for the rest (fine-tuning)."""

    method = "magnitude"

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, cfg: MagnitudeConfig = MagnitudeConfig()) -> None:
        super().__init__(weight, k, grouping)
        self.cfg = cfg
        self.register_buffer("mask", torch.ones(grouping.groups, grouping.n, device=weight.device))
        self.register_buffer("pruned", torch.zeros((), dtype=torch.bool, device=weight.device))
        self._pruned = False  # the buffer's value, read every step without a device sync

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._pruned = bool(self.pruned)

    def train_mask(self, w: torch.Tensor) -> torch.Tensor:
        if not self._pruned and self.progress >= self.cfg.prune_at:
            self.mask.copy_(kofn_topk(self.grouping.norms(w.detach()), self.k))
            self.pruned.fill_(True)
            self._pruned = True
        return self.mask

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:
        return self.mask if self._pruned else kofn_topk(self.grouping.norms(w.detach()), self.k)


class GradualPruner(KofnPruner):
    """Gradual magnitude pruning (Zhu & Gupta 2017) down to exactly k-of-n: between
    ``start`` and ``end`` of training the kept count per group falls as
    ``k_t = k + round((n - k)(1 - f)^3)``; pruning is monotone (a pruned structure
    gets no gradient and never returns)."""

    method = "gradual"

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, cfg: GradualConfig = GradualConfig()) -> None:
        super().__init__(weight, k, grouping)
        self.cfg = cfg
        self.register_buffer("mask", torch.ones(grouping.groups, grouping.n, device=weight.device))
        self.register_buffer("kept", torch.tensor(grouping.n, device=weight.device))
        self._kept = grouping.n  # the buffer's value, read every step without a device sync

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._kept = int(self.kept)

    def target(self) -> int:
        span = max(self.cfg.end - self.cfg.start, 1e-12)
        f = min(max((self.progress - self.cfg.start) / span, 0.0), 1.0)
        return self.k + int(round((self.grouping.n - self.k) * (1.0 - f) ** 3))

    def _keep(self, w: torch.Tensor, k: int) -> torch.Tensor:
        """The top-k structure norms among those still kept (pruned ones rank last)."""
        return kofn_topk(self.grouping.norms(w.detach()) * self.mask + self.mask, k)

    def train_mask(self, w: torch.Tensor) -> torch.Tensor:
        kt = self.target()
        if kt < self._kept:
            self.mask.copy_(self._keep(w, kt))
            self.kept.fill_(kt)
            self._kept = kt
        return self.mask

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:
        return self.mask if self._kept == self.k else self._keep(w, self.k)


class _SRSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, m: torch.Tensor, decay: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(w, m)
        ctx.decay = decay
        return w * m

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: D102
        w, m = ctx.saved_tensors
        return g + ctx.decay * (1 - m) * w, None, None


class SRSTEPruner(KofnPruner):
    """SR-STE: the top-k by magnitude is recomputed every step; the masked weight goes
    forward, the gradient reaches the dense weight unmasked (straight-through) plus
    ``decay * (1 - mask) * w``, which pulls the pruned weights toward zero."""

    method = "srste"

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, cfg: SRSTEConfig = SRSTEConfig()) -> None:
        super().__init__(weight, k, grouping)
        self.cfg = cfg

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:
        return kofn_topk(self.grouping.norms(w.detach()), self.k)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(w)
        m = self.hard_mask(w)
        self.last_mask = m
        return _SRSTE.apply(w, self.grouping.expand(m.to(w.dtype)), self.cfg.decay)


class FixedPruner(KofnPruner):
    """A given structure-level mask ``[G, n]``, checked to be exactly k-of-n."""

    method = "fixed"

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, mask: torch.Tensor, where: str = "mask") -> None:
        super().__init__(weight, k, grouping)
        mask = torch.as_tensor(mask, dtype=torch.float32, device=weight.device)
        if tuple(mask.shape) == grouping.shape:  # a weight-shaped mask: take one entry per structure
            st = grouping.structures(mask)
            if not torch.all(st == st[..., :1]):
                raise ValueError(f"{where}: mask is not constant over the {grouping.granularity} structures")
            mask = st[..., 0]
        check_kofn(mask, k, where)
        self.register_buffer("mask", mask.clone())

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:
        return self.mask


class RandomPruner(FixedPruner):
    """A random k-hot mask drawn once (seeded), then fixed."""

    method = "random"

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)  # a CPU stream: the same mask on every device
        scores = torch.rand(grouping.groups, grouping.n, generator=gen, device="cpu")
        super().__init__(weight, k, grouping, kofn_topk(scores, k))
