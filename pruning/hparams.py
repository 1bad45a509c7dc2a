"""Training settings: the pruning methods and their hyper-parameters (``[train]`` of a flow
config).  Plain frozen dataclasses with ``validate(key)``; no torch here, so a config can
be read without importing torch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import fail as _fail

__all__ = ["METHODS", "GRANULARITIES", "DPPConfig", "PSPConfig", "DTPConfig", "MagnitudeConfig", "GradualConfig",
           "SRSTEConfig", "TrainConfig", "check_device_name",
           "check_cuda_request"]


METHODS = ("dense", "dpp", "psp", "dtp", "magnitude", "gradual", "srste", "random")
"""Training methods; every one ends in exactly k-of-n masks (``dense`` keeps k = n)."""

GRANULARITIES = ("weight", "kernel", "feature_map", "block")


def _positive(obj: Any, key: str, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            _fail(f"{key}.{name}", f"must be > 0, got {getattr(obj, name)}")


def _fraction(obj: Any, key: str, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(obj, name) <= 1.0:
            _fail(f"{key}.{name}", f"must be in [0, 1] (a fraction of training), got {getattr(obj, name)}")


@dataclass(frozen=True)
class DPPConfig:
    """Dynamic Probabilistic Pruning (Gonzalez-Carabarin et al., TNNLS 2022)."""

    tau_start: float = 5.0  # Gumbel-softmax temperature, annealed linearly ...
    tau_end: float = 0.5  # ... to this value at the last step
    init_scale: float = 3.0  # logits start at init_scale * |structure| / mean |structure|
    entropy_weight: float = 0.0  # weight of the mean normalised logit entropy added to the loss
    candidates: int = 0  # relaxed k-hot on the m largest perturbed logits + one tail; 0: auto
    #                      (m = 2k + 32 where that is at most n/2, else all n), -1: always all n

    def validate(self, key: str) -> None:
        _positive(self, key, "tau_start", "tau_end")
        if self.candidates < -1:
            _fail(f"{key}.candidates", f"must be -1 (all), 0 (auto) or a count >= k, got {self.candidates}")
        if self.init_scale < 0 or self.entropy_weight < 0:
            _fail(key, "init_scale and entropy_weight must be >= 0")


@dataclass(frozen=True)
class PSPConfig:
    """Parameterized Structured Pruning (Schindler et al., 2019/2020)."""

    decay: float = 1e-3  # weight decay on the structure scales alpha
    ste_start: float = 0.5  # from this fraction of training on, project to top-k |alpha| (straight-through)
    lr: float = 0.0  # Adam learning rate of alpha; 0: the weights' lr

    def validate(self, key: str) -> None:
        if self.decay < 0:
            _fail(f"{key}.decay", f"must be >= 0, got {self.decay}")
        _fraction(self, key, "ste_start")
        if self.lr < 0:
            _fail(f"{key}.lr", f"must be >= 0 (0: the weights' lr), got {self.lr}")


@dataclass(frozen=True)
class DTPConfig:
    """Differentiable Transportation Pruning (Li et al., ICCV 2023)."""

    eps: float = 0.02  # entropic regularisation reached at the last step (it anneals as eps / progress)
    score_init: float = 1.0  # scores start at score_init * |structure| / max |structure| of the group

    def validate(self, key: str) -> None:
        _positive(self, key, "eps")
        if self.score_init < 0:
            _fail(f"{key}.score_init", f"must be >= 0, got {self.score_init}")


@dataclass(frozen=True)
class MagnitudeConfig:
    """One-shot magnitude pruning, then fine-tuning with the mask frozen."""

    prune_at: float = 0.5  # fraction of training spent dense before the one-shot prune

    def validate(self, key: str) -> None:
        _fraction(self, key, "prune_at")


@dataclass(frozen=True)
class GradualConfig:
    """Gradual magnitude pruning (Zhu & Gupta, 2017): kept count k_t = k + (n - k)(1 - f)^3."""

    start: float = 0.0  # fraction of training where pruning begins ...
    end: float = 0.6  # ... and where k-of-n is reached (then fine-tuning)

    def validate(self, key: str) -> None:
        _fraction(self, key, "start", "end")
        if self.end < self.start:
            _fail(f"{key}.end", f"must be >= start ({self.start}), got {self.end}")


@dataclass(frozen=True)
class SRSTEConfig:
    """Sparse-refined straight-through estimator (Zhou et al., ICLR 2021)."""

    decay: float = 2e-4  # lambda_W: the pruned weights' extra decay in the gradient

    def validate(self, key: str) -> None:
        if self.decay < 0:
            _fail(f"{key}.decay", f"must be >= 0, got {self.decay}")


_DEVICE = re.compile(r"auto|cpu|cuda(:(0|[1-9][0-9]*))?")


def check_device_name(name: Any, key: str = "train.device") -> None:
    """Raise :class:`~kofn.core.errors.ConfigError` naming ``key`` unless ``name`` is
    ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (the syntax only; no torch)."""
    if not isinstance(name, str) or _DEVICE.fullmatch(name) is None:
        _fail(key, f'must be "auto", "cpu", "cuda" or "cuda:N", got {name!r}')


def _no_cuda(name: str, key: str, why: str):
    _fail(key, f'"{name}" requested but {why}; use device = "auto" or "cpu"')


def check_cuda_request(name: str, key: str = "train.device") -> None:
    """Raise :class:`~kofn.core.errors.ConfigError` naming ``key`` when ``name`` (``cuda``
    or ``cuda:N``) names no GPU of this machine; nothing for ``auto`` and ``cpu``.

    Torch is imported for a CUDA request only, so a CPU config is read without it.  The
    GPUs are counted through NVML where it can (``torch.cuda.device_count``), which does not
    initialise CUDA: a process that validates a config and then forks workers (``kofn
    explore``) can still use CUDA in them.  The definitive check (``torch.cuda.is_available()``)
    is :func:`kofn.pruning.device.resolve_device`'s, before training."""
    check_device_name(name, key)
    if not name.startswith("cuda"):
        return
    import torch

    if not torch.backends.cuda.is_built():
        _no_cuda(name, key, f"this torch ({torch.__version__}) is built without CUDA")
    count = torch.cuda.device_count()
    if count < 1:
        _no_cuda(name, key, "no CUDA GPU is visible on this machine")
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= count:
        _no_cuda(name, key, f"this machine has {count} CUDA GPU{'s' if count > 1 else ''} (cuda:0"
                            f"{f'..cuda:{count - 1}' if count > 1 else ''})")


@dataclass(frozen=True)
class TrainConfig:
    method: str = "dpp"  # one of METHODS
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3  # Adam learning rate of weights and biases
    mask_lr: float = 3e-2  # Adam learning rate of mask parameters (DPP logits, DTP scores, PSP scales)
    weight_decay: float = 0.0
    device: str = "auto"  # "auto" (cuda when torch.cuda.is_available(), else cpu) | "cpu" | "cuda" | "cuda:N"
    dpp: DPPConfig = field(default_factory=DPPConfig)
    psp: PSPConfig = field(default_factory=PSPConfig)
    dtp: DTPConfig = field(default_factory=DTPConfig)
    magnitude: MagnitudeConfig = field(default_factory=MagnitudeConfig)
    gradual: GradualConfig = field(default_factory=GradualConfig)
    srste: SRSTEConfig = field(default_factory=SRSTEConfig)

    def validate(self, key: str) -> None:
        if self.method not in METHODS:
            _fail(f"{key}.method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                _fail(f"{key}.{name}", f"must be >= 1, got {getattr(self, name)}")
        _positive(self, key, "lr", "mask_lr")
        if self.weight_decay < 0:
            _fail(f"{key}.weight_decay", f"must be >= 0, got {self.weight_decay}")
        check_cuda_request(self.device, f"{key}.device")
        for name in ("dpp", "psp", "dtp", "magnitude", "gradual", "srste"):
            getattr(self, name).validate(f"{key}.{name}")
