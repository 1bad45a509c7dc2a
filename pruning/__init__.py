"""Training side (torch): k-out-of-n masks as parametrizations, fixed-point QAT, export to the IR."""

from .dpp import DPPMask
from .masks import check_kofn, kofn_topk, relaxed_khot
from .model import KofnMLP, LayerSpec
from .quant import FakeQuant, fake_quant, round_half_up_ste
from .train import TrainHistory, TrainSettings, accuracy, train

__all__ = [
    "DPPMask",
    "FakeQuant",
    "KofnMLP",
    "LayerSpec",
    "TrainHistory",
    "TrainSettings",
    "accuracy",
    "check_kofn",
    "fake_quant",
    "kofn_topk",
    "relaxed_khot",
    "round_half_up_ste",
    "train",
]
