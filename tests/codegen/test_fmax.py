"""kofn's pre-synthesis Fmax model (``kofn.codegen.fmax``): the stage-path rules on figures
worked out by hand from their documentation, and the fitted model against nextpnr-ecp5.

The measured figures come from ``benchmarks/calibrate_fmax.py`` (nextpnr-ecp5 post-route
Fmax, LFE5U-85F speed 6, seed 1, 150 MHz constraint), kept in
``benchmarks/results/fmax_ecp5.json``; ``tests/codegen/test_pnr.py`` also checks the model
against a live place and route of a small design."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from kofn.codegen import plan_build
from kofn.codegen.fmax import COEFFICIENTS, design_paths, estimate_fmax, predict_period

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "fmax_ecp5.json"
#: The model's documented tolerance (docs/estimates.md, "Fmax before synthesis"): held-out designs within these.
HELD_OUT_MEDIAN, HELD_OUT_WORST = 0.10, 0.20


def _paths(name):
    from designs import design

    m, lanes = design(name)
    b = plan_build(m, lanes)
    return b, {(p.instance, p.stage): p for p in design_paths(b.model, b.layers, b.schedule, b.stream_in,
                                                                 b.stream_out).paths}


def test_stage_paths_by_hand():
    # pad: 20 -> 12 (k = 5, P = 2) -> 5 (k = 4, P = 4), 8-bit activations, 2 values per input beat
    b, p = _paths("pad")
    assert b.stream_in == 2
    # l0's buffer: 10 beats, a 4-bit position pre-decoded into one-hots of its low 2 bits (4)
    # and, per bank, of its high part (positions 0-9: 3); each enable is one AND2 (1 level);
    # a low-half bit feeds 2 banks x 3 enables, each the clock enable of 2 values x 8 bits: 96
    w = p[("u_l0_buf", "write")]
    assert (w.levels, w.carry, w.fanout) == (1, 0, 96)
    # the results' buffer: 5 values of 12 bits, one per beat: a 3-bit position, low half 1 bit,
    # high part 0-2 (3 per bank): 2 x 3 enables x 12 bits
    assert p[("u_out_buf", "write")].fanout == 72
    # l0's core: 36 ROM words (12 rows x ceil(5 / 2) = 3 steps); index words of 2 lanes x 5 bits and weight words of 2 x 8 bits, 3 LUT4s deep (16 words each): the
    # address drives (10 + 16) x 3 LUTs, through ceil(6 / 2) = 3 levels
    r = p[("u_l0_mac", "ROM read")]
    assert (r.levels, r.fanout) == (3, 78)
    # select {bank, 5-bit index} = 6 bits, 2 gather stages of 3 bits: 8 first-stage candidates,
    # each behind its own select copy (8 multiplexers of 8:1, 4 LUTs on the low bit each: 32)
    assert p[("u_l0_mac", "select copy")].fanout == 8 + 1  # 8 copies and the whole-select register
    g1, g2 = p[("u_l0_mac", "gather 1")], p[("u_l0_mac", "gather 2")]
    assert (g1.levels, g1.fanout) == (2, 32) and (g2.levels, g2.fanout) == (2, 32)
    # accumulator 19 bits; requantization width max(19, 8 + 1) + 1 = 20, range test over the
    # 20 - 8 + 1 = 13 top bits: ceil(log2(13) / 2) = 2 levels
    assert p[("u_l0_mac", "accumulate")].carry == 19 and p[("u_l0_mac", "round")].carry == 20
    assert p[("u_l0_mac", "range test")].levels == 2
    # l1: {bank, 4-bit index} = 5 bits -> stages of 3 and 2 bits; the second is a 4:1 multiplexer
    g2 = p[("u_l1_mac", "gather 2")]
    assert (g2.levels, g2.fanout) == (1, 8 * 2)


def test_estimate_is_the_slowest_path():
    b, _ = _paths("pad")
    est = b.fmax_estimate
    assert est is not None
    crit, period = max(est.stages, key=lambda s: s[1])
    assert est.critical == crit and est.period_ns == period and est.fmax_mhz == pytest.approx(1000 / period)
    parts = design_paths(b.model, b.layers, b.schedule, b.stream_in, b.stream_out)
    assert predict_period(parts)[0] == pytest.approx(period)
    # a path's delay grows with each of its depths, by the fitted coefficients
    c = COEFFICIENTS["ecp5"]
    assert all(c[k] >= 0 for k in ("base", "level", "carry", "fanout", "size"))
    d = est.as_dict()
    assert d["fmax_mhz"] == round(est.fmax_mhz, 1) and d["critical"]["stage"] == crit.stage


def test_sequential_schedule_has_no_model():
    from designs import design

    m, lanes = design("pad")
    b = plan_build(m, lanes, schedule="sequential")
    assert b.fmax_estimate is None
    assert estimate_fmax(b.model, b.layers, b.schedule) is None


@pytest.mark.skipif(not RESULTS.exists(), reason="no measured corpus (benchmarks/calibrate_fmax.py writes it)")
def test_model_against_nextpnr_on_held_out_designs():
    """The fitted model against nextpnr's measured Fmax on the designs held out of its fit:
    median and worst relative error within the documented tolerance."""
    import sys

    sys.path.insert(0, str(RESULTS.parents[1]))
    from calibrate_fmax import HELD_OUT, TIMING_CORPUS
    from calibration import design_build

    doc = json.loads(RESULTS.read_text())
    meas = {r["name"]: r["fmax_mhz"] for r in doc["results"] if "fmax_mhz" in r}
    assert set(HELD_OUT) <= set(meas), "every held-out design has a measurement"
    assert len(meas) >= 8
    errs = []
    for d in TIMING_CORPUS:
        if d.name not in HELD_OUT:
            continue
        b = design_build(d)
        est = estimate_fmax(b.model, b.layers, b.schedule, b.stream_in, b.stream_out)
        errs.append((est.fmax_mhz - meas[d.name]) / meas[d.name])
    assert statistics.median(abs(e) for e in errs) <= HELD_OUT_MEDIAN, errs
    assert max(abs(e) for e in errs) <= HELD_OUT_WORST, errs
    assert all(math.isfinite(e) for e in errs)
