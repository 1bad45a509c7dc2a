"""The base of every k-out-of-n pruning method: :class:`KofnPruner`, a
``torch.nn.utils.parametrize`` parametrization ``forward(w) = w * expand(mask)`` with the
mask at structure level (``[G, n]``, see :mod:`.groups`).  The methods are in
:mod:`.methods` (learned masks: DPP, PSP, DTP) and :mod:`.baselines` (magnitude, gradual,
SR-STE, random, fixed)."""

from __future__ import annotations

import torch
from torch import nn

from .groups import Grouping
from .hparams import TrainConfig

__all__ = ["KofnPruner"]


class KofnPruner(nn.Module):
    """Base parametrization: exactly ``k`` of ``n`` structures per group at eval/export."""

    method = "base"
    #: True when :meth:`pre_quant` rescales the weight (PSP); the model then registers it
    #: before the fake quantizer so the exported codes are the quantized product.
    has_pre_quant = False

    def __init__(self, weight: torch.Tensor, k: int, grouping: Grouping) -> None:
        super().__init__()
        if tuple(weight.shape) != grouping.shape:
            raise ValueError(f"weight {tuple(weight.shape)} does not match grouping {grouping.shape}")
        if not 1 <= k <= grouping.n:
            raise ValueError(f"k={k} must be in 1..n={grouping.n} ({grouping.describe()})")
        self.grouping = grouping
        self.k = k
        self.progress = 0.0
        self.total_steps = 1
        self.last_mask: torch.Tensor | None = None  # [G, n] mask of the latest forward (bias masking)

    # -- hooks ----------------------------------------------------------------------------
    def set_progress(self, fraction: float) -> None:
        """Fraction of training done, in [0, 1]; schedules read it."""
        self.progress = float(fraction)

    def set_total_steps(self, total: int) -> None:
        """Training steps in all (DTP's annealing is defined over them)."""
        self.total_steps = max(1, int(total))

    def regularizer(self) -> torch.Tensor | None:
        return None

    def mask_parameters(self) -> list[nn.Parameter]:
        return []

    def optimizer_options(self, cfg: TrainConfig) -> dict:
        """Adam options of :meth:`mask_parameters`: ``mask_lr``, no weight decay."""
        return {"lr": cfg.mask_lr, "weight_decay": 0.0}

    def pre_quant(self, w: torch.Tensor) -> torch.Tensor:
        return w

    # -- masks ----------------------------------------------------------------------------
    def train_mask(self, w: torch.Tensor) -> torch.Tensor:
        return self.hard_mask(w)

    def hard_mask(self, w: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def selection(self, w: torch.Tensor) -> torch.Tensor:
        """Inclusion probability of every structure, ``[G, n]``, rows summing to ``k``.
        A deterministic mask is its own (fully confident) selection."""
        return self.hard_mask(w).float()

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        m = self.train_mask(w) if self.training else self.hard_mask(w).detach()
        self.last_mask = m
        return w * self.grouping.expand(m.to(w.dtype))

    def _apply(self, fn, *args, **kwargs):
        """``.to(device)`` and friends move the latest mask too (a plain attribute, not a buffer)."""
        out = super()._apply(fn, *args, **kwargs)
        if self.last_mask is not None:
            self.last_mask = fn(self.last_mask.detach())
        return out

    def extra_repr(self) -> str:
        return f"k={self.k}, {self.grouping.describe()}"


# ----------------------------------------------------------------------------------------
