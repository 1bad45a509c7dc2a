"""Training side (torch): k-out-of-n masks as parametrizations, fixed-point QAT, export to the IR."""

from .cnn import ConvSpec, KofnCNN, PoolSpec
from .groups import GRANULARITIES, Grouping, KofnMaskError, check_kofn
from .interop import masks_from_torch_ao
from .masks import kofn_topk, relaxed_khot
from .methods import (
    DPPPruner,
    DTPPruner,
    FixedPruner,
    GradualPruner,
    KofnPruner,
    MagnitudePruner,
    PSPPruner,
    RandomPruner,
    SRSTEPruner,
    make_pruner,
    sinkhorn_kofn,
)
from .metrics import layer_metrics, model_metrics, selection_metrics
from .model import KofnMLP, LayerSpec
from .quant import FakeQuant, fake_quant, round_half_up_ste
from .train import TrainHistory, accuracy, train

__all__ = [
    "GRANULARITIES",
    "ConvSpec",
    "KofnCNN",
    "PoolSpec",
    "DPPPruner",
    "DTPPruner",
    "FakeQuant",
    "FixedPruner",
    "GradualPruner",
    "Grouping",
    "KofnMLP",
    "KofnMaskError",
    "KofnPruner",
    "LayerSpec",
    "MagnitudePruner",
    "PSPPruner",
    "RandomPruner",
    "SRSTEPruner",
    "TrainHistory",
    "accuracy",
    "check_kofn",
    "fake_quant",
    "kofn_topk",
    "layer_metrics",
    "make_pruner",
    "masks_from_torch_ao",
    "model_metrics",
    "relaxed_khot",
    "round_half_up_ste",
    "selection_metrics",
    "sinkhorn_kofn",
    "train",
]
