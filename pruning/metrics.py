"""Mask metrics: confidence, diversity, sparsity, k-of-n validity and storage.

Every method exposes a *selection* per group: the inclusion probability of each of its
n structures (``[G, n]``, rows summing to k; a deterministic mask is its own selection).
With ``p_g = selection_g / k`` (a distribution over the group's n structures):

* **confidence** = mean over groups of ``(H(p_g) - log k) / (log n - log k)``: the
  normalised entropy of the selection, 0 when a group always keeps the same k
  structures (a k-hot ``p_g`` has the least possible entropy, ``log k``), 1 when it
  picks uniformly.  Lower is more confident.
* **diversity** = ``H(mean_g p_g) / log n``: the entropy of the layer-averaged selection;
  0 when every group keeps the same structures, 1 when the layer uses every input equally.
* **mutual_information** = ``H(mean_g p_g) - mean_g H(p_g)`` in nats: how much knowing the
  group tells about what is selected (diversity that is not randomness).
* **sparsity** ``1 - k/n``, **valid** (the export mask is exactly k-of-n), and **bits**:
  ``G k (ceil(log2 n) + s w)`` stored as index plus weights against ``G n s w`` dense,
  for ``s`` weights per structure of ``w`` bits.
"""

from __future__ import annotations

import math

import torch

from ..core.rules import index_bits
from .groups import KofnMaskError, check_kofn

__all__ = ["selection_metrics", "layer_metrics", "model_metrics"]


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


@torch.no_grad()
def selection_metrics(selection: torch.Tensor, k: int) -> dict[str, float]:
    """Confidence, diversity and mutual information of a ``[G, n]`` selection (rows sum to k)."""
    sel = selection.double().clamp_min(0)
    n = sel.shape[1]
    p = sel / sel.sum(-1, keepdim=True).clamp_min(1e-30)
    h = _entropy(p)
    if n > k:
        conf = ((h - math.log(k)) / (math.log(n) - math.log(k))).clamp(0, 1).mean()
    else:
        conf = torch.zeros((), dtype=sel.dtype, device=sel.device)
    pbar = p.mean(0)
    hbar = _entropy(pbar)
    return {
        "confidence": float(conf),
        "diversity": float(hbar / math.log(n)) if n > 1 else 0.0,
        "mutual_information": float((hbar - h.mean()).clamp_min(0)),
    }


@torch.no_grad()
def layer_metrics(pruner, w: torch.Tensor, k: int, weight_bits: int) -> dict:
    """All metrics of one pruned layer (``w``: its weight before the mask)."""
    g, n, s = pruner.grouping.view
    out = selection_metrics(pruner.selection(w), k)
    try:
        check_kofn(pruner.hard_mask(w).float(), k)
        valid = True
    except KofnMaskError:
        valid = False
    out.update(
        granularity=pruner.grouping.granularity,
        k=k,
        n=n,
        sparsity=1.0 - k / n,
        valid=valid,
        bits=g * k * (index_bits(n) + s * weight_bits),
        dense_bits=g * n * s * weight_bits,
    )
    return out


@torch.no_grad()
def model_metrics(model) -> list[dict | None]:
    """:func:`layer_metrics` of every layer of a :class:`~kofn.pruning.KofnNet` (``None``: dense)."""
    out = []
    for i, (spec, pruner) in enumerate(zip(model.specs, model.pruners())):
        if pruner is None:
            out.append(None)
        else:
            out.append(layer_metrics(pruner, model.quantized_weight(i).detach(), pruner.k, spec.weight.width))
    return out
