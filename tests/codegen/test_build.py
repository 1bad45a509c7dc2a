"""How many values one AXI beat carries (issue 26): the planner refuses more than a frame holds,
more lanes than 1024 bits of tdata carry, or more than a banked first layer's banks, and its
automatic pick stays within the same limits."""

from __future__ import annotations

import pytest

from kofn.codegen import plan_build
from kofn.codegen.build import MAX_TDATA_BITS, beat_limit
from kofn.codegen.render import tdata_width
from kofn.core.fixed import FixedFormat as F
from kofn.core.testing import random_model


@pytest.mark.parametrize("kw, key", [
    (dict(stream_in=7), r"^hw\.stream_in: must be at most 6 \(a frame holds 6 input values\), got 7$"),
    (dict(stream_out=4), r"^hw\.stream_out: must be at most 3 \(a frame holds 3 output values\), got 4$"),
])
def test_more_values_than_a_frame_are_refused(kw, key):
    with pytest.raises(ValueError, match=key):
        plan_build(random_model([6, 3], [1]), [1], **kw)


def test_a_banked_first_layer_takes_a_value_per_bank():
    m = random_model([64, 16, 10], [8, 4], seed=1, banks=[8, 1])
    with pytest.raises(ValueError, match=r"^hw\.stream_in: must be at most 8 \(the first layer keeps its inputs "
                                         r"in 8 bank memories, one write each per beat\), got 9$"):
        plan_build(m, [8, 4], stream_in=9)
    assert plan_build(m, [8, 4], stream_in=8).stream_in == 8


@pytest.mark.parametrize("in_fmt, most", [(F(8, 1, False), 128), (F(12, 2), 64), (F(24, 2), 42)])
def test_wider_than_the_tdata_limit_is_refused_and_never_picked(in_fmt, most):
    """1024 inputs and a one-cycle layer: the old automatic pick was 512 values per beat (4096
    bits or more); now the most lanes that fit, and asking one more is an error."""
    m = random_model([1024, 4], [1], seed=0, input_fmt=in_fmt)
    assert beat_limit(1024, in_fmt)[0] == most == MAX_TDATA_BITS // tdata_width(in_fmt)
    b = plan_build(m, [1])
    assert b.stream_in <= most and b.stream_in * tdata_width(in_fmt) <= MAX_TDATA_BITS
    assert plan_build(m, [1], stream_in=most).stream_in == most
    with pytest.raises(ValueError, match=rf"^hw\.stream_in: must be at most {most} \({most} lanes of "
                                         rf"{tdata_width(in_fmt)} bits fill the 1,024-bit tdata limit\)"):
        plan_build(m, [1], stream_in=most + 1)


def test_automatic_pick_never_exceeds_the_frame():
    """A frame shorter than the next power of two: one beat of exactly the frame (it was 8 of 6)."""
    b = plan_build(random_model([6, 3], [1]), [1])
    assert (b.stream_in, b.stream_out) == (6, 3)
