"""Where training runs: ``[train] device`` = ``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"cuda:N"``.

``auto`` is CUDA when ``torch.cuda.is_available()``, else the CPU.  The whole training
loop runs on the device (model, mask parameters, every method's mask computation, the
batches, the loss); the data stay on the CPU and are shuffled there, and every random
number (weight init, shuffles, DPP's Gumbel noise, the random mask) is drawn from the
CPU generators seeded as on a CPU run and then moved, so a CUDA run sees the same random
numbers as a CPU run.  :func:`kofn.pruning.train` hands the model back on the CPU, so export
(``to_ir``), the float accuracy and ``model.pt`` are computed and saved there.

Why a CUDA run's IR may still differ from the CPU run's: with the same random numbers
the only difference left is float arithmetic (cuBLAS/cuDNN reduction order, a different
``exp``/``log``; TF32 is switched off, cuDNN made deterministic), which changes the
trained weights in their last bits.  A weight near a rounding boundary of its fixed-point
format, or a mask score near the k-th largest of its group, then flips, and training
diverges from there; exact ties among mask scores (e.g. inputs that are always zero get
identical scores) are also broken differently by the CPU and CUDA ``topk`` kernels.  The
two IRs are then two equally valid trainings.  Each exported model is still bit-exact
against its own hardware: the integer reference is computed from the exported IR, never
from torch, and the generated IP is checked against that reference.
"""

from __future__ import annotations

import contextlib

import torch

from ..core.errors import ConfigError
from .hparams import check_cuda_request, check_device_name

__all__ = ["check_device_name", "check_cuda_request", "resolve_device", "device_settings", "device_label"]


def resolve_device(name: str = "auto", key: str = "train.device") -> torch.device:
    """The torch device ``name`` means here: ``auto`` is ``cuda`` when
    ``torch.cuda.is_available()``, else ``cpu``.  ``cuda``/``cuda:N`` on a machine without
    a usable GPU raise :class:`ConfigError` naming ``key``."""
    check_device_name(name, key)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    check_cuda_request(name, key)
    if not torch.cuda.is_available():
        raise ConfigError(f'{key}: "{name}" requested but torch.cuda.is_available() is False on this machine; '
                          'use device = "auto" or "cpu"')
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """``cpu``, or ``cuda:N`` with the GPU's name, for the training history."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


@contextlib.contextmanager
def device_settings(device: torch.device):
    """For a CUDA device: full-precision float32 matmuls and convolutions (no TF32) and
    deterministic cuDNN algorithms while the block runs; the previous settings come back
    after.  A CPU device changes nothing (these flags do not touch CPU kernels)."""
    if torch.device(device).type != "cuda":
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
           torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = old
