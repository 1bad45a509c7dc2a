"""The pipelined MAC core's depth rule and the early bank release of the dataflow schedule.

The RTL simulation tests (``tests/sim/test_rtl.py``) prove both in hardware: every design's
outputs are bit-exact under random stalls, and the cycle of every inference's first input and
last output beat equals the schedule's.  Here: the rules themselves, on figures worked out by
hand from their documentation."""

from __future__ import annotations

import pytest

from kofn.core.rules import core_pipeline


@pytest.mark.parametrize("n,lanes,banks,gather,tree", [
    (64, 16, 2, 2, 4),   # {bank, 6-bit index}: 7 select bits -> two 16:1 stages; 16 lanes -> 4 levels
    (16, 1, 1, 1, 0),    # 4 select bits: one stage; a single lane has no tree
    (17, 3, 2, 2, 2),    # 5 + 1 bits -> 2 stages; 3 lanes -> 2 levels (one sum passes through)
    (1, 1, 1, 1, 0),     # a one-input layer still registers its (1-bit) select once
    (400, 42, 1, 3, 6),  # 9 bits -> 3 stages; 42 lanes -> 6 levels
])
def test_core_pipeline_rule(n, lanes, banks, gather, tree):
    pipe = core_pipeline(n, lanes, banks)
    assert (pipe.gather, pipe.tree) == (gather, tree)
    # + the input/select copy register, the operand register and three requantization
    # registers, less the one the 3-stage core has
    assert pipe.extra == gather + tree + 5


def test_early_release_between_mac_stages():
    from designs import design
    from kofn.codegen import plan_build
    from kofn.codegen.timing import df_rel_early

    m, lanes = design("pad")  # 20 -> 12 (k=5, P=2) -> 5 (k=4, P=4)
    b = plan_build(m, lanes)
    # l0 is written by s_axis: no early release.  l1's producer l0 has S = ceil(5/2) = 3 and
    # X = 2 gather stages (5 + 1 select bits) + 1 tree level + 5 = 8, so the bound is
    # S + X + 3 = 14, capped at l1's 5 issue cycles (5 rows x 1 step).
    assert df_rel_early(b.layers) == {"l0": 0, "l1": 5}
    # the generated top hands it to the cores
    from kofn.codegen import render_build

    top = next(v for k, v in render_build(b).files.items() if k.endswith("kofn_top.sv")).replace(" ", "")
    assert ".REL_EARLY(5)" in top and ".REL_EARLY(0)" in top
