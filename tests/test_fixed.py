"""The fixed-point rules: directed edge cases with hand-computed values, plus properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kofn.core.fixed import (
    FixedFormat,
    accumulator_format,
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
