"""One grouping function for every method: a weight tensor viewed as ``[G, n, s]``.

A *group* is one k-out-of-n choice; it has ``n`` *structures*, each of ``s`` weights
that are kept or dropped together.  Every layout is a plain reshape of the
(contiguous) weight, so going back is a reshape too:

=============  =========  ======================================  ==================
granularity    layer      groups ``[G, n]``                        structure size s
=============  =========  ======================================  ==================
weight         Linear     out rows x in_features                   1
weight         Conv2d     filters x C_in*K_h*K_w                   1
kernel         Conv2d     filters x C_in input kernels             K_h*K_w
feature_map    both       1 x C_out filters / neurons              C_in*K_h*K_w (in)
block (N:M)    both       out*(fan_in/M) x M consecutive inputs    1
bank (P)       both       out*P x fan_in/P inputs of one bank      1
=============  =========  ======================================  ==================

``bank`` ties k-of-n to the hardware's P MAC lanes: input ``i`` of a row (in the hardware's
order: a dense layer's columns, a convolution's window ``(ky, kx, c)``) lies in bank
``i % P`` (the cyclic partition HLS calls ``ARRAY_PARTITION cyclic factor=P``); every row
keeps exactly k/P of each bank, so lane p only ever reads bank p.  It is the ``block``
layout over a permuted row (the columns gathered bank by bank), so its view is a gather
and a reshape, and going back is the inverse.

Masks live at structure level (``[G, n]`` of 0/1, exactly ``k`` ones per row) and are
broadcast back to the weight's shape by :meth:`Grouping.expand`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["GRANULARITIES", "Grouping", "check_kofn", "KofnMaskError"]

GRANULARITIES = ("weight", "kernel", "feature_map", "block", "bank")


class KofnMaskError(ValueError):
    """A mask is not exactly k-out-of-n in every group."""


@dataclass(frozen=True)
class Grouping:
    """How a weight of ``shape`` splits into k-out-of-n groups at ``granularity``.

    ``block`` is M for the ``block`` (N:M) granularity: every run of M consecutive
    inputs of a row (the flattened fan-in of a filter) is one group.  ``banks`` is P for
    the ``bank`` granularity: a row's inputs in P interleaved banks, one group each.
    """

    shape: tuple[int, ...]
    granularity: str = "weight"
    block: int | None = None
    banks: int | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        object.__setattr__(self, "shape", shape)
        if len(shape) not in (2, 4):
            raise ValueError(f"weight shape {shape}: expected Linear [out, in] or Conv2d [out, in, kh, kw]")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity {self.granularity!r}: expected one of {', '.join(GRANULARITIES)}")
        if self.granularity == "kernel" and len(shape) != 4:
            raise ValueError("granularity 'kernel' applies to Conv2d weights [out, in, kh, kw] only")
        if self.granularity == "block":
            if self.block is None or self.block < 1:
                raise ValueError("granularity 'block' needs block = M >= 1 (k of every M consecutive inputs)")
            if self.fan_in % self.block:
                raise ValueError(f"block M={self.block} does not divide the fan-in {self.fan_in} of {shape}")
        elif self.block is not None:
            raise ValueError(f"block is only meaningful for granularity 'block', not {self.granularity!r}")
        if self.granularity == "bank":
            if self.banks is None or self.banks < 1:
                raise ValueError("granularity 'bank' needs banks = P >= 1 (the layer's MAC lanes)")
            if self.fan_in % self.banks:
                raise ValueError(f"banks P={self.banks} do not divide the fan-in {self.fan_in} of {shape}")
        elif self.banks is not None:
            raise ValueError(f"banks is only meaningful for granularity 'bank', not {self.granularity!r}")

    @property
    def fan_in(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def view(self) -> tuple[int, int, int]:
        """``(G, n, s)``: groups, structures per group, weights per structure."""
        out, fan_in = self.shape[0], self.fan_in
        g = self.granularity
        if g == "weight":
            return out, fan_in, 1
        if g == "kernel":
            return out, self.shape[1], self.shape[2] * self.shape[3]
        if g == "feature_map":
            return 1, out, fan_in
        if g == "bank":
            return out * self.banks, fan_in // self.banks, 1
        return out * fan_in // self.block, self.block, 1  # block

    def _hw_columns(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``bank``: the torch column of every input in the hardware's order (a convolution's
        window is ``(ky, kx, c)``, torch's ``(c, ky, kx)``), gathered bank by bank: bank p's
        inputs ``p, p + P, ...`` in ``[p * n/P, (p+1) * n/P)``."""
        f = torch.arange(self.fan_in, device=device)
        if len(self.shape) == 4:  # window index f = t * C + c  ->  torch column c * K*K + t
            c_in, taps = self.shape[1], self.shape[2] * self.shape[3]
            f = (f % c_in) * taps + f // c_in
        p = self.banks
        return f.reshape(-1, p).t().reshape(-1)

    @property
    def groups(self) -> int:
        return self.view[0]

    @property
    def n(self) -> int:
        return self.view[1]

    @property
    def structure_size(self) -> int:
        return self.view[2]

    def structures(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` (weight-shaped) as ``[G, n, s]``."""
        if tuple(w.shape) != self.shape:
            raise ValueError(f"tensor of shape {tuple(w.shape)} does not match the grouping's {self.shape}")
        if self.granularity == "bank":
            cols = self._hw_columns(w.device)
            return w.reshape(self.shape[0], -1)[:, cols].reshape(self.view)
        return w.reshape(self.view)

    def norms(self, w: torch.Tensor) -> torch.Tensor:
        """L2 norm of every structure, ``[G, n]`` (``|w|`` when a structure is one weight)."""
        st = self.structures(w)
        return st.abs().squeeze(-1) if st.shape[-1] == 1 else st.norm(dim=-1)

    def expand(self, m: torch.Tensor) -> torch.Tensor:
        """A structure-level ``[G, n]`` tensor broadcast to the weight's shape."""
        g, n, s = self.view
        if tuple(m.shape) != (g, n):
            raise ValueError(f"mask of shape {tuple(m.shape)} does not match the groups [{g}, {n}]")
        if self.granularity == "bank":
            inv = torch.argsort(self._hw_columns(m.device))
            return m.reshape(self.shape[0], -1)[:, inv].reshape(self.shape)
        return m.unsqueeze(-1).expand(g, n, s).reshape(self.shape)

    def bias_mask(self, m: torch.Tensor) -> torch.Tensor | None:
        """Feature-map pruning drops whole neurons/filters, bias included: the bias mask
        ``[C_out]``; ``None`` at every other granularity (biases are kept)."""
        return m.reshape(-1) if self.granularity == "feature_map" else None

    def describe(self) -> str:
        g, n, s = self.view
        extra = {"block": f", M={self.block}", "bank": f", P={self.banks}"}.get(self.granularity, "")
        return f"{self.granularity}{extra}: {g} groups of n={n}" + (f" structures of {s}" if s > 1 else "")


def check_kofn(mask: torch.Tensor, k: int, where: str = "mask") -> None:
    """Raise :class:`KofnMaskError` unless ``mask`` (``[G, n]``) holds only 0 and 1 and
    exactly ``k`` ones in every group (row).  The message names the first bad group."""
    m = mask.detach()
    if m.dim() != 2:
        raise KofnMaskError(f"{where}: expected a [groups, n] mask, got shape {tuple(m.shape)}")
    n = m.shape[1]
    if not 1 <= k <= n:
        raise KofnMaskError(f"{where}: k={k} is outside 1..n={n}")
    binary = (m == 0) | (m == 1)
    if not torch.all(binary):
        r = int(torch.nonzero(~binary)[0, 0])
        raise KofnMaskError(f"{where}: group {r} has entries other than 0 and 1")
    counts = m.sum(dim=-1)
    bad = torch.nonzero(counts != k).flatten()
    if bad.numel():
        r = int(bad[0])
        raise KofnMaskError(
            f"{where}: group {r} keeps {int(counts[r])} of n={n}, expected exactly k={k} "
            f"({bad.numel()} of {m.shape[0]} groups are wrong)"
        )
