"""Per-kind layer code of :class:`~kofn.pruning.KofnNet`, one handler per
:mod:`kofn.core.layers` spec class (:data:`KINDS`): the torch module a weighted layer
trains, the shape it leaves, its forward step and its IR layer.

Layout: images travel as NCHW in torch; a dense layer after an image flattens it in HWC
order (the order pixels stream into the hardware), so dense weights need no permutation
at export.

At export a :class:`Cursor` walks the stack: the torch shape of the activations, which of
its channels (image) or inputs (vector) exist in the IR (feature-map pruning removes
filters and neurons, and the next layer's inputs with them), and the activation format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core.fixed import FixedFormat
from ..core.ir import AddLayer, Conv2dLayer, DenseLayer, GlobalAvgPoolLayer, MaxPool2dLayer
from ..core.layers import AddSpec, ConvSpec, DenseSpec, GapSpec, PoolSpec
from ..core.rules import conv_out_size, fixed_stride_rows, row_stride
from .weights import BatchNormFold

__all__ = ["Cursor", "Codes", "KINDS", "DenseKind", "ConvKind", "PoolKind", "AddKind", "GapKind"]


@dataclass(frozen=True)
class Cursor:
    """The export walk's state before a layer."""

    shape: tuple  # torch shape of the activations: (H, W, C) or (n,)
    kept: np.ndarray  # the channels (image) or inputs (vector) that exist in the IR
    fmt: FixedFormat


@dataclass(frozen=True)
class Codes:
    """A weighted layer's integers at export, at torch shape (every row, every input)."""

    weights: np.ndarray  # weight codes, the module's weight shape
    bias: np.ndarray  # bias codes (BatchNorm folded)
    mask: np.ndarray  # kept weights (bool, weight shape)
    rows: np.ndarray  # the filters / neurons kept in the IR
    granularity: str  # the layer's, or "dense" when it has no pruner


class DenseKind:
    """A Linear layer; after an image it flattens it (HWC)."""

    @staticmethod
    def module(spec: DenseSpec, shape: tuple) -> nn.Module:
        return nn.Linear(int(np.prod(shape)), spec.out_features)

    @staticmethod
    def batchnorm(spec: DenseSpec) -> None:
        return None

    @staticmethod
    def shape(spec: DenseSpec, shape: tuple) -> tuple:
        return (spec.out_features,)

    @staticmethod
    def forward(spec: DenseSpec, mod: nn.Module, bn, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                training: bool) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1).flatten(1)  # HWC, the stream order
        return nn.functional.linear(x, w, b)

    @staticmethod
    def to_ir(spec: DenseSpec, name: str, cur: Cursor, codes: Codes) -> tuple[DenseLayer, Cursor]:
        """Every row stores the same number of entries (the fixed stride): rows that lost
        entries to a removed input are padded with zero weights at unused inputs, which
        changes no output."""
        kept = cur.kept
        if len(cur.shape) == 3:  # flatten: HWC positions of the kept channels
            h, w, c = cur.shape
            kept = (np.arange(h * w)[:, None] * c + kept[None, :]).reshape(-1)
        rows, gran = codes.rows, codes.granularity
        sub = codes.mask[np.ix_(rows, kept)]
        stride = len(kept) if gran == "dense" else row_stride(gran, spec.k, len(kept), spec.block)
        idx = fixed_stride_rows(sub, stride)
        wsub = codes.weights[np.ix_(rows, kept)] * sub  # padding entries carry weight 0
        layer = DenseLayer(name, len(kept), idx, np.take_along_axis(wsub, idx, axis=1), codes.bias[rows],
                           cur.fmt, spec.weight, spec.bias, spec.output, spec.relu, banks=spec.banks(len(kept)) or 1)
        return layer, Cursor((spec.out_features,), rows, spec.output)


class ConvKind:
    """A Conv2d layer, with its BatchNorm folded into the weight chain when ``spec.bn``."""

    @staticmethod
    def module(spec: ConvSpec, shape: tuple) -> nn.Module:
        return nn.Conv2d(shape[2], spec.out_channels, spec.kernel, spec.stride, spec.pad)

    @staticmethod
    def batchnorm(spec: ConvSpec) -> BatchNormFold | None:
        return BatchNormFold(spec.out_channels) if spec.bn else None

    @staticmethod
    def shape(spec: ConvSpec, shape: tuple) -> tuple:
        h, w, _ = shape
        return (conv_out_size(h, spec.kernel, spec.stride, spec.pad),
                conv_out_size(w, spec.kernel, spec.stride, spec.pad), spec.out_channels)

    @staticmethod
    def forward(spec: ConvSpec, mod: nn.Module, bn: BatchNormFold | None, x: torch.Tensor, w: torch.Tensor,
                b: torch.Tensor, training: bool) -> torch.Tensor:
        y = nn.functional.conv2d(x, w, None, mod.stride, mod.padding)
        if bn is not None and training:
            bn.update(y.detach() / bn.scale().detach().reshape(1, -1, 1, 1))
        return y + b.reshape(1, -1, 1, 1)

    @staticmethod
    def to_ir(spec: ConvSpec, name: str, cur: Cursor, codes: Codes) -> tuple[Conv2dLayer, Cursor]:
        """A conv with every kernel kept (no pruner, or feature-map pruning) is exported at
        kernel level: one channel index per kernel instead of one index per weight."""
        h, w, _ = cur.shape
        kept_c, rows, gran = cur.kept, codes.rows, codes.granularity
        kk = spec.kernel * spec.kernel
        wk = codes.weights[np.ix_(rows, kept_c)]  # [R, C', K, K]
        mk = codes.mask[np.ix_(rows, kept_c)]
        banks = 1
        if gran in ("weight", "bank"):
            banks = spec.banks(kk * len(kept_c)) or 1
            field_w = wk.transpose(0, 2, 3, 1).reshape(len(rows), -1)  # (ky, kx, c): window order
            field_m = mk.transpose(0, 2, 3, 1).reshape(len(rows), -1)
            idx = fixed_stride_rows(field_m, spec.k)
            weights = np.take_along_axis(field_w * field_m, idx, axis=1)
            ir_gran = "weight"
        else:  # kernel, or every kernel kept
            kmask = mk.reshape(len(rows), len(kept_c), kk).any(axis=2)
            stride = spec.k if gran == "kernel" else len(kept_c)
            idx = fixed_stride_rows(kmask, stride)
            kern = (wk * mk).reshape(len(rows), len(kept_c), kk)
            weights = np.take_along_axis(kern, idx[:, :, None], axis=1).reshape(len(rows), -1)
            ir_gran = "kernel"
        layer = Conv2dLayer(name, (h, w, len(kept_c)), spec.kernel, spec.stride, spec.pad, ir_gran, idx, weights,
                            codes.bias[rows], cur.fmt, spec.weight, spec.bias, spec.output, spec.relu, banks=banks)
        return layer, Cursor(ConvKind.shape(spec, cur.shape), rows, spec.output)


class PoolKind:
    """2x2 max pooling, stride 2: no weights, codes pass through."""

    @staticmethod
    def shape(spec: PoolSpec, shape: tuple) -> tuple:
        h, w, c = shape
        return (h // 2, w // 2, c)

    @staticmethod
    def forward(spec: PoolSpec, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 2)

    @staticmethod
    def to_ir(spec: PoolSpec, name: str, cur: Cursor) -> tuple[MaxPool2dLayer, Cursor]:
        h, w, _ = cur.shape
        return MaxPool2dLayer(name, (h, w, len(cur.kept)), cur.fmt), Cursor(PoolKind.shape(spec, cur.shape),
                                                                           cur.kept, cur.fmt)


class AddKind:
    """A residual join: ``relu(a + b)`` requantized into ``spec.output`` (``quant``: the
    net's fake quantizer of that format).  Both inputs lie on their formats' grids, so their
    float sum is exact and rounding it is :func:`kofn.core.fixed.add_codes`."""

    @staticmethod
    def shape(spec: AddSpec, shape: tuple) -> tuple:
        return tuple(shape)

    @staticmethod
    def forward(spec: AddSpec, a: torch.Tensor, b: torch.Tensor, quant) -> torch.Tensor:
        y = quant(a + b)
        return torch.relu(y) if spec.relu else y

    @staticmethod
    def to_ir(spec: AddSpec, name: str, a: Cursor, b: Cursor) -> tuple[AddLayer, Cursor]:
        if not np.array_equal(a.kept, b.kept):  # config validation prevents it (kofn.core.layers.validate_graph)
            raise ValueError(f"layer {name!r}: its inputs keep different channels after feature-map pruning")
        h, w, _ = a.shape
        layer = AddLayer(name, (h, w, len(a.kept)), a.fmt, b.fmt, spec.output, spec.relu)
        return layer, Cursor(a.shape, a.kept, spec.output)


class GapKind:
    """Global average pooling into ``spec.output``: the mean of on-grid values is their exact
    sum over the area, divided once (correctly rounded, and never a false tie at these
    magnitudes), so rounding it is :func:`kofn.core.fixed.avg_pool_codes`."""

    @staticmethod
    def shape(spec: GapSpec, shape: tuple) -> tuple:
        return (1, 1, shape[2])

    @staticmethod
    def forward(spec: GapSpec, x: torch.Tensor, quant) -> torch.Tensor:
        return quant(x.mean(dim=(2, 3), keepdim=True))

    @staticmethod
    def to_ir(spec: GapSpec, name: str, cur: Cursor) -> tuple[GlobalAvgPoolLayer, Cursor]:
        h, w, _ = cur.shape
        layer = GlobalAvgPoolLayer(name, (h, w, len(cur.kept)), cur.fmt, spec.output)
        return layer, Cursor(GapKind.shape(spec, cur.shape), cur.kept, spec.output)


KINDS: dict[type, type] = {DenseSpec: DenseKind, ConvSpec: ConvKind, PoolSpec: PoolKind, AddSpec: AddKind,
                           GapSpec: GapKind}
"""Spec class -> its handler."""
