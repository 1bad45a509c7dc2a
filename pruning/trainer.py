"""Training loop for :class:`KofnNet`: Adam, cross-entropy, every method's schedule.

One loop serves every method.  Each step: ``model.set_progress(step / total)`` drives
the method's schedule (DPP temperature, PSP projection start, DTP annealing, the
magnitude/gradual pruning points), the loss adds the method's regulariser, and Adam
updates the weights and biases (``lr``, ``weight_decay``) and each pruner's mask
parameters with the pruner's options (``mask_lr`` for DPP logits and DTP scores;
``psp.lr``, default ``lr``, with ``psp.decay`` for PSP's scales).  Mask metrics (:mod:`.metrics`) are logged once per epoch, outside the
step timing.

Device (``cfg.device``, see :mod:`.device`): the model, the mask computations, each batch and
the loss live on it; the data stay on the CPU and are shuffled there by the seeded CPU
generator, so the batches are the same on every device.  The running loss and accuracy
stay on the device too (one read per epoch, not one per step).  The model comes back on
the CPU, in eval mode, so export (``to_ir``), accuracy and saving run there.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .device import device_label, device_settings, resolve_device
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
    device: str = "cpu"  # where the steps ran: "cpu", or "cuda:N (GPU name)"

    def as_dict(self) -> dict:
        return {
            "loss": self.loss,
            "train_acc": self.train_acc,
            "tau": self.tau,
            "metrics": self.metrics,
            "seconds": round(self.seconds, 3),
            "step_ms_median": round(self.step_seconds * 1e3, 4),
            "steps": self.steps,
            "device": self.device,
        }


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` (in eval mode, on whatever device it is) on float inputs ``x``."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    pred = model(torch.as_tensor(x, device=dev)).argmax(dim=1).cpu().numpy()
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
    device: str | torch.device | None = None,
) -> TrainHistory:
    """Train in place on ``device`` (default ``cfg.device``; ``"auto"``: CUDA when available);
    returns per-epoch loss, training accuracy, DPP temperature and mask metrics, the median
    step time and the device used.  The model is returned on the CPU."""
    device = cfg.device if device is None else device
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # the shuffles: a CPU stream, the same on every device
    model.to(dev)
    try:
        with device_settings(dev):
            return _train(model, x, y, cfg, gen, dev, progress, log_metrics)
    finally:
        model.eval()
        model.to("cpu")


def _train(model: KofnNet, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, gen: torch.Generator,
           dev: torch.device, progress: Callable[[str], None] | None, log_metrics: bool) -> TrainHistory:
    opt = make_optimizer(model, cfg)
    xt, yt = torch.as_tensor(x, device="cpu"), torch.as_tensor(y, device="cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else None  # step times of finished work
    n = len(yt)
    steps_per_epoch = -(-n // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    model.set_total_steps(total)
    hist = TrainHistory(device=device_label(dev))
    step_times: list[float] = []
    model.train()
    step = 0
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen, device="cpu")
        # float64 sums of float32 losses times batch sizes: exactly the Python float sums
        tot_loss = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        for b in range(steps_per_epoch):
            t0 = time.perf_counter()
            model.set_progress(step / max(1, total - 1))
            sel = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            yb = yt[sel].to(dev)
            out, loss = train_step(model, opt, xt[sel].to(dev), yb)
            if sync is not None:
                sync(dev)
            step_times.append(time.perf_counter() - t0)
            tot_loss += loss.double() * len(sel)
            correct += (out.argmax(1) == yb).sum()
            step += 1
        hist.loss.append(tot_loss.item() / n)
        hist.train_acc.append(correct.item() / n)
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
    return hist
