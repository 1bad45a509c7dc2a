"""A quantization-aware, k-out-of-n masked CNN (Conv2d, BatchNorm folded, MaxPool2d,
dense head) and its export to :mod:`kofn.core.ir`.

Layout: the model takes images as HWC vectors (as they stream into the hardware),
runs the convolutions in torch's NCHW, and flattens in HWC order before the first
dense layer, so dense weights need no permutation at export.

BatchNorm is folded into the convolution *before* quantization, in training as in
export: the weight chain is ``pruner(FakeQuant(s * w))`` with ``s = gamma / sqrt(var + eps)``
and the bias ``FakeQuant(beta + (b - mean) * s)``.  The fold uses the running
statistics, which every training step updates (momentum 0.1) from the batch statistics
of the unnormalised convolution, so the trained model in eval mode and the exported
integers agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..core.fixed import FixedFormat, quantize
from ..core.ir import Conv2dLayer, DenseLayer, MaxPool2dLayer, Model
from ..core.rules import conv_out_size, fixed_stride_rows, row_stride
from .groups import Grouping, check_kofn
from .hparams import TrainConfig
from .methods import KofnPruner
from .model import KofnNetMixin, LayerSpec, attach_weight_chain, load_init
from .quant import FakeQuant

__all__ = ["ConvSpec", "PoolSpec", "KofnCNN"]


@dataclass(frozen=True)
class ConvSpec:
    """One Conv2d layer.  ``k`` counts, per ``granularity``: weights of the filter's
    ``C_in*K*K`` (``weight``), whole input kernels of its ``C_in`` (``kernel``) or
    filters of ``out_channels`` (``feature_map``; the others are removed at export)."""

    out_channels: int
    kernel: int
    k: int
    weight: FixedFormat
    bias: FixedFormat
    output: FixedFormat
    stride: int = 1
    pad: int = 0
    relu: bool = True
    granularity: str = "weight"
    bn: bool = False


@dataclass(frozen=True)
class PoolSpec:
    """2x2 max pooling, stride 2."""

    size: int = 2


class _BatchNormFold(nn.Module):
    """BatchNorm2d parameters and running statistics, applied by folding into the conv."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.eps, self.momentum = eps, momentum

    def scale(self) -> torch.Tensor:
        return self.weight / torch.sqrt(self.running_var + self.eps)

    def shift(self, b: torch.Tensor) -> torch.Tensor:
        return self.bias + (b - self.running_mean) * self.scale()

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> None:
        """Fold the batch statistics of ``z`` (the unnormalised conv output, NCHW) into the running ones."""
        mean = z.mean(dim=(0, 2, 3))
        var = z.var(dim=(0, 2, 3), unbiased=True)
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(var, self.momentum)


class _Fold(nn.Module):
    """Parametrization multiplying each filter by its BatchNorm scale (refers to the BN, does not own it)."""

    def __init__(self, bn: _BatchNormFold) -> None:
        super().__init__()
        object.__setattr__(self, "_bn", bn)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self._bn.scale().reshape(-1, *([1] * (w.dim() - 1)))


class KofnCNN(KofnNetMixin, nn.Module):
    """Input quantizer, then Conv2d / MaxPool2d layers on images and dense layers after
    an HWC flatten.  Every weighted layer is ``pruner(FakeQuant(...))`` as in
    :class:`~kofn.pruning.KofnMLP`; ``specs`` and ``pruners()`` list the weighted
    (conv and dense) layers only, in order."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        input_fmt: FixedFormat,
        layers: Sequence[ConvSpec | PoolSpec | LayerSpec],
        method: str = "dpp",
        train_cfg: TrainConfig | None = None,
        seed: int = 0,
        masks: Sequence[torch.Tensor | None] | None = None,
        init: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> None:
        super().__init__()
        self._set_method(method, masks)
        self.input_shape = tuple(input_shape)
        self.input_fmt = input_fmt
        self.n_inputs = int(np.prod(self.input_shape))
        self.layer_specs = tuple(layers)
        self.specs = tuple(s for s in self.layer_specs if not isinstance(s, PoolSpec))
        self.input_q = FakeQuant(input_fmt)
        self.mods = nn.ModuleList()  # weighted layers: Conv2d or Linear
        self.bns = nn.ModuleDict()
        self.bias_q = nn.ModuleList(FakeQuant(s.bias) for s in self.specs)
        self.output_q = nn.ModuleList(FakeQuant(s.output) for s in self.specs)
        h, w, c = self.input_shape
        flat = None
        wi = 0
        for i, spec in enumerate(self.layer_specs):
            last = i == len(self.layer_specs) - 1
            if isinstance(spec, PoolSpec):
                if flat is not None:
                    raise ValueError(f"layer {i}: pooling after a dense layer")
                if spec.size != 2 or h < 2 or w < 2:
                    raise ValueError(f"layer {i}: only 2x2 pooling of an image of at least 2x2 is supported")
                h, w = h // 2, w // 2
                continue
            if isinstance(spec, ConvSpec):
                if flat is not None:
                    raise ValueError(f"layer {i}: a convolution after a dense layer")
                mod = nn.Conv2d(c, spec.out_channels, spec.kernel, spec.stride, spec.pad)
                h, w = conv_out_size(h, spec.kernel, spec.stride, spec.pad), conv_out_size(w, spec.kernel, spec.stride, spec.pad)
                if min(h, w) < 1:
                    raise ValueError(f"layer {i}: the {spec.kernel}x{spec.kernel} kernel does not fit the image")
                c = spec.out_channels
                gran = spec.granularity
            else:
                if last and spec.granularity == "feature_map":
                    raise ValueError("the last layer's outputs are the model's outputs; feature_map pruning is not allowed there")
                n_in = h * w * c if flat is None else flat
                mod = nn.Linear(n_in, spec.out_features)
                flat = spec.out_features
                gran = spec.granularity
            if isinstance(spec, ConvSpec) and last:
                raise ValueError("the last layer must be dense")
            if init is not None and init[wi] is not None:
                load_init(mod, init[wi], f"weighted layer {wi}")
            chain = []
            if isinstance(spec, ConvSpec) and spec.bn:
                bn = _BatchNormFold(spec.out_channels)
                self.bns[str(wi)] = bn
                chain.append(_Fold(bn))
            grouping = Grouping(tuple(mod.weight.shape), gran, getattr(spec, "block", None))
            attach_weight_chain(mod, spec, grouping, self.method, None if masks is None else masks[wi],
                                masks is not None, train_cfg, seed + wi, before_quant=chain,
                                where=f"weighted layer {wi}")
            self.mods.append(mod)
            wi += 1
        if flat is None:
            raise ValueError("the last layer must be dense")

    def weighted_modules(self) -> list[nn.Module]:
        return list(self.mods)

    def _bias(self, i: int, pruner: KofnPruner | None) -> torch.Tensor:
        b = self.mods[i].bias
        bn = self.bns[str(i)] if str(i) in self.bns else None
        if bn is not None:
            b = bn.shift(b)
        return self._mask_bias(self.bias_q[i](b), pruner)

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, c = self.input_shape
        x = self.input_q(x).reshape(-1, h, w, c).permute(0, 3, 1, 2)
        wi = 0
        image = True
        for spec in self.layer_specs:
            if isinstance(spec, PoolSpec):
                x = nn.functional.max_pool2d(x, 2)
                continue
            mod, pruner = self.mods[wi], self.pruners()[wi]
            wgt = mod.weight  # evaluates the chain; the pruner records its mask
            b = self._bias(wi, pruner)
            if isinstance(spec, ConvSpec):
                y = nn.functional.conv2d(x, wgt, None, mod.stride, mod.padding)
                bn = self.bns[str(wi)] if str(wi) in self.bns else None
                if bn is not None and self.training:
                    bn.update(y.detach() / bn.scale().detach().reshape(1, -1, 1, 1))
                x = y + b.reshape(1, -1, 1, 1)
            else:
                if image:
                    x = x.permute(0, 2, 3, 1).flatten(1)  # HWC, the stream order
                    image = False
                x = nn.functional.linear(x, wgt, b)
            x = self.output_q[wi](x)
            if spec.relu:
                x = torch.relu(x)
            wi += 1
        return x

    # -- export ----------------------------------------------------------------------
    @torch.no_grad()
    def hard_masks(self) -> list[torch.Tensor]:
        out = []
        for i, (spec, pruner) in enumerate(zip(self.specs, self.pruners())):
            if pruner is None:
                out.append(None)
                continue
            m = pruner.hard_mask(self.quantized_weight(i)).detach().float()
            check_kofn(m, spec.k, where=f"weighted layer {i} ({pruner.grouping.describe()})")
            out.append(m)
        return out

    @torch.no_grad()
    def export(self, name: str = "kofn_cnn") -> Model:
        """The IR: eval-mode masks, BatchNorm folded, integer codes.  Feature-map pruned
        filters are removed with the next layer's inputs; rows that lose entries to a
        removed input are padded with zero weights so the stride stays fixed.  A conv
        with every kernel kept (no pruner, or feature-map pruning) is exported at kernel
        level: one channel index per kernel instead of one index per weight."""
        was = self.training
        self.eval()
        layers = []
        fmt = self.input_fmt
        h, w, c = self.input_shape
        kept_c = np.arange(c)  # channels of the current image that exist in the IR
        flat_kept = None  # kept inputs of the next dense layer
        masks = self.hard_masks()
        wi = 0
        for li, spec in enumerate(self.layer_specs):
            name_l = f"l{li}"
            if isinstance(spec, PoolSpec):
                layers.append(MaxPool2dLayer(name_l, (h, w, len(kept_c)), fmt))
                h, w = h // 2, w // 2
                continue
            pruner, m = self.pruners()[wi], masks[wi]
            w_codes = quantize(self.quantized_weight(wi).double().cpu().numpy(), spec.weight)
            bias = self.mods[wi].bias
            if str(wi) in self.bns:
                bias = self.bns[str(wi)].shift(bias)
            b_codes = quantize(bias.double().cpu().numpy(), spec.bias)
            full = np.ones(w_codes.shape, dtype=bool) if pruner is None else pruner.grouping.expand(m).cpu().numpy().astype(bool)
            rows = np.arange(w_codes.shape[0])
            gran = spec.granularity if pruner is not None else "dense"
            if gran == "feature_map":
                rows = np.flatnonzero(m.reshape(-1).cpu().numpy())
            if isinstance(spec, ConvSpec):
                kk = spec.kernel * spec.kernel
                wk = w_codes[np.ix_(rows, kept_c)]  # [R, C', K, K]
                mk = full[np.ix_(rows, kept_c)]
                if gran == "weight":
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
                layers.append(Conv2dLayer(
                    name_l, (h, w, len(kept_c)), spec.kernel, spec.stride, spec.pad, ir_gran, idx, weights,
                    b_codes[rows], fmt, spec.weight, spec.bias, spec.output, spec.relu,
                ))
                h, w = conv_out_size(h, spec.kernel, spec.stride, spec.pad), conv_out_size(w, spec.kernel, spec.stride, spec.pad)
                kept_c = rows
                c = spec.out_channels
            else:
                if flat_kept is None:  # flatten: HWC positions of the kept channels
                    pos = np.arange(h * w)[:, None] * c + kept_c[None, :]
                    flat_kept = pos.reshape(-1)
                sub = full[np.ix_(rows, flat_kept)]
                stride = len(flat_kept) if gran == "dense" else row_stride(gran, spec.k, len(flat_kept), spec.block)
                idx = fixed_stride_rows(sub, stride)
                wsub = w_codes[np.ix_(rows, flat_kept)] * sub
                layers.append(DenseLayer(
                    name_l, len(flat_kept), idx, np.take_along_axis(wsub, idx, axis=1), b_codes[rows],
                    fmt, spec.weight, spec.bias, spec.output, spec.relu,
                ))
                flat_kept = rows
            fmt = spec.output
            wi += 1
        self.train(was)
        return Model(name=name, layers=tuple(layers), meta={"method": self.method})
