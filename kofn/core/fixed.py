"""Fixed-point arithmetic of kofn, defined once.

Every other part of kofn uses these rules: the quantization-aware training
(``kofn.pruning.quant``), the integer reference (``kofn.core.reference``), the
template context builders (``kofn.codegen``) and the tests.  The hardware
implements exactly the integer functions below.

Formats
-------
A :class:`FixedFormat` ``<width, int_bits>`` holds an integer ``q`` of ``width``
bits (two's complement when ``signed``) standing for the real value
``q * 2**-frac`` with ``frac = width - int_bits``.  ``int_bits`` counts the sign
bit for signed formats (the ``ap_fixed<W, I>`` convention), so
``FixedFormat(8, 1)`` spans ``[-1, 1 - 2**-7]`` and ``FixedFormat(8, 0, signed=False)``
spans ``[0, 1 - 2**-8]``.  ``int_bits`` may be negative or exceed ``width``.

Layer arithmetic
----------------
For one output neuron with kept inputs ``a_i`` (format A), weights ``w_i``
(format W) and bias ``b`` (format B)::

    acc = (b << (A.frac + W.frac - B.frac)) + sum_i a_i * w_i      # exact
    y   = relu(saturate(round_half_up(acc, A.frac + W.frac - O.frac), O))

* Products are exact; the accumulator format (:func:`accumulator_format`) has
  ``A.frac + W.frac`` fraction bits and enough integer bits that no sum of
  ``k`` products plus a bias can overflow it.
* Rounding is *round half up* (ties toward +inf):
  ``round_half_up(x, s) = floor((x + 2**(s-1)) / 2**s)``, i.e. add half an LSB
  and shift right arithmetically.  This is ``AP_RND`` in ``ap_fixed``.
* Saturation clamps to the output format's range (``AP_SAT``).
* ReLU, when enabled, comes last.  With an unsigned output format saturation
  already clamps negatives to 0.

Residual arithmetic (issue 28)
------------------------------
* **add** (a ResNet block's ``relu(main + shortcut)``): both inputs move to the finer of
  their two fractions by left shifts (exact), their sum is exact, then it is requantized
  into the output format by the rule above (:func:`add_codes`).
* **average pooling** over an area of ``n`` values: the exact sum, then
  ``round_half_up(sum * 2**(O.frac - I.frac) / n)``, saturated (:func:`avg_pool_codes`).
  For ``n`` a power of two this is a rounding shift; otherwise the hardware divides by the
  constant with one multiply and a shift, exact for every sum the layer can produce
  (:func:`const_divider`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FixedFormat",
    "AccumulatorFormat",
    "accumulator_frac",
    "accumulator_format",
    "quantize",
    "round_half_up",
    "round_half_up_shift",
    "round_shift",
    "ROUNDINGS",
    "check_rounding",
    "saturate",
    "requantize",
    "dense_layer",
    "add_codes",
    "div_round",
    "ConstDivider",
    "const_divider",
    "avg_pool_codes",
    "to_twos_complement",
    "from_twos_complement",
    "bits_for_range",
    "product_range",
    "MAX_INT_WIDTH",
]

#: Widest integer the reference evaluates in int64 without risk of overflow.
MAX_INT_WIDTH = 62


@dataclass(frozen=True)
class FixedFormat:
    """A fixed-point format ``<width, int_bits>``, signed or unsigned."""

    width: int
    int_bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or isinstance(self.width, bool):
            raise TypeError(f"width must be an int, got {self.width!r}")
        if not isinstance(self.int_bits, int) or isinstance(self.int_bits, bool):
            raise TypeError(f"int_bits must be an int, got {self.int_bits!r}")
        if not 1 <= self.width <= 32:
            raise ValueError(f"width must be in 1..32, got {self.width}")
        if self.int_bits > self.width:
            raise ValueError(
                f"width ({self.width}) is smaller than int_bits ({self.int_bits})"
            )
        if self.signed and self.width < 2:
            raise ValueError("a signed format needs at least 2 bits")

    @property
    def frac(self) -> int:
        """Number of fraction bits, ``width - int_bits``."""
        return self.width - self.int_bits

    @property
    def min_int(self) -> int:
        """Smallest representable integer code."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        """Largest representable integer code."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def scale(self) -> float:
        """Value of one LSB, ``2**-frac``."""
        return 2.0 ** (-self.frac)

    def to_real(self, q: np.ndarray | int) -> np.ndarray:
        """Real values of integer codes ``q`` (float64, exact)."""
        return np.asarray(q, dtype=np.float64) * self.scale

    def describe(self) -> str:
        """``ap_fixed``-style name, e.g. ``fixed<8,3>`` or ``ufixed<8,0>``."""
        return f"{'' if self.signed else 'u'}fixed<{self.width},{self.int_bits}>"

    def ap_type(self, quantize: bool = False, rounding: str = "half_up") -> str:
        """The ``ap_fixed`` type of this format, e.g. ``ap_ufixed<8,3>``.  With ``quantize``,
        conversions into it follow the layer's requantization: ``rounding``'s ``ap_fixed``
        mode (:data:`ROUNDINGS`: ``AP_RND`` for kofn's round half up) and ``AP_SAT``
        (saturate), e.g. ``ap_fixed<16,8,AP_RND,AP_SAT>``."""
        base = f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.int_bits}"
        return base + (f",{ROUNDINGS[check_rounding(rounding)]},AP_SAT>" if quantize else ">")

    def to_dict(self) -> dict:
        return {"width": self.width, "int_bits": self.int_bits, "signed": self.signed}

    @classmethod
    def from_dict(cls, d: dict) -> "FixedFormat":
        return cls(int(d["width"]), int(d["int_bits"]), bool(d.get("signed", True)))


@dataclass(frozen=True)
class AccumulatorFormat:
    """Signed accumulator of a layer: ``width`` bits, ``frac`` fraction bits."""

    width: int
    frac: int
    bias_shift: int  # left shift aligning the bias to the accumulator's LSB
    min_value: int  # smallest sum reachable (for documentation and tests)
    max_value: int  # largest sum reachable

    def ap_type(self) -> str:
        """The ``ap_fixed`` type holding every reachable sum exactly."""
        return f"ap_fixed<{self.width},{self.width - self.frac}>"


def bits_for_range(lo: int, hi: int) -> int:
    """Width of the smallest two's-complement integer that holds every value in [lo, hi]."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def product_range(act: FixedFormat, weight: FixedFormat) -> tuple[int, int]:
    """Smallest and largest exact product of an ``act`` code and a ``weight`` code."""
    corners = [a * w for a in (act.min_int, act.max_int) for w in (weight.min_int, weight.max_int)]
    return min(corners), max(corners)


def accumulator_frac(act: FixedFormat, weight: FixedFormat) -> int:
    """Fraction bits of a product ``act * weight``, and so of the accumulator: the bias and
    the output may have at most this many."""
    return act.frac + weight.frac


def accumulator_format(
    act: FixedFormat, weight: FixedFormat, bias: FixedFormat, k: int
) -> AccumulatorFormat:
    """The accumulator for ``k`` products ``act * weight`` plus one ``bias``.

    The width is derived from the exact extreme values, so it can never overflow.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    frac = accumulator_frac(act, weight)
    shift = frac - bias.frac
    if shift < 0:
        raise ValueError(
            f"bias has more fraction bits ({bias.frac}) than the accumulator "
            f"({act.frac} + {weight.frac}); widen the weight or input format or "
            "narrow the bias"
        )
    p_lo, p_hi = product_range(act, weight)
    lo = k * p_lo + (bias.min_int << shift)
    hi = k * p_hi + (bias.max_int << shift)
    width = bits_for_range(lo, hi)
    if width + 1 > MAX_INT_WIDTH:
        raise ValueError(f"accumulator would need {width} bits; at most {MAX_INT_WIDTH - 1} supported")
    return AccumulatorFormat(width=width, frac=frac, bias_shift=shift, min_value=lo, max_value=hi)


def round_half_up(x):
    """``floor(x + 1/2)`` elementwise, for numpy arrays and torch tensors alike.

    Written as ``y - y % 1`` (with ``y = x + 1/2``): ``%`` is a floor-modulo in both
    libraries, so the QAT fake quantizer (``kofn.pruning.quant``) calls this very
    function and cannot drift from the reference.
    """
    y = x + 0.5
    return y - y % 1


def quantize(x: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Real values to integer codes of ``fmt``: round half up, then saturate (int64)."""
    q = round_half_up(np.asarray(x, dtype=np.float64) * (2.0 ** fmt.frac))
    return np.clip(q, fmt.min_int, fmt.max_int).astype(np.int64)


#: A layer's requantization rounding -> its ``ap_fixed`` quantization mode.  ``half_up`` (ties
#: toward +inf) is kofn's own rule (training, export, the default of every layer);
#: ``half_even`` (ties to even: numpy's and QONNX's ``ROUND``, Brevitas's default) and ``floor``
#: (QONNX's ``FLOOR``) exist so that imported quantized models stay exact.  In hardware all
#: three are one add before the arithmetic right shift (:func:`round_shift`).
ROUNDINGS = {"half_up": "AP_RND", "half_even": "AP_RND_CONV", "floor": "AP_TRN"}


def check_rounding(rounding: str) -> str:
    """``rounding`` if it is one of :data:`ROUNDINGS`, else a ``ValueError``."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding {rounding!r}: expected one of {', '.join(ROUNDINGS)}")
    return rounding


def round_shift(x: np.ndarray, shift: int, rounding: str = "half_up") -> np.ndarray:
    """``x / 2**shift`` rounded by ``rounding`` on integers (a left shift when ``shift <= 0``).

    All three roundings are ``(x + c) >> shift`` (arithmetic shift: floor): ``half_up`` adds
    ``c = 2**(shift-1)``; ``floor`` adds 0; ``half_even`` adds ``2**(shift-1) - 1`` plus bit
    ``shift`` of ``x`` (the LSB the result would have when truncated): below a tie the sum stays
    under the next multiple, above it passes it, and at a tie it passes it exactly when that LSB
    is 1, i.e. when truncating would give an odd result.  The hardware adds the same ``c``."""
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << np.int64(-shift)
    check_rounding(rounding)
    s = np.int64(shift)
    if rounding == "floor":
        return x >> s
    half = np.int64(1) << np.int64(shift - 1)
    if rounding == "half_even":
        return (x + (half - 1) + ((x >> s) & 1)) >> s
    return (x + half) >> s


def round_half_up_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """``floor((x + 2**(shift-1)) / 2**shift)`` on integers; a left shift when ``shift < 0``
    (:func:`round_shift` with kofn's own rounding)."""
    return round_shift(x, shift, "half_up")


def saturate(x: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Clamp integer codes to ``fmt``'s range."""
    return np.clip(np.asarray(x, dtype=np.int64), fmt.min_int, fmt.max_int)


def requantize(acc: np.ndarray, acc_frac: int, out: FixedFormat, relu: bool,
               rounding: str = "half_up") -> np.ndarray:
    """Accumulator integers (``acc_frac`` fraction bits) to codes of ``out``.

    Round (half up unless the layer says otherwise: :func:`round_shift`), saturate, then ReLU
    if asked: the one rule used everywhere.
    """
    y = saturate(round_shift(acc, acc_frac - out.frac, rounding), out)
    return np.maximum(y, 0) if relu else y


def dense_layer(
    x: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    act: FixedFormat,
    weight: FixedFormat,
    bias_fmt: FixedFormat,
    out: FixedFormat,
    relu: bool,
    rounding: str = "half_up",
) -> np.ndarray:
    """One k-out-of-n dense layer on integer codes.

    ``x`` is ``[batch, n]``, ``indices`` and ``weights`` are ``[rows, k]``, ``bias``
    is ``[rows]``.  Returns ``[batch, rows]`` int64 codes of ``out``.
    """
    x = np.asarray(x, dtype=np.int64)
    k = indices.shape[1]
    accf = accumulator_format(act, weight, bias_fmt, k)
    gathered = x[:, indices]  # [batch, rows, k]
    acc = (gathered * weights[None].astype(np.int64)).sum(axis=2)
    acc = acc + (bias.astype(np.int64) << accf.bias_shift)[None]
    return requantize(acc, accf.frac, out, relu, rounding)


def add_codes(a: np.ndarray, a_fmt: FixedFormat, b: np.ndarray, b_fmt: FixedFormat, out: FixedFormat,
              relu: bool = False, rounding: str = "half_up") -> np.ndarray:
    """``relu(a + b)`` on integer codes: ``a`` (``a_fmt``) and ``b`` (``b_fmt``) shifted left
    to the finer fraction ``f = max(a_fmt.frac, b_fmt.frac)``, added exactly, then
    :func:`requantize` from ``f`` fraction bits into ``out`` (round, saturate, ReLU)."""
    f = max(a_fmt.frac, b_fmt.frac)
    a = np.asarray(a, dtype=np.int64) << np.int64(f - a_fmt.frac)
    b = np.asarray(b, dtype=np.int64) << np.int64(f - b_fmt.frac)
    return requantize(a + b, f, out, relu, rounding)


def div_round(num: np.ndarray, den: int) -> np.ndarray:
    """``round_half_up(num / den)`` on integers, exactly: ``floor((2 num + den) / (2 den))``
    (Python's floor division, so negative numerators round toward +inf at ties too)."""
    if den < 1:
        raise ValueError(f"the divisor must be >= 1, got {den}")
    return (2 * np.asarray(num, dtype=np.int64) + den) // (2 * den)


@dataclass(frozen=True)
class ConstDivider:
    """``round_half_up(x / den)`` for integers ``x`` in ``[lo, hi]`` as hardware computes it:
    ``((x + offset) * mult) >> shift`` minus ``bias``, one add, one multiply by a constant and
    a shift.  For an integer ``x``, ``round_half_up(x / den) = floor((x + den // 2) / den)``
    (for an odd ``den`` the half falls between two integers); ``offset = den // 2 + bias *
    den`` adds whole multiples of ``den`` so that the multiplier sees non-negative values only,
    and ``bias`` takes them off again."""

    den: int
    lo: int
    hi: int
    bias: int  # lo + offset >= 0
    offset: int
    mult: int
    shift: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=object)  # the product can pass 63 bits for wide sums
        y = ((x + self.offset) * self.mult) >> self.shift
        return np.asarray(y - self.bias, dtype=np.int64)

    @property
    def product_bits(self) -> int:
        """Width of the unsigned product ``(x + offset) * mult``."""
        return ((self.hi + self.offset) * self.mult).bit_length()


def const_divider(den: int, lo: int, hi: int) -> ConstDivider:
    """The :class:`ConstDivider` for ``den`` on ``[lo, hi]``.

    With ``n = x + offset`` in ``[0, N]`` and ``mult = ceil(2**shift / den)``, the error
    ``e = mult * den - 2**shift`` is below ``den``, so ``n * mult / 2**shift = n / den +
    n * e / (den * 2**shift)``; the excess is below ``1 / den`` whenever ``N * e < 2**shift``,
    and ``n / den`` is at least ``1 / den`` below the next integer unless it is one itself:
    the floor is exact.  ``shift = bit_length(N * den)`` guarantees ``N * e < N * den <=
    2**shift``."""
    if den < 1:
        raise ValueError(f"the divisor must be >= 1, got {den}")
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    bias = max(0, -((lo + den // 2) // den))
    offset = den // 2 + bias * den
    n_max = hi + offset
    shift = max(0, (n_max * den).bit_length())
    mult = -(-(1 << shift) // den)
    return ConstDivider(den, lo, hi, bias, offset, mult, shift)


def avg_pool_codes(x: np.ndarray, in_fmt: FixedFormat, out: FixedFormat, axis=(1, 2)) -> np.ndarray:
    """Average pooling on integer codes (global average pooling: ``axis`` the image's H and W
    of ``[batch, H, W, C]``): the exact sum over the ``n`` values of ``axis``, then
    ``round_half_up(sum * 2**(out.frac - in_fmt.frac) / n)``, saturated into ``out``."""
    x = np.asarray(x, dtype=np.int64)
    n = int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    total = x.sum(axis=axis)
    sh = out.frac - in_fmt.frac
    num = total << np.int64(max(sh, 0))
    return saturate(div_round(num, n << max(-sh, 0)), out)


def to_twos_complement(q: np.ndarray | int, width: int) -> np.ndarray:
    """Signed integers to their ``width``-bit two's-complement bit patterns (unsigned)."""
    q = np.asarray(q, dtype=np.int64)
    if np.any(q < -(1 << (width - 1))) or np.any(q >= (1 << width)):
        raise ValueError(f"value does not fit in {width} bits")
    return q & np.int64((1 << width) - 1)


def from_twos_complement(u: np.ndarray | int, width: int) -> np.ndarray:
    """``width``-bit patterns back to signed integers."""
    u = np.asarray(u, dtype=np.int64)
    return np.where(u >= (1 << (width - 1)), u - (1 << width), u)
