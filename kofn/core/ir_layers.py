"""The IR's weighted layer classes (dense, convolution): frozen dataclasses holding numpy
integer arrays and formats; the layers without weights are in :mod:`kofn.core.ir_plain`.

Each validates itself on construction (shapes, ascending k-of-n rows, codes within their
formats, the accumulator).  :mod:`kofn.core.ir` chains them into a :class:`Model` and
saves and loads them; import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import AccumulatorFormat, FixedFormat, accumulator_format, check_rounding
from .rules import conv_out_size

__all__ = ["DenseLayer", "Conv2dLayer"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.int64, copy=True)
    a.setflags(write=False)
    return a


def _check_codes(where: str, weights: np.ndarray, bias: np.ndarray, weight_fmt: FixedFormat,
                 bias_fmt: FixedFormat) -> None:
    """Weight and bias codes lie in their (signed) formats."""
    for arr, fmt, what in ((weights, weight_fmt, "weight"), (bias, bias_fmt, "bias")):
        if arr.size and (arr.min() < fmt.min_int or arr.max() > fmt.max_int):
            raise ValueError(f"{where}: a {what} code is outside {fmt.describe()}")
    if not weight_fmt.signed or not bias_fmt.signed:
        raise ValueError(f"{where}: weight and bias formats must be signed")


def _check_rounding(rounding, where: str) -> None:
    try:
        check_rounding(rounding)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _scatter_rows(n: int, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``[rows, n]`` int64 matrix holding ``weights[r, j]`` at column ``indices[r, j]``, else 0."""
    full = np.zeros((indices.shape[0], n), dtype=np.int64)
    np.put_along_axis(full, indices, weights, axis=1)
    return full


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """A dense layer where every output neuron keeps exactly ``k`` of its ``n`` inputs.

    ``indices[r]`` lists, ascending, the inputs row ``r`` keeps; ``weights[r, j]`` is
    the integer code (``weight_fmt``) of the weight on input ``indices[r, j]``.

    ``banks`` P > 1 (the ``bank`` granularity): input ``i`` lies in bank ``i % P`` and every
    row keeps exactly ``k / P`` inputs of every bank; the hardware then runs P lanes, lane p
    reading bank p only (:func:`kofn.core.rules.bank_order`).
    """

    name: str
    n: int
    indices: np.ndarray  # [rows, k] int64, ascending per row, unique
    weights: np.ndarray  # [rows, k] int64 codes of weight_fmt
    bias: np.ndarray  # [rows] int64 codes of bias_fmt
    input_fmt: FixedFormat
    weight_fmt: FixedFormat
    bias_fmt: FixedFormat
    output_fmt: FixedFormat
    relu: bool
    banks: int = 1
    rounding: str = "half_up"  # the requantization's rounding (kofn.core.fixed.ROUNDINGS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", _frozen(self.indices))
        object.__setattr__(self, "weights", _frozen(self.weights))
        object.__setattr__(self, "bias", _frozen(self.bias))
        idx, w, b = self.indices, self.weights, self.bias
        where = f"layer {self.name!r}"
        if idx.ndim != 2 or w.shape != idx.shape:
            raise ValueError(f"{where}: indices {idx.shape} and weights {w.shape} must both be [rows, k]")
        if b.shape != (idx.shape[0],):
            raise ValueError(f"{where}: bias shape {b.shape} != ({idx.shape[0]},)")
        if not 1 <= self.k <= self.n:
            raise ValueError(f"{where}: k={self.k} must be in 1..n={self.n}")
        if idx.min() < 0 or idx.max() >= self.n:
            raise ValueError(f"{where}: an index is outside 0..{self.n - 1}")
        if self.k > 1 and np.any(np.diff(idx, axis=1) <= 0):
            raise ValueError(f"{where}: indices must be strictly ascending in every row")
        _check_codes(where, w, b, self.weight_fmt, self.bias_fmt)
        _check_rounding(self.rounding, where)
        _check_banks(idx, self.n, self.banks, where)
        self.accumulator  # validates the bias alignment and width

    @property
    def rows(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    @property
    def accumulator(self) -> AccumulatorFormat:
        return accumulator_format(self.input_fmt, self.weight_fmt, self.bias_fmt, self.k)

    kind = "dense"
    image = False  # reads and writes vectors
    weighted = True  # has weights, a MAC core and ROMs

    @property
    def in_size(self) -> int:
        return self.n

    @property
    def out_size(self) -> int:
        return self.rows

    @property
    def field_indices(self) -> np.ndarray:
        """Input index of every stored entry, ``[rows, k]`` (here: ``indices``)."""
        return self.indices

    @property
    def field_weights(self) -> np.ndarray:
        """Weight code of every stored entry, ``[rows, k]`` (here: ``weights``)."""
        return self.weights

    def dense_weights(self) -> np.ndarray:
        """The ``[rows, n]`` integer weight matrix with zeros where the mask prunes."""
        return _scatter_rows(self.n, self.field_indices, self.field_weights)

    def to_json(self) -> dict:
        return {
            "kind": "dense",
            "name": self.name,
            "n": self.n,
            "k": self.k,
            "rows": self.rows,
            "relu": self.relu,
            "banks": self.banks,
            "input_fmt": self.input_fmt.to_dict(),
            "weight_fmt": self.weight_fmt.to_dict(),
            "bias_fmt": self.bias_fmt.to_dict(),
            "output_fmt": self.output_fmt.to_dict(),
            **({"rounding": self.rounding} if self.rounding != "half_up" else {}),
        }


def _check_banks(idx: np.ndarray, n: int, banks: int, where: str) -> None:
    """``bank`` layers: P divides n and k, and every row keeps exactly k/P inputs of each bank."""
    banks = int(banks)
    if banks < 1:
        raise ValueError(f"{where}: banks must be >= 1, got {banks}")
    if banks == 1:
        return
    k = idx.shape[1]
    if n % banks or k % banks:
        raise ValueError(f"{where}: banks P={banks} must divide both n={n} and k={k}")
    counts = np.stack([np.count_nonzero(idx % banks == p, axis=1) for p in range(banks)], axis=1)
    bad = np.argwhere(counts != k // banks)
    if len(bad):
        r, p = (int(v) for v in bad[0])
        raise ValueError(f"{where}: row {r} keeps {int(counts[r, p])} inputs of bank {p}, expected exactly "
                         f"k/P = {k // banks} (bank p holds the inputs i with i mod {banks} = p)")


def _check_kofn_rows(idx: np.ndarray, n: int, where: str, what: str) -> None:
    if idx.ndim != 2 or idx.shape[1] < 1:
        raise ValueError(f"{where}: {what} must be [rows, k] with k >= 1, got {idx.shape}")
    if idx.shape[1] > n:
        raise ValueError(f"{where}: k={idx.shape[1]} must be in 1..n={n}")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"{where}: a {what} entry is outside 0..{n - 1}")
    if idx.shape[1] > 1 and np.any(np.diff(idx, axis=1) <= 0):
        raise ValueError(f"{where}: {what} must be strictly ascending in every row")


@dataclass(frozen=True, eq=False)
class Conv2dLayer:
    """A 2-D convolution where every filter keeps exactly ``k`` structures of its receptive field.

    Activations are laid out HWC: an ``in_shape = (H, W, C_in)`` image is the vector
    ``x[(y * W + x) * C_in + c]``, which is also the order pixels and channels arrive on
    the AXI4-Stream.  A filter's receptive field (window) is ``K * K * C_in`` values in
    the same order: field index ``f = (ky * K + kx) * C_in + c`` (tap ``t = ky * K + kx``).
    Zero padding of ``pad`` pixels surrounds the image; ``stride`` is the same on both axes.

    ``granularity`` sets what ``indices`` and ``weights`` hold per filter (row):

    * ``weight``: ``indices[r]`` are ``k`` ascending field indices, ``weights[r, j]`` the
      code of the weight at field index ``indices[r, j]``;
      With ``banks`` P > 1 (the ``bank`` granularity) field index ``f`` lies in bank
      ``f % P`` and every filter keeps exactly ``k / P`` of each bank (see :class:`DenseLayer`);
    * ``kernel``: ``indices[r]`` are ``k`` ascending input channels, each kept as a whole
      ``K x K`` kernel; ``weights[r, j * K * K + t]`` is the code of tap ``t`` of kernel ``j``.

    The arithmetic of one output pixel of one filter is :func:`kofn.core.fixed.dense_layer`
    over the window (see :attr:`field_indices` and :attr:`field_weights`).
    """

    name: str
    in_shape: tuple[int, int, int]  # (H, W, C_in)
    kernel: int
    stride: int
    pad: int
    granularity: str
    indices: np.ndarray  # [C_out, k]
    weights: np.ndarray  # [C_out, k] (weight) or [C_out, k * K * K] (kernel)
    bias: np.ndarray  # [C_out]
    input_fmt: FixedFormat
    weight_fmt: FixedFormat
    bias_fmt: FixedFormat
    output_fmt: FixedFormat
    relu: bool
    banks: int = 1
    rounding: str = "half_up"  # the requantization's rounding (kofn.core.fixed.ROUNDINGS)

    kind = "conv"
    image = True  # reads and writes HWC images
    weighted = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        for f in ("indices", "weights", "bias"):
            object.__setattr__(self, f, _frozen(getattr(self, f)))
        where = f"layer {self.name!r}"
        if len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise ValueError(f"{where}: in_shape must be (H, W, C_in) >= 1, got {self.in_shape}")
        h, w, _ = self.in_shape
        if not 1 <= self.kernel <= 7:
            raise ValueError(f"{where}: kernel {self.kernel} must be in 1..7")
        if self.stride < 1 or not 0 <= self.pad < self.kernel:
            raise ValueError(f"{where}: stride {self.stride} must be >= 1 and pad {self.pad} in 0..{self.kernel - 1}")
        if min(conv_out_size(h, self.kernel, self.stride, self.pad), conv_out_size(w, self.kernel, self.stride, self.pad)) < 1:
            raise ValueError(f"{where}: a {self.kernel}x{self.kernel} kernel does not fit the {h}x{w} input")
        if self.granularity not in ("weight", "kernel"):
            raise ValueError(f"{where}: granularity must be 'weight' or 'kernel', got {self.granularity!r}")
        idx, wts, b = self.indices, self.weights, self.bias
        _check_kofn_rows(idx, self.n if self.granularity == "weight" else self.in_channels, where,
                         "field index" if self.granularity == "weight" else "channel")
        if wts.shape != (idx.shape[0], self.k_eff):
            raise ValueError(f"{where}: weights {wts.shape} must be [{idx.shape[0]}, {self.k_eff}]")
        if b.shape != (idx.shape[0],):
            raise ValueError(f"{where}: bias shape {b.shape} != ({idx.shape[0]},)")
        _check_codes(where, wts, b, self.weight_fmt, self.bias_fmt)
        _check_rounding(self.rounding, where)
        if self.banks != 1 and self.granularity != "weight":
            raise ValueError(f"{where}: banks apply to weight-level convolutions only")
        _check_banks(idx, self.n, self.banks, where)
        self.accumulator

    @property
    def in_channels(self) -> int:
        return self.in_shape[2]

    @property
    def rows(self) -> int:
        """Filters (output channels)."""
        return int(self.indices.shape[0])

    @property
    def taps(self) -> int:
        """``K * K``."""
        return self.kernel * self.kernel

    @property
    def n(self) -> int:
        """Receptive-field size ``K * K * C_in`` (the weight-level n)."""
        return self.taps * self.in_channels

    @property
    def k(self) -> int:
        """Kept structures per filter: weights (weight level) or kernels (kernel level)."""
        return int(self.indices.shape[1])

    @property
    def k_eff(self) -> int:
        """Weights stored per filter: ``k`` or ``k * K * K``."""
        return self.k * (self.taps if self.granularity == "kernel" else 1)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, _ = self.in_shape
        return (conv_out_size(h, self.kernel, self.stride, self.pad),
                conv_out_size(w, self.kernel, self.stride, self.pad), self.rows)

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def field_indices(self) -> np.ndarray:
        """Window index of every stored weight, ``[C_out, k_eff]`` (kernel level: ``t * C_in + c_j``)."""
        if self.granularity == "weight":
            return self.indices
        t = np.arange(self.taps)
        return (t[None, None, :] * self.in_channels + self.indices[:, :, None]).reshape(self.rows, -1)

    @property
    def field_weights(self) -> np.ndarray:
        return self.weights

    @property
    def accumulator(self) -> AccumulatorFormat:
        return accumulator_format(self.input_fmt, self.weight_fmt, self.bias_fmt, self.k_eff)

    def dense_weights(self) -> np.ndarray:
        """``[C_out, K*K*C_in]`` weight codes over the whole window, zeros where pruned."""
        return _scatter_rows(self.n, self.field_indices, self.field_weights)

    def to_json(self) -> dict:
        return {
            "kind": "conv",
            "name": self.name,
            "in_shape": list(self.in_shape),
            "out_channels": self.rows,
            "kernel": self.kernel,
            "stride": self.stride,
            "pad": self.pad,
            "granularity": self.granularity,
            "k": self.k,
            "relu": self.relu,
            "banks": self.banks,
            "input_fmt": self.input_fmt.to_dict(),
            "weight_fmt": self.weight_fmt.to_dict(),
            "bias_fmt": self.bias_fmt.to_dict(),
            "output_fmt": self.output_fmt.to_dict(),
            **({"rounding": self.rounding} if self.rounding != "half_up" else {}),
        }
