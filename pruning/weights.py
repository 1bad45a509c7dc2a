"""The weight side of every kofn layer: its parametrization chain (pruner, fake quantizer,
PSP's scales, a folded BatchNorm) and starting from given float weights."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .groups import Grouping
from .hparams import TrainConfig
from .methods import FixedPruner, KofnPruner, make_pruner
from .quant import FakeQuant

__all__ = ["attach_weight_chain", "load_init", "BatchNormFold", "Fold"]


def attach_weight_chain(mod: nn.Module, spec, grouping: Grouping, method: str, mask, fixed: bool,
                        train_cfg: TrainConfig | None, seed: int, before_quant=(), where: str = "layer") -> None:
    """Register ``mod.weight``'s parametrizations, the one chain every kofn layer uses:
    ``[pre_quant] -> *before_quant -> FakeQuant(spec.weight) -> pruner``.

    The pruner is ``method``'s (``fixed``: a :class:`FixedPruner` of ``mask``), and there is
    none for ``dense`` or when nothing is pruned (k equals the group size n).
    ``before_quant`` holds parametrizations applied before quantization (BatchNorm folding)."""
    pruner: KofnPruner | None = None
    k = spec.group_k(grouping.fan_in)  # k, or k/P per bank
    if method != "dense" and (fixed or k != grouping.n):
        if fixed:
            if mask is None:
                raise ValueError(f"{where}: no mask given")
            pruner = FixedPruner(mod.weight, k, grouping, mask, where=where)
        else:
            pruner = make_pruner(method, mod.weight, k, grouping, train_cfg, seed=seed)
    if pruner is not None and pruner.has_pre_quant:
        parametrize.register_parametrization(mod, "weight", _PreQuant(pruner))
    for m in before_quant:
        parametrize.register_parametrization(mod, "weight", m)
    parametrize.register_parametrization(mod, "weight", FakeQuant(spec.weight))
    if pruner is not None:
        parametrize.register_parametrization(mod, "weight", pruner)


@torch.no_grad()
def load_init(mod: nn.Module, wb: tuple[np.ndarray, np.ndarray], where: str) -> None:
    """Start ``mod`` (a Linear or Conv2d, before any parametrization) from given weights,
    e.g. a model imported from ONNX, so pruners initialise from them."""
    w, b = (torch.as_tensor(np.asarray(a), dtype=mod.weight.dtype, device=mod.weight.device) for a in wb)
    if tuple(w.shape) != tuple(mod.weight.shape) or tuple(b.shape) != tuple(mod.bias.shape):
        raise ValueError(f"{where}: initial weights {tuple(w.shape)} / bias {tuple(b.shape)} do not fit "
                         f"{tuple(mod.weight.shape)} / {tuple(mod.bias.shape)}")
    mod.weight.copy_(w)
    mod.bias.copy_(b)


class _PreQuant(nn.Module):
    """Parametrization calling ``pruner.pre_quant`` (PSP's scales) before the quantizer;
    it refers to the pruner without owning it, so the scales are registered once."""

    def __init__(self, pruner: KofnPruner) -> None:
        super().__init__()
        object.__setattr__(self, "_pruner", pruner)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self._pruner.pre_quant(w)


class BatchNormFold(nn.Module):
    """BatchNorm2d parameters and running statistics, applied by folding into the conv.

    The weight chain is ``pruner(FakeQuant(s * w))`` with ``s = gamma / sqrt(var + eps)``
    and the bias ``FakeQuant(beta + (b - mean) * s)``, in training as in export.  The fold
    uses the running statistics, which every training step updates (momentum 0.1) from the
    batch statistics of the unnormalised convolution, so the trained model in eval mode
    and the exported integers agree exactly."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1, device=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, device=device))
        self.bias = nn.Parameter(torch.zeros(channels, device=device))
        self.register_buffer("running_mean", torch.zeros(channels, device=device))
        self.register_buffer("running_var", torch.ones(channels, device=device))
        self.eps, self.momentum = eps, momentum

    def scale(self) -> torch.Tensor:
        return self.weight / torch.sqrt(self.running_var + self.eps)

    def shift(self, b: torch.Tensor) -> torch.Tensor:
        return self.bias + (b - self.running_mean) * self.scale()

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> None:
        """Fold the batch statistics of ``z`` (the unnormalised conv output, NCHW) into the running ones."""
        mean = z.mean(dim=(0, 2, 3))
        var = z.var(dim=(0, 2, 3), unbiased=True)
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(var, self.momentum)


class Fold(nn.Module):
    """Parametrization multiplying each filter by its BatchNorm scale (refers to the BN, does not own it)."""

    def __init__(self, bn: BatchNormFold) -> None:
        super().__init__()
        object.__setattr__(self, "_bn", bn)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self._bn.scale().reshape(-1, *([1] * (w.dim() - 1)))
