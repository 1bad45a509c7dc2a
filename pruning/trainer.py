"""Training loop for :class:`KofnNet`: Adam, cross-entropy, every method's schedule.

One loop serves every method.  Each step: ``model.set_progress(step / total)`` drives
the method's schedule (DPP temperature, PSP projection start, DTP annealing, the
magnitude/gradual pruning points), the loss adds the method's regulariser, and Adam
updates the weights and biases (``lr``, ``weight_decay``) and each pruner's mask
parameters with the pruner's options (``mask_lr`` for DPP logits and DTP scores;
``psp.lr``, default ``lr``, with ``psp.decay`` for PSP's scales).  Mask metrics (:mod:`.metrics`) are logged once per epoch, outside the
step timing.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .hparams import TrainConfig
from .metrics import model_metrics
from .net import KofnNet

__all__ = ["TrainHistory", "train", "train_step", "make_optimizer", "accuracy"]


@dataclass
class TrainHistory:
    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    tau: list[float | None] = field(default_factory=list)  # DPP temperature at each epoch's end
    metrics: list[list[dict | None]] = field(default_factory=list)  # per epoch, per layer
    seconds: float = 0.0  # wall time of the training steps (metrics excluded)
    step_seconds: float = 0.0  # median wall time of one step (forward, backward, update)
    steps: int = 0

    def as_dict(self) -> dict:
        return {
            "loss": self.loss,
            "train_acc": self.train_acc,
            "tau": self.tau,
            "metrics": self.metrics,
            "seconds": round(self.seconds, 3),
            "step_ms_median": round(self.step_seconds * 1e3, 4),
            "steps": self.steps,
        }


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on float inputs ``x``."""
    was = model.training
    model.eval()
    pred = model(torch.as_tensor(x)).argmax(dim=1).numpy()
    model.train(was)
    return float((pred == y).mean())


def make_optimizer(model: KofnNet, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over :meth:`KofnNet.optimizer_groups`."""
    return torch.optim.Adam(model.optimizer_groups(cfg))


def train_step(model: KofnNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    """One step: forward, cross-entropy plus the methods' regularisers, backward, update.
    Returns ``(logits, cross-entropy)``, both detached."""
    out = model(x)
    loss = nn.functional.cross_entropy(out, y)
    reg = model.regularizer()
    opt.zero_grad(set_to_none=True)
    (loss if reg is None else loss + reg).backward()
    opt.step()
    return out.detach(), loss.detach()


def train(
    model: KofnNet,
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig = TrainConfig(),
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    log_metrics: bool = True,
) -> TrainHistory:
    """Train in place; returns per-epoch loss, training accuracy, DPP temperature and
    mask metrics, and the median step time."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, cfg)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    n = len(yt)
    steps_per_epoch = -(-n // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    model.set_total_steps(total)
    hist = TrainHistory()
    step_times: list[float] = []
    model.train()
    step = 0
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        tot_loss = 0.0
        correct = 0
        for b in range(steps_per_epoch):
            t0 = time.perf_counter()
            model.set_progress(step / max(1, total - 1))
            sel = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            out, loss = train_step(model, opt, xt[sel], yt[sel])
            step_times.append(time.perf_counter() - t0)
            tot_loss += loss.item() * len(sel)
            correct += int((out.argmax(1) == yt[sel]).sum())
            step += 1
        hist.loss.append(tot_loss / n)
        hist.train_acc.append(correct / n)
        taus = [p.tau for p in model.pruners() if p is not None and hasattr(p, "tau")]
        hist.tau.append(taus[0] if taus else None)
        if log_metrics:
            hist.metrics.append(model_metrics(model))
        if progress and (epoch + 1 == cfg.epochs or (epoch + 1) % max(1, cfg.epochs // 10) == 0):
            extra = f"  tau {taus[0]:.2f}" if taus else ""
            if log_metrics and hist.metrics[-1]:
                confs = [m["confidence"] for m in hist.metrics[-1] if m]
                if confs:
                    extra += f"  mask confidence {' '.join(f'{c:.2f}' for c in confs)}"
            progress(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {hist.loss[-1]:.4f}  "
                f"train acc {hist.train_acc[-1]:.3f}{extra}"
            )
    hist.seconds = float(sum(step_times))
    hist.step_seconds = statistics.median(step_times) if step_times else 0.0
    hist.steps = step
    model.eval()
    return hist
