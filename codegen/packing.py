"""Fixed-stride sparse ROM images for k-out-of-n layers.

Every output neuron (row) keeps exactly ``k`` entries, so a row's entries start at a
fixed address and no row pointers are needed.  For ``P`` parallel MAC lanes, a row
occupies ``S = ceil(k / P)`` consecutive ROM words; word ``r * S + s`` holds the
entries ``e = s * P + p`` for lanes ``p = 0 .. P-1``, lane ``p`` in bits
``[p * B, (p + 1) * B)`` (lane 0 in the least significant bits).  Entries
``e >= k`` of the last step are padding (zero bits): that is the only padding,
``S * P - k`` entries per row, and it contributes nothing because a zero weight
is stored there.

Index ROM entries are ``index_bits(n) = max(1, ceil(log2 n))`` wide; weight ROM
entries are the two's-complement pattern of the weight format's width.

Bank layers (``banks`` P > 1, the ``bank`` granularity; P lanes): input ``i`` is in bank
``i % P`` at bank-local address ``i // P``, and every row keeps k/P of each bank; lane ``p``
takes bank ``p``'s entries in ascending order, one per step (entry ``s * P + p`` is bank
``p``'s ``s``-th), and the index ROM holds the bank-local address in
``index_bits(n / P)`` bits: the lane's multiplexer spans its bank alone.

Convolutions (:class:`kofn.core.ir.Conv2dLayer`) pack per filter:

* weight level: exactly as a dense layer, ``n = K*K*C_in`` (indices into the window);
* kernel level: the *channel ROM* has one word per filter holding its ``k`` input-channel
  indices (``index_bits(C_in)`` bits each, kernel ``j`` in bits ``[j*B, (j+1)*B)``), and
  the weight ROM holds the ``k*K*K`` weights of the kept kernels at the fixed stride
  above (entry ``j*K*K + t`` is tap ``t`` of kernel ``j``): a kept kernel's weights need
  no index of their own.

These functions are pure and return :class:`RomImage` values; :func:`mem_lines` turns an
image into ``$readmemh`` text.  The kind-independent primitives live in
:mod:`kofn.codegen.rom`, each kind's packing in its handler (:mod:`kofn.codegen.kinds`).
"""

from __future__ import annotations

import numpy as np

from ..core.fixed import from_twos_complement
from ..core.ir import Conv2dLayer, DenseLayer
from .kinds import handler
from .rom import (
    BRAM_MIN_BITS,
    BRAM_MIN_DEPTH,
    RAMB18_SHAPES,
    RAMB36_SHAPES,
    LayerRoms,
    RomImage,
    bram_cells,
    mem_lines,
    pack_entries,
    rom_in_bram,
    steps_per_row,
    unpack_entries,
)

__all__ = [
    "RomImage",
    "LayerRoms",
    "steps_per_row",
    "pack_entries",
    "unpack_entries",
    "pack_layer",
    "entries_per_row",
    "unpack_layer",
    "mem_lines",
    "rom_in_bram",
    "bram_cells",
    "BRAM_MIN_BITS",
    "BRAM_MIN_DEPTH",
    "RAMB18_SHAPES",
    "RAMB36_SHAPES",
]


def entries_per_row(layer: DenseLayer | Conv2dLayer) -> int:
    """Weights stored per output neuron or filter (``k``, or ``k*K*K`` at kernel level)."""
    return handler(layer).entries_per_row(layer)


def pack_layer(layer: DenseLayer | Conv2dLayer, lanes: int) -> LayerRoms:
    """Index (or channel), weight and bias ROM images of ``layer`` for ``lanes`` MAC lanes."""
    return handler(layer).pack(layer, lanes)


def unpack_layer(roms: LayerRoms, k: int, weight_width: int, bias_width: int, k_weights: int | None = None,
                 banks: int = 1):
    """Inverse of :func:`pack_layer`: ``(indices, weights, bias)`` as int64 arrays.

    ``k`` is the number of indices per row, ``k_weights`` the number of weights per row
    when it differs (kernel level: ``k * K * K``); ``banks`` > 1: the index ROM holds
    bank-local addresses (lane p's entries are in bank p), returned as ascending inputs."""
    idx = unpack_entries(roms.index, k)
    w = from_twos_complement(unpack_entries(roms.weight, k_weights or k), weight_width)
    b = from_twos_complement(unpack_entries(roms.bias, 1)[:, 0], bias_width)
    if banks > 1:
        idx = idx * banks + np.arange(k)[None, :] % roms.index.lanes  # entry s*P + p is lane p's
        order = np.argsort(idx, axis=1, kind="stable")
        idx, w = np.take_along_axis(idx, order, axis=1), np.take_along_axis(w, order, axis=1)
    return idx, w, b
