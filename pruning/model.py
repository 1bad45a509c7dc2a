"""A quantization-aware, k-out-of-n masked MLP and its export to :mod:`kofn.core.ir`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..core.rules import row_stride
from ..core.fixed import FixedFormat, quantize
from ..core.ir import DenseLayer, Model
from ..core.rules import fixed_stride_rows
from .groups import Grouping, check_kofn
from .hparams import METHODS, TrainConfig
from .methods import FixedPruner, KofnPruner, make_pruner
from .quant import FakeQuant

__all__ = ["LayerSpec", "KofnMLP", "KofnNetMixin", "attach_weight_chain", "load_init"]


def attach_weight_chain(mod: nn.Module, spec, grouping: Grouping, method: str, mask, fixed: bool,
                        train_cfg: TrainConfig | None, seed: int, before_quant=(), where: str = "layer") -> None:
    """Register ``mod.weight``'s parametrizations, the one chain every kofn layer uses:
    ``[pre_quant] -> *before_quant -> FakeQuant(spec.weight) -> pruner``.

    The pruner is ``method``'s (``fixed``: a :class:`FixedPruner` of ``mask``), and there is
    none for ``dense`` or when nothing is pruned (k equals the group size n).
    ``before_quant`` holds parametrizations applied before quantization (BatchNorm folding)."""
    pruner: KofnPruner | None = None
    if method != "dense" and (fixed or spec.k != grouping.n):
        if fixed:
            if mask is None:
                raise ValueError(f"{where}: no mask given")
            pruner = FixedPruner(mod.weight, spec.k, grouping, mask, where=where)
        else:
            pruner = make_pruner(method, mod.weight, spec.k, grouping, train_cfg, seed=seed)
    if pruner is not None and pruner.has_pre_quant:
        parametrize.register_parametrization(mod, "weight", _PreQuant(pruner))
    for m in before_quant:
        parametrize.register_parametrization(mod, "weight", m)
    parametrize.register_parametrization(mod, "weight", FakeQuant(spec.weight))
    if pruner is not None:
        parametrize.register_parametrization(mod, "weight", pruner)


@torch.no_grad()
def load_init(mod: nn.Module, wb: tuple[np.ndarray, np.ndarray], where: str) -> None:
    """Start ``mod`` (a Linear or Conv2d, before any parametrization) from given weights,
    e.g. a model imported from ONNX, so pruners initialise from them."""
    w, b = (torch.as_tensor(np.asarray(a), dtype=mod.weight.dtype) for a in wb)
    if tuple(w.shape) != tuple(mod.weight.shape) or tuple(b.shape) != tuple(mod.bias.shape):
        raise ValueError(f"{where}: initial weights {tuple(w.shape)} / bias {tuple(b.shape)} do not fit "
                         f"{tuple(mod.weight.shape)} / {tuple(mod.bias.shape)}")
    mod.weight.copy_(w)
    mod.bias.copy_(b)


@dataclass(frozen=True)
class LayerSpec:
    """One Linear layer: ``out_features`` outputs, k-of-n at ``granularity``, and its formats.

    ``granularity`` is ``weight`` (k of the n inputs per neuron), ``block`` (k of every
    ``block`` consecutive inputs, N:M) or ``feature_map`` (k of the ``out_features``
    neurons; the others are removed at export)."""

    out_features: int
    k: int
    weight: FixedFormat
    bias: FixedFormat
    output: FixedFormat
    relu: bool = True
    granularity: str = "weight"
    block: int | None = None


class _PreQuant(nn.Module):
    """Parametrization calling ``pruner.pre_quant`` (PSP's scales) before the quantizer;
    it refers to the pruner without owning it, so the scales are registered once."""

    def __init__(self, pruner: KofnPruner) -> None:
        super().__init__()
        object.__setattr__(self, "_pruner", pruner)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self._pruner.pre_quant(w)


class KofnNetMixin:
    """What training needs from a k-out-of-n network, shared by :class:`KofnMLP` and
    :class:`~kofn.pruning.KofnCNN`: the pruners of its weighted layers (the last
    parametrization of each weight), their schedule, regulariser and optimiser groups."""

    def weighted_modules(self) -> list[nn.Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_method(self, method: str, masks) -> None:
        if method != "dense" and method not in METHODS and masks is None:
            raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
        self.method = "fixed" if masks is not None else method

    def quantized_weight(self, i: int) -> torch.Tensor:
        """Weighted layer ``i``'s weight before its mask: its parametrization chain up to the
        pruner (``FakeQuant(pre_quant(w))``, BatchNorm folded first where there is one)."""
        chain = self.weighted_modules()[i].parametrizations.weight
        w = chain.original
        for m in chain:
            if isinstance(m, KofnPruner):
                break
            w = m(w)
        return w

    @staticmethod
    def _mask_bias(b: torch.Tensor, pruner: KofnPruner | None) -> torch.Tensor:
        """Zero the biases of neurons or filters a feature-map pruner removed."""
        if pruner is not None:
            bm = pruner.grouping.bias_mask(pruner.last_mask)
            if bm is not None:
                b = b * bm.to(b.dtype)
        return b

    def pruners(self) -> list[KofnPruner | None]:
        """Each layer's pruner (``None`` for a dense layer)."""
        out = []
        for lin in self.weighted_modules():
            last = lin.parametrizations.weight[-1]
            out.append(last if isinstance(last, KofnPruner) else None)
        return out

    def set_progress(self, fraction: float) -> None:
        for p in self.pruners():
            if p is not None:
                p.set_progress(fraction)

    def set_total_steps(self, total: int) -> None:
        for p in self.pruners():
            if p is not None:
                p.set_total_steps(total)

    def regularizer(self) -> torch.Tensor | None:
        terms = [r for p in self.pruners() if p is not None for r in [p.regularizer()] if r is not None]
        return sum(terms) if terms else None

    def optimizer_groups(self, cfg: TrainConfig) -> list[dict]:
        """Adam parameter groups: weights and biases (``lr``, ``weight_decay``), then each
        pruner's mask parameters with the pruner's own options."""
        masks = [p for p in self.pruners() if p is not None and p.mask_parameters()]
        special = {id(q) for p in masks for q in p.mask_parameters()}
        weights = [q for q in self.parameters() if id(q) not in special]
        return [{"params": weights, "lr": cfg.lr, "weight_decay": cfg.weight_decay}] + [
            {"params": p.mask_parameters(), **p.optimizer_options(cfg)} for p in masks
        ]

    def set_quantize(self, enabled: bool) -> None:
        """Switch every fake quantizer (input, weights, biases, outputs) on or off."""
        for m in self.modules():
            if isinstance(m, FakeQuant):
                m.enabled = enabled


class KofnMLP(KofnNetMixin, nn.Module):
    """Input quantizer, then per layer a Linear whose weight is the parametrization chain
    ``pruner(FakeQuant(w))`` (PSP: ``pruner(FakeQuant(alpha * w))``), a fake-quantized
    bias, and output requantization (round half up, saturate, ReLU).

    ``method`` is one of :data:`kofn.app.config.METHODS`; ``dense`` keeps every input
    (k = n, no pruner), as does any layer whose k equals its group size n.  ``masks`` (one ``[G, n]`` or weight-shaped tensor or ``None``
    per layer) fixes given masks instead, e.g. from ``torch.ao.pruning``.
    ``set_quantize(False)`` runs the same masked network in floating point.
    """

    def __init__(
        self,
        n_inputs: int,
        input_fmt: FixedFormat,
        layers: Sequence[LayerSpec],
        method: str = "dpp",
        train_cfg: TrainConfig | None = None,
        seed: int = 0,
        masks: Sequence[torch.Tensor | None] | None = None,
        init: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> None:
        super().__init__()
        self._set_method(method, masks)
        self.input_fmt = input_fmt
        self.n_inputs = n_inputs
        self.specs = tuple(layers)
        self.input_q = FakeQuant(input_fmt)
        self.linears = nn.ModuleList()
        self.bias_q = nn.ModuleList(FakeQuant(spec.bias) for spec in self.specs)
        self.output_q = nn.ModuleList(FakeQuant(spec.output) for spec in self.specs)
        n = n_inputs
        for i, spec in enumerate(self.specs):
            if spec.granularity == "feature_map" and i == len(self.specs) - 1:
                raise ValueError("the last layer's outputs are the model's outputs; feature_map pruning is not allowed there")
            lin = nn.Linear(n, spec.out_features)
            if init is not None and init[i] is not None:
                load_init(lin, init[i], f"layer l{i}")
            grouping = Grouping(tuple(lin.weight.shape), spec.granularity, spec.block)
            mask = None if masks is None else masks[i]
            attach_weight_chain(lin, spec, grouping, self.method, mask, masks is not None, train_cfg, seed + i,
                                where=f"layer l{i}")
            self.linears.append(lin)
            n = spec.out_features

    def weighted_modules(self) -> list[nn.Module]:
        return list(self.linears)

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_q(x)
        for lin, spec, bias_q, output_q, pruner in zip(
            self.linears, self.specs, self.bias_q, self.output_q, self.pruners()
        ):
            w = lin.weight  # evaluates the chain; the pruner records its mask
            b = self._mask_bias(bias_q(lin.bias), pruner)
            x = output_q(nn.functional.linear(x, w, b))
            if spec.relu:
                x = torch.relu(x)
        return x

    # -- export ----------------------------------------------------------------------
    @torch.no_grad()
    def hard_masks(self) -> list[torch.Tensor]:
        """Every layer's export mask at structure level ``[G, n]``, checked exactly k-of-n
        (a dense layer: all ones)."""
        out = []
        for i, (lin, spec, pruner) in enumerate(zip(self.linears, self.specs, self.pruners())):
            if pruner is None:
                out.append(torch.ones(lin.out_features, lin.in_features))
                continue
            m = pruner.hard_mask(self.quantized_weight(i)).detach().float()
            check_kofn(m, spec.k, where=f"layer l{i} ({pruner.grouping.describe()})")
            out.append(m)
        return out

    @torch.no_grad()
    def export(self, name: str = "kofn_mlp") -> Model:
        """The IR of this model: eval-mode k-of-n masks and integer codes (round half up).

        Feature-map pruned neurons are removed, with the next layer's inputs; every row
        of a layer stores the same number of entries (the fixed stride): rows that lost
        entries to a removed input are padded with zero weights at unused inputs, which
        changes no output."""
        layers = []
        fmt_in = self.input_fmt
        kept_in = np.arange(self.n_inputs)
        for i, (lin, spec, pruner, m) in enumerate(zip(self.linears, self.specs, self.pruners(), self.hard_masks())):
            w_codes = quantize(self.quantized_weight(i).double().cpu().numpy(), spec.weight)
            b_codes = quantize(lin.bias.detach().double().cpu().numpy(), spec.bias)
            if pruner is None:
                wmask = np.ones(w_codes.shape, dtype=bool)
                stride = len(kept_in)
            else:
                wmask = pruner.grouping.expand(m).cpu().numpy().astype(bool)
                stride = row_stride(spec.granularity, spec.k, len(kept_in), spec.block)
            rows = np.arange(lin.out_features)
            if pruner is not None and spec.granularity == "feature_map":
                rows = np.flatnonzero(m.reshape(-1).cpu().numpy())
            sub = wmask[np.ix_(rows, kept_in)]
            idx = fixed_stride_rows(sub, stride)
            w_sub = w_codes[np.ix_(rows, kept_in)] * sub  # padding entries carry weight 0
            layers.append(
                DenseLayer(
                    name=f"l{i}",
                    n=len(kept_in),
                    indices=idx,
                    weights=np.take_along_axis(w_sub, idx, axis=1),
                    bias=b_codes[rows],
                    input_fmt=fmt_in,
                    weight_fmt=spec.weight,
                    bias_fmt=spec.bias,
                    output_fmt=spec.output,
                    relu=spec.relu,
                )
            )
            fmt_in = spec.output
            kept_in = rows
        return Model(name=name, layers=tuple(layers), meta={"method": self.method})
