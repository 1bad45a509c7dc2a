"""Training side (torch): k-out-of-n masks as parametrizations, fixed-point QAT, export to the IR.

Names load lazily, so ``kofn.pruning.hparams`` (the ``[train]`` settings, no torch) can be
read by the config without importing torch."""

from importlib import import_module

_EXPORTS = {
    "device": ["resolve_device", "device_settings"],
    "hparams": ["METHODS", "TrainConfig", "DPPConfig", "PSPConfig", "DTPConfig", "MagnitudeConfig", "GradualConfig",
                "SRSTEConfig"],
    "groups": ["GRANULARITIES", "Grouping", "KofnMaskError", "check_kofn"],
    "interop": ["masks_from_torch_ao"],
    "masks": ["kofn_topk", "relaxed_khot"],
    "methods": ["DPPPruner", "DTPPruner", "FixedPruner", "GradualPruner", "KofnPruner", "MagnitudePruner", "PSPPruner",
                "RandomPruner", "SRSTEPruner", "make_pruner", "sinkhorn_kofn"],
    "metrics": ["layer_metrics", "model_metrics", "selection_metrics"],
    "net": ["KofnNet"],
    "quant": ["FakeQuant", "fake_quant", "round_half_up_ste"],
    "trainer": ["TrainHistory", "accuracy", "train"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        mod = import_module(f".{_WHERE[name]}", __name__)
        globals().update({n: getattr(mod, n) for n in _EXPORTS[_WHERE[name]]})
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
