"""Automatic folding (``codegen/folding.py``): a ``max_dsp`` budget holds every multiplier of the
design, those of layers whose lanes come from the default rule included."""

from __future__ import annotations

from kofn.codegen import plan_build
from kofn.codegen.folding import fold
from kofn.core.testing import random_model


def test_max_dsp_counts_the_default_lanes():
    """Layer 0 keeps 16 of 64 with lanes unset (the default rule: P = 8); 9 multipliers leave
    the auto layer 1.  The budget used to count hand-set integers only, so the auto layer took 8
    and the design 16 multipliers against a budget of 9."""
    m = random_model([64, 32, 10], [16, 8], seed=0)
    assert fold(m, [None, "auto"], max_dsp=9).lanes == (None, 1)
    b = plan_build(m, [None, "auto"], max_dsp=9)
    assert b.lanes == [8, 1] and sum(b.lanes) <= 9
    assert plan_build(m, [8, "auto"], max_dsp=9).lanes == [8, 1]  # the same as when P = 8 is written
