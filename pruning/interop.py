"""Masks made elsewhere, accepted as k-of-n input: ``torch.ao.pruning``.

``WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, n),
zeros_per_block=n - k)`` zeroes ``n - k`` of every ``n`` consecutive weights of a row,
i.e. the ``block`` granularity with M = n (M = in_features: k of n per neuron).  Its
default ``sparsity_level=0.5`` sparsifies only half of the blocks: the exactness check
rejects such masks, naming the layer and the first bad block.
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import Grouping, KofnMaskError, check_kofn

__all__ = ["masks_from_torch_ao"]


def masks_from_torch_ao(model: nn.Module, k: int, n: int) -> list[torch.Tensor]:
    """The masks of every ``nn.Linear`` in ``model`` (in ``modules()`` order) that a
    ``torch.ao.pruning`` sparsifier prepared, each checked to keep exactly ``k`` of every
    ``n`` consecutive inputs.  Returns weight-shaped float masks; a Linear without a
    sparsifier parametrization raises, as does any mask that is not exactly k-of-n."""
    out = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear):
            continue
        plist = getattr(getattr(mod, "parametrizations", None), "weight", None)
        masks = [p.mask for p in plist or [] if hasattr(p, "mask")]
        if not masks:
            raise KofnMaskError(
                f"{name or 'model'}: no torch.ao.pruning mask on this Linear "
                "(call sparsifier.prepare() and step(), and do not squash_mask() before)"
            )
        mask = masks[-1].detach().float()
        grouping = Grouping(tuple(mask.shape), "block", n)
        try:
            check_kofn(grouping.structures(mask).squeeze(-1), k, where=f"{name} ({grouping.describe()})")
        except KofnMaskError as e:
            raise KofnMaskError(
                f"{e}; WeightNormSparsifier needs sparsity_level=1.0, sparse_block_shape=(1, {n}), "
                f"zeros_per_block={n - k} for exact {k}-of-{n}"
            ) from None
        out.append(mask)
    if not out:
        raise KofnMaskError("no nn.Linear found in the model")
    return out
