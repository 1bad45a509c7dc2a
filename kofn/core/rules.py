"""IR-level rules: shapes, index widths and fixed-stride rows, the same for training,
export, import, codegen and the estimates.  Numpy only."""

from __future__ import annotations

from typing import Sequence

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["conv_out_size", "same_padding", "fixed_stride_rows", "hwc_from_chw", "index_bits", "row_stride", "steady_ii",
           "CorePipeline", "core_pipeline", "GATHER_RADIX_BITS", "bank_lanes", "default_bank_lanes", "bank_order"]


def fixed_stride_rows(mask: np.ndarray, stride: int) -> np.ndarray:
    """Fixed-stride index rows for a boolean ``[rows, n]`` mask: every row lists its kept
    entries, ascending, padded with unused entries up to the stride (exporters store zero
    weights there, which changes no output).  The stride is ``stride``, raised to the
    largest row count and capped at ``n``."""
    rows, n = mask.shape
    stride = int(min(n, max(stride, int(mask.sum(1).max()) if rows else 0, 1)))
    idx = np.empty((rows, stride), dtype=np.int64)
    for r in range(rows):
        keep = np.flatnonzero(mask[r])
        if len(keep) < stride:
            spare = np.setdiff1d(np.arange(n), keep)[: stride - len(keep)]
            keep = np.sort(np.concatenate([keep, spare]))
        idx[r] = keep
    return idx


def hwc_from_chw(shape: tuple[int, int, int]) -> np.ndarray:
    """For an ``(H, W, C)`` image, ``order[i]`` is the position in torch's CHW flatten of the
    value at position ``i`` of kofn's HWC flatten: ``w[:, order]`` reorders dense columns
    from CHW to HWC, and ``np.argsort(order)`` goes back."""
    h, w, c = shape
    return np.arange(h * w * c).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def conv_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a convolution along one axis: ``floor((size + 2 pad - kernel) / stride) + 1``."""
    return (size + 2 * pad - kernel) // stride + 1


def same_padding(kernel: int) -> int:
    """Zero padding on each side for ``padding = "same"``: ``kernel // 2`` (odd kernels only)."""
    if kernel % 2 == 0:
        raise ValueError(f"padding 'same' needs an odd kernel (symmetric padding), got {kernel}x{kernel}")
    return kernel // 2


def index_bits(n: int) -> int:
    """Bits of one index into ``n`` inputs: ``max(1, ceil(log2 n))``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return max(1, math.ceil(math.log2(n)))


GATHER_RADIX_BITS = 4  # select bits per gather stage: a 16:1 multiplexer per register


@dataclass(frozen=True)
class CorePipeline:
    """The pipelined MAC core's stages (``kofn_dense`` with ``PIPE = 1``; see its header):
    ``gather`` registered 16:1 multiplexer levels over the lane's ``{bank, index}`` select,
    ``tree`` registered levels of the lanes' adder tree.  ``extra``: cycles a result leaves
    later than in the 3-stage core (the input and select copy register, the gather's own
    register, the operand register and three requantization registers, one of which the
    3-stage core also has, make the 5)."""

    gather: int
    tree: int
    select_bits: int  # {bank, index}: the gather's select width

    @property
    def stage_bits(self) -> int:
        """Select bits each gather stage consumes (the last may take fewer)."""
        return -(-self.select_bits // self.gather)

    def candidates(self, g: int) -> int:
        """Candidates per lane after gather stage ``g`` (from 0): each stage divides them by
        ``2**stage_bits`` (the last stage leaves one)."""
        return 2 ** (self.select_bits - min(self.select_bits, (g + 1) * self.stage_bits))

    @property
    def extra(self) -> int:
        return self.gather + self.tree + 5


def core_pipeline(n: int, lanes: int, banks: int, mem: bool = False) -> CorePipeline:
    """Stages of the pipelined core for ``lanes`` lanes selecting among ``n`` inputs in
    ``banks`` (1 or 2) banks: ``ceil(select bits / 4)`` gather stages, ``ceil(log2 lanes)`` tree
    levels.  ``mem``: each lane reads its own memory instead (``kofn_dense``'s MEM, behind
    ``kofn_bankbuf``): one stage, the memory's read register, in the gather's place.  The RTL
    takes both as parameters, so this is their only definition."""
    sel = index_bits(n) + (1 if banks == 2 else 0)
    gather = 1 if mem else -(-sel // GATHER_RADIX_BITS)
    return CorePipeline(gather=gather, tree=(lanes - 1).bit_length(), select_bits=sel)


def bank_lanes(k: int, n: int) -> list[int]:
    """The lane counts P a ``bank`` layer can have: P divides both its ``k`` kept entries per
    row and its ``n`` inputs (banks are not padded), ascending."""
    return [p for p in range(1, min(k, n) + 1) if k % p == 0 and n % p == 0]


def default_bank_lanes(k: int, n: int) -> int:
    """The default P of a ``bank`` layer: the largest valid P (:func:`bank_lanes`) up to 8,
    the rule :func:`kofn.codegen.plan.default_lanes` applies to k alone."""
    return max(p for p in bank_lanes(k, n) if p <= 8)


def bank_order(indices: np.ndarray, banks: int) -> np.ndarray:
    """For ``[rows, k]`` ascending input indices of a ``bank`` layer (input ``i`` is in bank
    ``i % banks`` at bank-local address ``i // banks``, exactly ``k / banks`` per bank), the
    permutation per row that puts bank ``p``'s ``s``-th entry at position ``s * banks + p``:
    lane ``p`` then reads only bank ``p`` in every step (the fixed-stride ROM order)."""
    rows, k = indices.shape
    if k % banks:
        raise ValueError(f"k={k} is not a multiple of the {banks} banks")
    order = np.lexsort((indices // banks, indices % banks), axis=-1)  # by bank, then address
    # bank p's entries are order[:, p*k/P : (p+1)*k/P]; step s, lane p takes entry s of bank p
    return order.reshape(rows, banks, k // banks).transpose(0, 2, 1).reshape(rows, k)


def row_stride(granularity: str, k: int, n: int, block: int | None = None) -> int:
    """Entries each output neuron stores in hardware (the ROM's fixed stride) when a
    layer of ``n`` inputs keeps k-of-n at ``granularity``: k (weight), k per block of
    ``block`` inputs (block), or every input of a kept neuron (feature_map)."""
    if granularity == "block":
        return k * (n // block)
    if granularity == "feature_map":
        return n
    return k


def steady_ii(last_out: Sequence[int]) -> int | float:
    """The steady-state initiation interval of back-to-back inferences from their last output
    beats: the mean interval over the shortest period the tail repeats with (two stages whose
    buffer hand-offs bind can alternate, e.g. 18, 22, 18, 22: II 20); an int when whole."""
    d = [b - a for a, b in zip(last_out, last_out[1:])]
    if not d:
        raise ValueError("the II needs at least two inferences")
    for p in range(1, len(d) // 3 + 1):
        if d[-p:] == d[-2 * p : -p] == d[-3 * p : -2 * p]:
            ii = sum(d[-p:]) / p
            return int(ii) if ii == int(ii) else ii
    tail = d[len(d) // 2 :]
    ii = sum(tail) / len(tail)
    return int(ii) if ii == int(ii) else ii
