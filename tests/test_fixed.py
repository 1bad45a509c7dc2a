"""The fixed-point rules: directed edge cases with hand-computed values, plus properties."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kofn.core.fixed import (
    FixedFormat,
    FixedFormat as F,
    accumulator_format,
    add_codes,
    avg_pool_codes,
    const_divider,
    div_round,
    bits_for_range,
    from_twos_complement,
    quantize,
    requantize,
    round_half_up_shift,
    to_twos_complement,
)


def test_format_ranges():
    assert (FixedFormat(8, 1).min_int, FixedFormat(8, 1).max_int) == (-128, 127)
    assert (FixedFormat(8, 0, signed=False).min_int, FixedFormat(8, 0, signed=False).max_int) == (0, 255)
    assert FixedFormat(8, 3).frac == 5
    assert FixedFormat(6, -2).frac == 8  # negative int_bits: all bits are fraction
    with pytest.raises(ValueError, match="smaller than int_bits"):
        FixedFormat(4, 5)
    with pytest.raises(ValueError, match="at least 2 bits"):
        FixedFormat(1, 0, signed=True)


@pytest.mark.parametrize(
    "x, shift, want",
    [
        (5, 1, 3),  # 2.5 -> 3 (tie goes up)
        (-5, 1, -2),  # -2.5 -> -2 (tie goes up, toward +inf)
        (-6, 2, -1),  # -1.5 -> -1
        (6, 2, 2),  # 1.5 -> 2
        (7, 2, 2),  # 1.75 -> 2
        (-7, 2, -2),  # -1.75 -> -2
        (-3, 2, -1),  # -0.75 -> -1
        (-2, 2, 0),  # -0.5 -> 0
        (3, 0, 3),  # no shift
        (3, -2, 12),  # left shift
    ],
)
def test_round_half_up_ties(x, shift, want):
    assert int(round_half_up_shift(np.int64(x), shift)) == want


def test_requantize_saturates_and_relu():
    out = FixedFormat(8, 3)  # codes -128..127, frac 5
    # acc with frac 10: shift 5
    acc = np.array([10**9, -(10**9), (127 << 5) + 15, (127 << 5) + 16, -(128 << 5) - 16, -(128 << 5) - 17, -33])
    got = requantize(acc, 10, out, relu=False)
    np.testing.assert_array_equal(got, [127, -128, 127, 127, -128, -128, -1])
    np.testing.assert_array_equal(requantize(acc, 10, out, relu=True), [127, 0, 127, 127, 0, 0, 0])
    uout = FixedFormat(8, 3, signed=False)
    np.testing.assert_array_equal(requantize(np.array([-1, -(10**6), 8191, 8192]), 5, uout, relu=False), [0, 0, 255, 255])


def test_most_negative_products_fit_the_accumulator():
    a = FixedFormat(8, 1)  # signed input, -128 is reachable
    w = FixedFormat(8, 2)
    b = FixedFormat(8, 2)
    acc = accumulator_format(a, w, b, k=5)
    # the largest sum is 5 * (-128 * -128) + 127 << 7, the smallest 5 * (-128 * 127) - 128 << 7
    assert acc.max_value == 5 * 16384 + (127 << 7)
    assert acc.min_value == 5 * (-128 * 127) - (128 << 7)
    assert -(1 << (acc.width - 1)) <= acc.min_value and acc.max_value < (1 << (acc.width - 1))
    assert not (acc.max_value < (1 << (acc.width - 2)) and acc.min_value >= -(1 << (acc.width - 2)))  # minimal


def test_bias_with_too_many_fraction_bits_is_rejected():
    with pytest.raises(ValueError, match="bias has more fraction bits"):
        accumulator_format(FixedFormat(4, 2), FixedFormat(4, 2), FixedFormat(16, 2), 3)


def test_quantize_rounds_half_up_and_saturates():
    f = FixedFormat(4, 2)  # frac 2, codes -8..7
    np.testing.assert_array_equal(quantize(np.array([0.125, -0.125, 0.375, 1.0, 100.0, -100.0]), f), [1, 0, 2, 4, 7, -8])


@given(st.integers(-(1 << 40), 1 << 40), st.integers(1, 20))
def test_round_half_up_is_floor_of_x_plus_half(x, s):
    # exact rational check: floor(x / 2**s + 1/2) == floor((2x + 2**s) / 2**(s+1))
    assert int(round_half_up_shift(np.int64(x), s)) == (2 * x + (1 << s)) // (1 << (s + 1))


@given(st.integers(-(1 << 30), 1 << 30), st.integers(-(1 << 30), 1 << 30))
def test_bits_for_range_is_minimal(lo, hi):
    lo, hi = min(lo, hi), max(lo, hi)
    w = bits_for_range(lo, hi)
    assert -(1 << (w - 1)) <= lo and hi < (1 << (w - 1))
    if w > 1:
        assert not (-(1 << (w - 2)) <= lo and hi < (1 << (w - 2)))


@given(st.integers(2, 24), st.data())
def test_twos_complement_round_trip(width, data):
    v = data.draw(st.integers(-(1 << (width - 1)), (1 << (width - 1)) - 1))
    u = int(to_twos_complement(v, width))
    assert 0 <= u < (1 << width)
    assert int(from_twos_complement(u, width)) == v


@settings(max_examples=50)
@given(st.integers(2, 12), st.integers(-3, 6), st.booleans(), st.integers(2, 12), st.integers(-2, 4), st.integers(1, 64))
def test_accumulator_never_overflows(aw, ai, asg, ww, wi, k):
    if ai > aw or wi > ww or (asg and aw < 2) or ww < 2:
        return
    a, w = FixedFormat(aw, ai, asg), FixedFormat(ww, wi)
    b = FixedFormat(8, 8 - min(a.frac + w.frac, 8 + 8), True) if a.frac + w.frac >= 0 else None
    if b is None or b.int_bits > b.width:
        return
    acc = accumulator_format(a, w, b, k)
    corners = [x * y for x in (a.min_int, a.max_int) for y in (w.min_int, w.max_int)]
    for s in (k * min(corners) + (b.min_int << acc.bias_shift), k * max(corners) + (b.max_int << acc.bias_shift)):
        assert -(1 << (acc.width - 1)) <= s < (1 << (acc.width - 1))


# --- residual arithmetic (issue 28): add, average pooling, division by a constant -------------

def _round_half_up_exact(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 12), st.integers(-3, 8), st.booleans(), st.integers(2, 12), st.integers(-3, 8), st.booleans(),
       st.integers(2, 12), st.integers(-3, 8), st.booleans(), st.booleans(), st.data())
def test_add_codes_is_the_exact_sum_rounded_and_saturated(aw, ai, asg, bw, bi, bsg, ow, oi, osg, relu, data):
    a_fmt, b_fmt, out = (F(w, min(i, w), s) for w, i, s in ((aw, ai, asg), (bw, bi, bsg), (ow, oi, osg)))
    a = data.draw(st.lists(st.integers(a_fmt.min_int, a_fmt.max_int), min_size=1, max_size=8))
    b = data.draw(st.lists(st.integers(b_fmt.min_int, b_fmt.max_int), min_size=len(a), max_size=len(a)))
    got = add_codes(np.array(a), a_fmt, np.array(b), b_fmt, out, relu)
    for g, x, y in zip(got.tolist(), a, b):
        real = Fraction(x, 2 ** a_fmt.frac) + Fraction(y, 2 ** b_fmt.frac)
        want = min(max(_round_half_up_exact(real * 2 ** out.frac), out.min_int), out.max_int)
        assert g == (max(want, 0) if relu else want)


@pytest.mark.parametrize("den", [1, 2, 3, 4, 7, 9, 16, 25, 36, 49, 64, 100, 1023])
def test_const_divider_is_exact_on_its_whole_range(den):
    lo, hi = -40 * den - 7, 40 * den + 5
    d = const_divider(den, lo, hi)
    x = np.arange(lo, hi + 1)
    want = np.array([_round_half_up_exact(Fraction(int(v), den)) for v in x])
    assert np.array_equal(d(x), want)
    assert np.array_equal(div_round(x, den), want)
    assert d.offset + lo >= 0  # the multiplier sees non-negative values only
    assert d.product_bits == ((hi + d.offset) * d.mult).bit_length()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.integers(-(1 << 40), 1 << 40), st.integers(0, 1 << 20))
def test_const_divider_is_exact_at_the_ends_of_wide_ranges(den, lo, span):
    hi = lo + span
    d = const_divider(den, lo, hi)
    for v in (lo, lo + 1, hi - 1, hi, (lo + hi) // 2):
        v = min(max(v, lo), hi)
        assert int(d(np.array([v]))[0]) == _round_half_up_exact(Fraction(v, den))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.integers(2, 10), st.integers(-2, 6),
       st.booleans(), st.integers(2, 12), st.integers(-2, 8), st.booleans(), st.data())
def test_avg_pool_codes_is_the_exact_mean_rounded_and_saturated(h, w, c, iw, ii, isg, ow, oi, osg, data):
    in_fmt, out = F(iw, min(ii, iw), isg), F(ow, min(oi, ow), osg)
    x = np.array(data.draw(st.lists(st.integers(in_fmt.min_int, in_fmt.max_int), min_size=2 * h * w * c,
                                    max_size=2 * h * w * c))).reshape(2, h, w, c)
    got = avg_pool_codes(x, in_fmt, out)
    assert got.shape == (2, c)
    for bi in range(2):
        for ch in range(c):
            mean = Fraction(int(x[bi, :, :, ch].sum()), h * w * 2 ** in_fmt.frac)
            want = min(max(_round_half_up_exact(mean * 2 ** out.frac), out.min_int), out.max_int)
            assert int(got[bi, ch]) == want


def test_residual_rules_refuse_bad_divisors():
    with pytest.raises(ValueError, match="divisor"):
        const_divider(0, 0, 1)
    with pytest.raises(ValueError, match="divisor"):
        div_round(np.array([1]), 0)
    with pytest.raises(ValueError, match="empty range"):
        const_divider(3, 2, 1)
