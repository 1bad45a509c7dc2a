"""The quantization-aware, k-out-of-n masked network, built from :mod:`kofn.core.layers`
specs, and its export to :mod:`kofn.core.ir`.  The per-kind code lives in
:mod:`~kofn.pruning.kinds`."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..core.fixed import FixedFormat, quantize
from ..core.ir import Model
from ..core.layers import INPUT, LayerSpec, validate_graph, wiring
from .groups import Grouping, check_kofn
from .hparams import METHODS, TrainConfig
from .kinds import KINDS, Codes, Cursor
from .methods import KofnPruner
from .quant import FakeQuant
from .weights import Fold, attach_weight_chain, load_init

__all__ = ["KofnNet"]


class KofnNet(nn.Module):
    """Input quantizer, then per layer of ``layers`` (:class:`~kofn.core.layers.DenseSpec`,
    :class:`~kofn.core.layers.ConvSpec`, :class:`~kofn.core.layers.PoolSpec`) its torch
    step.  A weighted layer's weight is the parametrization chain ``pruner(FakeQuant(w))``
    (PSP: ``pruner(FakeQuant(alpha * w))``; a conv with ``bn``: ``pruner(FakeQuant(s * w))``,
    BatchNorm folded), its bias fake-quantized, its output requantized (round half up,
    saturate) and, with ``relu``, rectified.

    ``input_shape`` is ``(n,)`` (a vector model) or ``(H, W, C)`` (images, given as HWC
    vectors as they stream into the hardware).  ``method`` is one of
    :data:`kofn.pruning.METHODS`; ``dense`` keeps every input (k = n, no pruner), as does
    any layer whose k equals its group size n.  ``masks`` (one ``[G, n]`` or weight-shaped
    tensor or ``None`` per weighted layer) fixes given masks instead, e.g. from
    ``torch.ao.pruning``; ``init`` (one ``(weight, bias)`` or ``None`` per weighted layer)
    starts from given float weights.  ``set_quantize(False)`` runs the same masked network
    in floating point.

    ``layers`` lists every layer; ``specs``, ``mods`` and ``pruners()`` the weighted ones
    only, in order; ``bns`` holds the folded BatchNorms by weighted index.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        input_fmt: FixedFormat,
        layers: Sequence[LayerSpec],
        method: str = "dpp",
        train_cfg: TrainConfig | None = None,
        seed: int = 0,
        masks: Sequence[torch.Tensor | None] | None = None,
        init: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.layers = tuple(layers)
        validate_graph(self.layers, self.input_shape)
        self.wired = wiring(self.layers, self.input_shape)  # names, the tensors each layer reads, shapes
        if method != "dense" and method not in METHODS and masks is None:
            raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
        self.method = "fixed" if masks is not None else method
        self.input_fmt = input_fmt
        self.n_inputs = int(np.prod(self.input_shape))
        self.specs = tuple(s for s in self.layers if s.weighted)
        self.input_q = FakeQuant(input_fmt)
        self.mods = nn.ModuleList()  # weighted layers: Linear or Conv2d
        self.bns = nn.ModuleDict()
        self.bias_q = nn.ModuleList(FakeQuant(s.bias) for s in self.specs)
        self.output_q = nn.ModuleList(FakeQuant(s.output) for s in self.specs)
        # the requantization of each add and global average pool, by layer name
        self.join_q = nn.ModuleDict({n: FakeQuant(s.output) for n, s in zip(self.wired.names, self.layers)
                                     if not s.weighted and not s.passthrough})
        shapes = {INPUT: self.input_shape}  # torch shapes: a feature-map pruned layer keeps its rows until export
        for li, spec, kind, wi in self._walk():
            shape = shapes[self.wired.inputs[li][0]]
            shapes[self.wired.names[li]] = kind.shape(spec, shape)
            if wi is not None:
                where = f"layer {self.wired.names[li]}"
                mod = kind.module(spec, shape)
                if init is not None and init[wi] is not None:
                    load_init(mod, init[wi], where)
                bn = kind.batchnorm(spec)
                if bn is not None:
                    self.bns[str(wi)] = bn
                fan_in = int(np.prod(tuple(mod.weight.shape)[1:]))
                if spec.granularity == "bank" and spec.banks(fan_in) is None:
                    raise ValueError(f"{where}: granularity 'bank' needs its lanes P resolved before training "
                                     f"(lanes = \"auto\" is resolved by kofn.codegen.folding.resolve_bank_lanes)")
                grouping = Grouping(tuple(mod.weight.shape), spec.granularity, getattr(spec, "block", None),
                                    spec.banks(fan_in))
                attach_weight_chain(mod, spec, grouping, self.method, None if masks is None else masks[wi],
                                    masks is not None, train_cfg, seed + wi,
                                    before_quant=[] if bn is None else [Fold(bn)], where=where)
                self.mods.append(mod)

    def _walk(self) -> Iterator[tuple[int, LayerSpec, type, int | None]]:
        """``(layer index, spec, handler, weighted index or None)`` of every layer."""
        wi = 0
        for li, spec in enumerate(self.layers):
            yield li, spec, KINDS[type(spec)], wi if spec.weighted else None
            wi += spec.weighted

    def _bn(self, i: int):
        return self.bns[str(i)] if str(i) in self.bns else None

    # -- what training needs ---------------------------------------------------------
    def quantized_weight(self, i: int) -> torch.Tensor:
        """Weighted layer ``i``'s weight before its mask: its parametrization chain up to the
        pruner (``FakeQuant(pre_quant(w))``, BatchNorm folded first where there is one)."""
        chain = self.mods[i].parametrizations.weight
        w = chain.original
        for m in chain:
            if isinstance(m, KofnPruner):
                break
            w = m(w)
        return w

    def _float_bias(self, i: int) -> torch.Tensor:
        """Weighted layer ``i``'s float bias, BatchNorm folded where there is one."""
        b = self.mods[i].bias
        bn = self._bn(i)
        return b if bn is None else bn.shift(b)

    def _bias(self, i: int, pruner: KofnPruner | None) -> torch.Tensor:
        """The bias the forward pass adds: quantized, zero where a feature-map pruner
        removed the neuron or filter."""
        b = self.bias_q[i](self._float_bias(i))
        if pruner is not None:
            bm = pruner.grouping.bias_mask(pruner.last_mask)
            if bm is not None:
                b = b * bm.to(b.dtype)
        return b

    def pruners(self) -> list[KofnPruner | None]:
        """Each weighted layer's pruner (``None`` for a dense layer): its weight's last parametrization."""
        out = []
        for mod in self.mods:
            last = mod.parametrizations.weight[-1]
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

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_q(x)
        if len(self.input_shape) == 3:
            h, w, c = self.input_shape
            x = x.reshape(-1, h, w, c).permute(0, 3, 1, 2)  # NCHW for torch
        pruners = self.pruners()
        values: dict[str, torch.Tensor] = {}
        for li, spec, kind, wi in self._walk():
            ins = self.wired.in_values(li, values, x)
            name = self.wired.names[li]
            if wi is None:
                y = kind.forward(spec, *ins, *([self.join_q[name]] if name in self.join_q else []))
            else:
                mod = self.mods[wi]
                wgt = mod.weight  # evaluates the chain; the pruner records its mask
                b = self._bias(wi, pruners[wi])
                y = self.output_q[wi](kind.forward(spec, mod, self._bn(wi), ins[0], wgt, b, self.training))
                if spec.relu:
                    y = torch.relu(y)
            values[name] = y
        return values[self.wired.names[-1]]

    # -- export ----------------------------------------------------------------------
    @torch.no_grad()
    def hard_masks(self) -> list[torch.Tensor | None]:
        """Every weighted layer's export mask at structure level ``[G, n]``, checked exactly
        k-of-n (``None`` for a layer without pruner)."""
        out = []
        names = [self.wired.names[li] for li, _, _, wi in self._walk() if wi is not None]
        for i, (spec, pruner) in enumerate(zip(self.specs, self.pruners())):
            if pruner is None:
                out.append(None)
                continue
            m = pruner.hard_mask(self.quantized_weight(i)).detach().float()
            check_kofn(m, pruner.k, where=f"layer {names[i]} ({pruner.grouping.describe()})")
            out.append(m)
        return out

    @torch.no_grad()
    def to_ir(self, name: str = "kofn") -> Model:
        """The IR: eval-mode k-of-n masks, BatchNorm folded, integer codes (round half up).
        Feature-map pruned neurons and filters are removed, with the next layer's inputs;
        every row keeps the layer's fixed stride (see :mod:`~kofn.pruning.kinds`)."""
        was = self.training
        self.eval()
        shape = self.input_shape
        cursors = {INPUT: Cursor(shape, np.arange(shape[-1]), self.input_fmt)}  # per tensor
        masks, pruners = self.hard_masks(), self.pruners()
        layers = []
        names = self.wired.names
        for li, spec, kind, wi in self._walk():
            ins = [cursors[s] for s in self.wired.inputs[li]]
            if wi is None:
                layer, cursors[names[li]] = kind.to_ir(spec, names[li], *ins)
                layers.append(layer)
                continue
            cur = ins[0]
            pruner, m = pruners[wi], masks[wi]
            w_codes = quantize(self.quantized_weight(wi).double().cpu().numpy(), spec.weight)
            b_codes = quantize(self._float_bias(wi).double().cpu().numpy(), spec.bias)
            if pruner is None:
                full, gran = np.ones(w_codes.shape, dtype=bool), "dense"
            else:
                full, gran = pruner.grouping.expand(m).cpu().numpy().astype(bool), spec.granularity
            rows = np.flatnonzero(m.reshape(-1).cpu().numpy()) if gran == "feature_map" else np.arange(w_codes.shape[0])
            layer, cursors[names[li]] = kind.to_ir(spec, names[li], cur, Codes(w_codes, b_codes, full, rows, gran))
            layers.append(layer)
        self.train(was)
        return Model(name=name, layers=tuple(layers), meta={"method": self.method},
                     inputs=None if self.wired.is_chain else self.wired.inputs)

