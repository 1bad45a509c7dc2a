"""One typed description of a layer before training: what a ``[[layers]]`` table of a flow
config says, what training builds its modules from, what the ONNX import and the test
designs produce.

:class:`DenseSpec`, :class:`ConvSpec` and :class:`PoolSpec` are frozen dataclasses.  Each
knows its shape rule and its validity rules (:meth:`validate` against the input shape,
returning the output shape) and raises :class:`kofn.core.errors.ConfigError` naming the
key.  :func:`~kofn.core.wiring.validate_graph` checks a whole stack (a chain or a graph, :func:`~kofn.core.wiring.wiring`) once, including the rules that span
layers (images before vectors, the last layer dense).  The trained, integer form of a
layer is the IR (:mod:`kofn.core.ir`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

from .errors import fail
from .fixed import FixedFormat
from .names import INPUT
from .wiring import Wiring, arity, validate_graph, wiring  # noqa: F401  (re-exported)
from .rules import bank_lanes, conv_out_size, default_bank_lanes, row_stride

__all__ = ["DenseSpec", "ConvSpec", "PoolSpec", "LayerSpec", "LAYER_SPECS", "validate_graph", "wiring", "Wiring", "AddSpec", "GapSpec", "INPUT", "arity", "check_size",
           "MAX_WEIGHTS", "MAX_VALUES"]

#: Sanity bounds, checked before any work (:func:`check_size`): the dense weights of the whole
#: network (training holds each with its mask parameters and optimizer state, and 2^24 kept
#: 8-bit weights are 128 Mbit, beyond the on-chip memory of most FPGAs) ...
MAX_WEIGHTS = 1 << 24
#: ... and the values of one layer's output (an image H x W x C, or a vector), which the
#: hardware buffers and training keeps per batch element.
MAX_VALUES = 1 << 20

_DENSE_GRAN = ("weight", "block", "feature_map", "bank")
_CONV_GRAN = ("weight", "kernel", "feature_map", "bank")


def _banks(spec, n: int) -> int | None:
    """P of a ``bank`` layer over ``n`` inputs: its lanes, the default rule's when unset, or
    ``None`` while ``lanes = "auto"`` is unresolved; ``None`` at every other granularity."""
    if spec.granularity != "bank":
        return None
    if spec.lanes is None:
        return default_bank_lanes(spec.k, n)
    return None if spec.lanes == "auto" else int(spec.lanes)


def _check_banks(spec, key: str, n: int) -> None:
    """A ``bank`` layer's P (its lanes) divides k and the n inputs: no padded bank."""
    if spec.granularity != "bank":
        return
    valid = bank_lanes(spec.k, n)
    hint = f"P dividing both k = {spec.k} and n = {n}: {', '.join(map(str, valid))}"
    p = _banks(spec, n)
    if p is None:  # "auto": folding picks among the valid P
        return
    if isinstance(spec.lanes, str) or not 1 <= p <= min(spec.k, n):
        fail(f"{key}.lanes", f"granularity 'bank' needs P in 1..{min(spec.k, n)} ({hint}), got {spec.lanes!r}")
    if spec.k % p:
        fail(f"{key}.lanes", f"granularity 'bank' keeps k/P of every bank: P = {p} does not divide k = {spec.k} "
                             f"({hint})")
    if n % p:
        fail(f"{key}.lanes", f"granularity 'bank' splits the {n} inputs into P banks of n/P: P = {p} does not "
                             f"divide {n} (banks of {n / p:.2f}; banks are not padded; {hint})")


def _check_formats(key: str, weight: FixedFormat, bias: FixedFormat) -> None:
    if not weight.signed:
        fail(f"{key}.weight.signed", "weights must be signed")
    if not bias.signed:
        fail(f"{key}.bias.signed", "biases must be signed")



def _check_lanes(key: str, lanes, row: int, what: str) -> None:
    if lanes is None or lanes == "auto":
        return
    if isinstance(lanes, str) or not 1 <= lanes <= row:
        fail(f"{key}.lanes", f"must be \"auto\" or in 1..{row} ({what}), got {lanes!r}")

@dataclass(frozen=True)
class DenseSpec:
    """A dense (Linear) layer: ``out_features`` neurons, each keeping ``k`` of its group.

    ``granularity``: ``weight`` (k of the n inputs per neuron), ``block`` (k of every
    ``block`` consecutive inputs, N:M), ``bank`` (k/P of each of the P banks of n/P inputs,
    input i in bank i mod P, P = ``lanes``) or ``feature_map`` (k of the ``out_features``
    neurons; the others are removed at export).  ``lanes`` is the hardware's MAC lanes P
    (``None``: the default rule)."""

    out_features: int
    k: int
    weight: FixedFormat = FixedFormat(8, 2)
    bias: FixedFormat = FixedFormat(16, 6)
    output: FixedFormat = FixedFormat(8, 3, signed=False)
    relu: bool = True
    granularity: str = "weight"
    block: int | None = None
    lanes: int | str | None = None  # P, or "auto" (kofn.codegen.folding picks it)
    name: str | None = None  # the IR layer's name (default l<i>): what other layers' inputs name
    inputs: tuple[str, ...] | None = None  # the tensors it reads (default: the layer before; "input": the model's)

    type: ClassVar[str] = "dense"
    image: ClassVar[bool] = False  # takes an image (True) or a vector (False)
    weighted: ClassVar[bool] = True
    passthrough: ClassVar[bool] = False  # its codes leave as they came (no output format of its own)

    def group_size(self, shape: tuple) -> int:
        """The n that k-of-n chooses from, given the input ``shape`` (a bank's n/P when P is known)."""
        n = int(math.prod(shape))
        if self.granularity == "bank":
            return n // (self.banks(n) or 1)
        return {"feature_map": self.out_features, "block": self.block}.get(self.granularity) or n

    def banks(self, n: int) -> int | None:
        """P of a ``bank`` layer over ``n`` inputs (``None``: not banked, or ``lanes = "auto"`` unresolved)."""
        return _banks(self, n)

    def group_k(self, n: int) -> int:
        """What each k-of-n group keeps: k, or k/P per bank."""
        return self.k // (self.banks(n) or 1)

    def row_k(self, n: int) -> int:
        """Entries per output neuron in hardware (the ROM's fixed stride) for ``n`` inputs."""
        return row_stride(self.granularity, self.k, n, self.block)

    def fan_in(self, shape: tuple) -> int:
        """The values one neuron reads, given the input ``shape``: all of them, flattened."""
        return int(math.prod(shape))

    def row_entries(self, shape: tuple) -> int:
        """:meth:`row_k` for the input ``shape``."""
        return self.row_k(self.fan_in(shape))

    def out_shape(self, shape: tuple) -> tuple:
        return (self.k if self.granularity == "feature_map" else self.out_features,)

    def describe(self, i: int) -> str:
        what = {"weight": "n", "feature_map": "neurons", "block": f"{self.block}", "bank": "n banked"}[self.granularity]
        return f"l{i} dense {self.out_features} {self.k}-of-{what}"

    def validate(self, key: str, shape: tuple, last: bool = False) -> tuple:
        """Check the layer against its input ``shape``; returns its output shape."""
        n = int(math.prod(shape))
        if self.out_features < 1:
            fail(f"{key}.out_features", f"must be >= 1, got {self.out_features}")
        if self.granularity == "kernel":
            fail(f"{key}.granularity", "'kernel' applies to Conv2d layers; a dense layer has no kernels")
        if self.granularity not in _DENSE_GRAN:
            fail(f"{key}.granularity", f"must be one of {', '.join(_DENSE_GRAN)}, got {self.granularity!r}")
        if self.granularity == "block":
            if self.block is None or self.block < 1 or n % self.block:
                fail(f"{key}.block", f"granularity 'block' needs a block M >= 1 dividing the layer's {n} inputs, "
                                     f"got {self.block}")
        elif self.block is not None:
            fail(f"{key}.block", f"only meaningful with granularity = 'block', not {self.granularity!r}")
        if self.granularity == "feature_map" and last:
            fail(f"{key}.granularity", "the last layer's outputs are the model's outputs; they cannot be pruned away")
        what = {"weight": "the layer's inputs n", "block": "the block M", "feature_map": "out_features",
                "bank": "the layer's inputs n"}
        n_group = n if self.granularity == "bank" else self.group_size(shape)
        if not 1 <= self.k <= n_group:
            fail(f"{key}.k", f"must be in 1..{n_group} ({what[self.granularity]}), got {self.k}")
        _check_lanes(key, self.lanes, self.row_k(n), "entries per row")
        _check_banks(self, key, n)
        _check_formats(key, self.weight, self.bias)
        return self.out_shape(shape)


@dataclass(frozen=True)
class ConvSpec:
    """A square ``kernel x kernel`` Conv2d layer of ``out_channels`` filters (+ folded
    BatchNorm when ``bn``).  ``k`` counts, per ``granularity``: weights of the filter's
    ``C_in*K*K`` (``weight``; ``bank``: k/P of each of P banks of the window, window index
    f = (ky*K + kx)*C_in + c in bank f mod P, P = ``lanes``), whole input kernels of its
    ``C_in`` (``kernel``) or filters of ``out_channels`` (``feature_map``; the others are
    removed at export)."""

    out_channels: int
    kernel: int
    k: int
    weight: FixedFormat = FixedFormat(8, 2)
    bias: FixedFormat = FixedFormat(16, 6)
    output: FixedFormat = FixedFormat(8, 3, signed=False)
    stride: int = 1
    padding: str = "valid"  # "valid" (none) or "same" (K // 2 zeros on every side, odd K)
    relu: bool = True
    granularity: str = "weight"
    bn: bool = False
    lanes: int | str | None = None  # P, or "auto" (kofn.codegen.folding picks it)
    name: str | None = None  # the IR layer's name (default l<i>): what other layers' inputs name
    inputs: tuple[str, ...] | None = None  # the tensors it reads (default: the layer before; "input": the model's)

    type: ClassVar[str] = "conv"
    image: ClassVar[bool] = True
    weighted: ClassVar[bool] = True
    passthrough: ClassVar[bool] = False

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding == "same" else 0

    def group_size(self, shape: tuple) -> int:
        taps = self.kernel * self.kernel
        n = shape[2] * taps
        if self.granularity == "bank":
            return n // (self.banks(n) or 1)
        return {"feature_map": self.out_channels, "kernel": shape[2]}.get(self.granularity) or n

    def banks(self, n: int) -> int | None:
        """P of a ``bank`` layer over a window of ``n`` values (see :meth:`DenseSpec.banks`)."""
        return _banks(self, n)

    def group_k(self, n: int) -> int:
        return self.k // (self.banks(n) or 1)

    def row_k(self, c_in: int) -> int:
        """Weights stored per filter for ``c_in`` input channels."""
        taps = self.kernel * self.kernel
        return {"weight": self.k, "bank": self.k, "kernel": self.k * taps}.get(self.granularity) or c_in * taps

    def fan_in(self, shape: tuple) -> int:
        """The values one filter reads, given the input ``shape`` (H, W, C_in): its window's C_in*K*K."""
        return shape[2] * self.kernel * self.kernel

    def row_entries(self, shape: tuple) -> int:
        """:meth:`row_k` for the input ``shape`` (H, W, C_in)."""
        return self.row_k(shape[2])

    def out_shape(self, shape: tuple) -> tuple:
        h, w, _ = shape
        return (conv_out_size(h, self.kernel, self.stride, self.pad), conv_out_size(w, self.kernel, self.stride, self.pad),
                self.k if self.granularity == "feature_map" else self.out_channels)

    def describe(self, i: int) -> str:
        what = {"weight": "n", "bank": "n banked", "kernel": "kernels", "feature_map": "filters"}[self.granularity]
        return f"l{i} conv {self.out_channels}@{self.kernel}x{self.kernel} {self.k}-of-{what}"

    def validate(self, key: str, shape: tuple, last: bool = False) -> tuple:
        if len(shape) != 3:
            fail(f"{key}.type", "conv needs an image; it cannot follow a dense layer")
        if self.out_channels < 1:
            fail(f"{key}.out_channels", f"must be >= 1, got {self.out_channels}")
        if not 1 <= self.kernel <= 7:
            fail(f"{key}.kernel", f"must be in 1..7 (a square K x K kernel), got {self.kernel}")
        if not 1 <= self.stride <= max(shape[0], shape[1]):  # a 1x1 conv with stride 2: a ResNet's projection
            fail(f"{key}.stride", f"must be in 1..{max(shape[0], shape[1])} (the input's larger side), got {self.stride}")
        if self.padding not in ("valid", "same"):
            fail(f"{key}.padding", f"must be 'valid' or 'same', got {self.padding!r}")
        if self.padding == "same" and self.kernel % 2 == 0:
            fail(f"{key}.padding", f"'same' needs an odd kernel (symmetric padding), got {self.kernel}")
        if self.granularity not in _CONV_GRAN:
            fail(f"{key}.granularity", f"a conv layer takes 'weight', 'bank', 'kernel' or 'feature_map', "
                                       f"got {self.granularity!r}")
        h, w, c = shape
        oh, ow, _ = self.out_shape(shape)
        if min(oh, ow) < 1:
            fail(f"{key}.kernel", f"a {self.kernel}x{self.kernel} kernel does not fit the {h}x{w} input")
        n_group = c * self.kernel * self.kernel if self.granularity == "bank" else self.group_size(shape)
        what = {"weight": "C_in*K*K weights", "bank": "C_in*K*K weights", "kernel": "C_in kernels",
                "feature_map": "out_channels"}
        if not 1 <= self.k <= n_group:
            fail(f"{key}.k", f"must be in 1..{n_group} ({what[self.granularity]}), got {self.k}")
        row = self.row_k(c)
        _check_lanes(key, self.lanes, row, "weights per filter")
        _check_banks(self, key, n_group)
        _check_formats(key, self.weight, self.bias)
        return self.out_shape(shape)


@dataclass(frozen=True)
class PoolSpec:
    """2x2 max pooling, stride 2 (trailing odd rows and columns are dropped)."""

    size: int = 2
    name: str | None = None
    inputs: tuple[str, ...] | None = None

    type: ClassVar[str] = "maxpool"
    image: ClassVar[bool] = True
    weighted: ClassVar[bool] = False
    passthrough: ClassVar[bool] = True
    lanes: ClassVar[None] = None

    def out_shape(self, shape: tuple) -> tuple:
        h, w, c = shape
        return (h // self.size, w // self.size, c)

    def describe(self, i: int) -> str:
        return f"l{i} maxpool {self.size}x{self.size}"

    def validate(self, key: str, shape: tuple, last: bool = False) -> tuple:
        if len(shape) != 3:
            fail(f"{key}.type", "maxpool needs an image; it cannot follow a dense layer")
        if self.size != 2:
            fail(f"{key}.size", f"only 2x2 max pooling is supported, got {self.size}")
        h, w, _ = shape
        if h < 2 or w < 2:
            fail(f"{key}.type", f"a 2x2 pool needs an image of at least 2x2, got {h}x{w}")
        return self.out_shape(shape)


@dataclass(frozen=True)
class AddSpec:
    """The join of a residual block: ``relu(inputs[0] + inputs[1])`` (the main branch first,
    the shortcut second), both inputs the same shape, aligned to the finer of their two
    formats by shifts, the sum rounded and saturated into ``output``
    (:func:`kofn.core.fixed.add_codes`)."""

    inputs: tuple[str, ...] | None = None
    output: FixedFormat = FixedFormat(8, 3, signed=False)
    relu: bool = True
    name: str | None = None

    type: ClassVar[str] = "add"
    image: ClassVar[bool] = True  # an image add (ResNet blocks); a vector add reads vectors
    weighted: ClassVar[bool] = False
    passthrough: ClassVar[bool] = False
    lanes: ClassVar[None] = None
    arity: ClassVar[int] = 2

    def out_shape(self, shape: tuple) -> tuple:
        return tuple(shape)

    def describe(self, i: int) -> str:
        return f"l{i} add"

    def validate(self, key: str, shape: tuple, last: bool = False) -> tuple:
        if last:
            fail(f"{key}.type", "the last layer must be dense (the add's sum feeds a classifier)")
        return tuple(shape)


@dataclass(frozen=True)
class GapSpec:
    """Global average pooling: an ``(H, W, C)`` image to its ``C`` channel means, rounded
    half up into ``output`` (:func:`kofn.core.fixed.avg_pool_codes`); a dense layer reads them."""

    output: FixedFormat = FixedFormat(8, 3, signed=False)
    name: str | None = None
    inputs: tuple[str, ...] | None = None

    type: ClassVar[str] = "gap"
    image: ClassVar[bool] = True
    weighted: ClassVar[bool] = False
    passthrough: ClassVar[bool] = False
    lanes: ClassVar[None] = None
    relu: ClassVar[bool] = False

    def out_shape(self, shape: tuple) -> tuple:
        return (1, 1, shape[2])

    def describe(self, i: int) -> str:
        return f"l{i} global average pool"

    def validate(self, key: str, shape: tuple, last: bool = False) -> tuple:
        if len(shape) != 3:
            fail(f"{key}.type", "gap (global average pooling) needs an image; it cannot follow a dense layer")
        return self.out_shape(shape)


LayerSpec = DenseSpec | ConvSpec | PoolSpec | AddSpec | GapSpec
LAYER_SPECS: dict[str, type] = {cls.type: cls for cls in (DenseSpec, ConvSpec, PoolSpec, AddSpec, GapSpec)}
"""``[[layers]]`` ``type`` -> spec class."""



def check_size(layers: Sequence[LayerSpec], input_shape: tuple, key: str = "layers") -> None:
    """Refuse a (valid) stack beyond :data:`MAX_WEIGHTS` dense weights or :data:`MAX_VALUES`
    values in one layer's output, naming the largest layer and the numbers."""
    wired = wiring(layers, input_shape, key)
    total, per = 0, []
    for i, layer in enumerate(layers):
        shape, out = wired.in_shapes[i][0], wired.out_shapes[i]
        if layer.weighted:
            fan_in = shape[2] * layer.kernel ** 2 if isinstance(layer, ConvSpec) else int(math.prod(shape))
            rows = layer.out_channels if isinstance(layer, ConvSpec) else layer.out_features
            per.append((rows * fan_in, i, rows, fan_in))
            total += rows * fan_in
        values = int(math.prod(layer.out_shape(shape)))
        if values > MAX_VALUES:
            what = "out_channels" if isinstance(layer, ConvSpec) else "out_features" if layer.weighted else "type"
            fail(f"{key}[{i}].{what}", f"its output holds {values:,} values ({' x '.join(map(str, out))}), more than "
                                       f"kofn's bound of {MAX_VALUES:,} per layer")
        shape = out
    if total > MAX_WEIGHTS:
        w, i, rows, fan_in = max(per)
        what = "out_channels" if isinstance(layers[i], ConvSpec) else "out_features"
        fail(f"{key}[{i}].{what}", f"the network would hold {total:,} dense weights ({key}[{i}] alone "
                                   f"{rows:,} x {fan_in:,} = {w:,}), more than kofn's bound of {MAX_WEIGHTS:,} "
                                   "(training keeps every weight with its mask and optimizer state)")
