"""A quantization-aware, k-out-of-n masked MLP and its export to :mod:`kofn.ir`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..fixed import FixedFormat, quantize
from ..ir import DenseLayer, Model
from .dpp import DPPMask
from .masks import check_kofn
from .quant import FakeQuant

__all__ = ["LayerSpec", "KofnMLP"]


@dataclass(frozen=True)
class LayerSpec:
    """One Linear layer: ``out_features`` rows each keeping ``k`` inputs, and its formats."""

    out_features: int
    k: int
    weight: FixedFormat
    bias: FixedFormat
    output: FixedFormat
    relu: bool = True


class KofnMLP(nn.Module):
    """Input quantizer, then per layer: Linear with ``weight = DPPMask(FakeQuant(w))``,
    fake-quantized bias, and output requantization (round half up, saturate, ReLU).

    ``set_quantize(False)`` runs the same masked network in floating point (the
    "float" accuracy of the report).
    """

    def __init__(
        self,
        n_inputs: int,
        input_fmt: FixedFormat,
        layers: Sequence[LayerSpec],
        dpp_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_fmt = input_fmt
        self.specs = tuple(layers)
        self.input_q = FakeQuant(input_fmt)
        self.linears = nn.ModuleList()
        self.bias_q = nn.ModuleList(FakeQuant(spec.bias) for spec in self.specs)
        self.output_q = nn.ModuleList(FakeQuant(spec.output) for spec in self.specs)
        n = n_inputs
        for spec in self.specs:
            if not 1 <= spec.k <= n:
                raise ValueError(f"k={spec.k} must be in 1..{n} (the layer's inputs)")
            lin = nn.Linear(n, spec.out_features)
            parametrize.register_parametrization(lin, "weight", FakeQuant(spec.weight))
            parametrize.register_parametrization(
                lin, "weight", DPPMask(lin.weight, spec.k, init_scale=dpp_init_scale)
            )
            self.linears.append(lin)
            n = spec.out_features

    # -- helpers ---------------------------------------------------------------------
    def dpp_masks(self) -> list[DPPMask]:
        return [lin.parametrizations.weight[1] for lin in self.linears]

    def set_tau(self, tau: float) -> None:
        for m in self.dpp_masks():
            m.tau = tau

    def set_quantize(self, enabled: bool) -> None:
        """Switch every fake quantizer (input, weights, biases, outputs) on or off."""
        for m in self.modules():
            if isinstance(m, FakeQuant):
                m.enabled = enabled

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_q(x)
        for lin, spec, bias_q, output_q in zip(self.linears, self.specs, self.bias_q, self.output_q):
            x = output_q(nn.functional.linear(x, lin.weight, bias_q(lin.bias)))
            if spec.relu:
                x = torch.relu(x)
        return x

    # -- export ----------------------------------------------------------------------
    @torch.no_grad()
    def export(self, name: str = "kofn_mlp") -> Model:
        """The IR of this model: eval-mode top-k masks and integer codes (round half up)."""
        layers = []
        fmt_in = self.input_fmt
        for i, (lin, spec) in enumerate(zip(self.linears, self.specs)):
            dpp = lin.parametrizations.weight[1]
            dpp_was = dpp.training
            dpp.eval()
            mask = dpp.mask()
            dpp.train(dpp_was)
            check_kofn(mask, spec.k, where=f"layer l{i}")
            idx = torch.sort(mask.nonzero()[:, 1].view(mask.shape[0], spec.k), dim=1).values
            w_real = lin.parametrizations.weight.original.detach().double().cpu().numpy()
            w_codes = quantize(w_real, spec.weight)
            idx_np = idx.cpu().numpy()
            layers.append(
                DenseLayer(
                    name=f"l{i}",
                    n=lin.in_features,
                    indices=idx_np,
                    weights=np.take_along_axis(w_codes, idx_np, axis=1),
                    bias=quantize(lin.bias.detach().double().cpu().numpy(), spec.bias),
                    input_fmt=fmt_in,
                    weight_fmt=spec.weight,
                    bias_fmt=spec.bias,
                    output_fmt=spec.output,
                    relu=spec.relu,
                )
            )
            fmt_in = spec.output
        return Model(name=name, layers=tuple(layers))
