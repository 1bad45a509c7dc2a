"""Training loop for :class:`KofnMLP`: Adam, cross-entropy, DPP temperature annealed
linearly from ``tau_start`` to ``tau_end`` over all steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .model import KofnMLP

__all__ = ["TrainSettings", "TrainHistory", "train", "accuracy"]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3
    mask_lr: float = 3e-2
    weight_decay: float = 0.0
    tau_start: float = 5.0
    tau_end: float = 0.5
    seed: int = 0


@dataclass
class TrainHistory:
    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    tau: list[float] = field(default_factory=list)
    seconds: float = 0.0
    step_seconds: float = 0.0


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on float inputs ``x``."""
    was = model.training
    model.eval()
    pred = model(torch.as_tensor(x)).argmax(dim=1).numpy()
    model.train(was)
    return float((pred == y).mean())


def train(
    model: KofnMLP,
    x: np.ndarray,
    y: np.ndarray,
    s: TrainSettings,
    progress: Callable[[str], None] | None = None,
) -> TrainHistory:
    """Train in place; returns per-epoch loss, training accuracy and temperature."""
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    mask_params = [m.logits for m in model.dpp_masks()]
    ids = {id(p) for p in mask_params}
    other = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.Adam(
        [
            {"params": other, "lr": s.lr, "weight_decay": s.weight_decay},
            {"params": mask_params, "lr": s.mask_lr},
        ]
    )
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    n = len(yt)
    steps_per_epoch = -(-n // s.batch_size)
    total = max(1, s.epochs * steps_per_epoch - 1)
    hist = TrainHistory()
    model.train()
    t0 = time.perf_counter()
    step = 0
    for epoch in range(s.epochs):
        perm = torch.randperm(n, generator=gen)
        tot_loss = 0.0
        correct = 0
        for b in range(steps_per_epoch):
            tau = s.tau_start + (s.tau_end - s.tau_start) * step / total
            model.set_tau(tau)
            sel = perm[b * s.batch_size : (b + 1) * s.batch_size]
            out = model(xt[sel])
            loss = nn.functional.cross_entropy(out, yt[sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(sel)
            correct += int((out.detach().argmax(1) == yt[sel]).sum())
            step += 1
        hist.loss.append(tot_loss / n)
        hist.train_acc.append(correct / n)
        hist.tau.append(tau)
        if progress and (epoch + 1 == s.epochs or (epoch + 1) % max(1, s.epochs // 10) == 0):
            progress(
                f"epoch {epoch + 1}/{s.epochs}  loss {hist.loss[-1]:.4f}  "
                f"train acc {hist.train_acc[-1]:.3f}  tau {tau:.2f}"
            )
    hist.seconds = time.perf_counter() - t0
    hist.step_seconds = hist.seconds / max(1, step)
    model.eval()
    return hist
