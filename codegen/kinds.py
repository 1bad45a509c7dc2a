"""The per-kind handlers of code generation, keyed by IR layer class.

    handler(layer).pack(layer, lanes)      # no dispatch on the layer's kind string

Each kind's code lives in its own module (:mod:`kofn.codegen.dense`,
:mod:`kofn.codegen.conv`, :mod:`kofn.codegen.maxpool`, :mod:`kofn.codegen.gap`) behind the interface of
:class:`kofn.codegen.handler.Handler`.  A new layer kind is a new handler registered here."""

from __future__ import annotations

from ..core.ir import Conv2dLayer, DenseLayer, GlobalAvgPoolLayer, MaxPool2dLayer
from .conv import ConvHandler
from .dense import DenseHandler
from .gap import GapHandler
from .handler import Handler
from .maxpool import MaxPoolHandler

__all__ = ["HANDLERS", "handler", "rtl_modules", "reserved_module_names"]

#: IR layer class -> its handler.  The order is the order of the RTL modules in filelists.
HANDLERS: dict[type, Handler] = {
    DenseLayer: DenseHandler(),
    Conv2dLayer: ConvHandler(),
    MaxPool2dLayer: MaxPoolHandler(),
    GlobalAvgPoolLayer: GapHandler(),
}


def handler(layer) -> Handler:
    """The handler of ``layer``'s IR class (or of its nearest registered base class)."""
    for cls in type(layer).__mro__:
        if cls in HANDLERS:
            return HANDLERS[cls]
    known = ", ".join(c.__name__ for c in HANDLERS)
    raise TypeError(f"no code generation for layer class {type(layer).__name__} "
                    f"(layer {getattr(layer, 'name', '?')!r}); known classes: {known}")


DF_MODULES = ("kofn_vecbuf", "kofn_df_ctrl", "kofn_axis_out")  # the dataflow top's own modules
DF_RESV_MODULE = "kofn_df_resv"  # a dataflow stage's output-bank reservation (kofn_df_ctrl, kofn_conv_df)
BANKBUF_MODULE = "kofn_bankbuf"  # a bank layer's input memories (dataflow)


def rtl_modules(layers=None, schedule: str = "sequential") -> list[str]:
    """The RTL modules ``layers`` instantiate (all kinds' when ``None``), submodules first."""
    kinds = list(HANDLERS.values())
    if layers is not None:
        used = [handler(L) for L in layers]
        kinds = [h for h in kinds if any(u is h for u in used)]
    out: list[str] = []
    for h in kinds:
        mods = h.df_modules if schedule == "dataflow" else h.modules
        out += [m for m in mods if m not in out]
    if schedule == "dataflow":
        out = [DF_RESV_MODULE] + out + list(DF_MODULES)
        if layers is None or any(handler(L).has_core and handler(L).df_mem(L) for L in layers):
            out.insert(out.index("kofn_vecbuf") + 1, BANKBUF_MODULE)
    return out


def reserved_module_names() -> frozenset[str]:
    """Every module name kofn's RTL may contain besides the top: a top of one of these names
    would clash with it."""
    from .templating import template_dir

    ecp5 = {f.stem for f in (template_dir() / "verilog" / "ecp5").glob("*.sv")}  # kofn synth --family ecp5
    return frozenset(rtl_modules(None, "dataflow")) | frozenset(rtl_modules(None, "sequential")) | ecp5
