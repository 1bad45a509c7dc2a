"""`kofn explore`: Pareto front, target picking, and a small sweep end to end."""

from __future__ import annotations

import json

import pytest

from kofn.app.explore import Targets, pareto_front, pick


def _pt(acc, dsp, lut, lat, ff=0, bram18=0):
    return {"accuracy": acc, "dsp": dsp, "lut": lut, "latency_cycles": lat, "ff": ff, "bram18": bram18}


POINTS = [
    _pt(0.90, 4, 100, 50),   # 0: front
    _pt(0.90, 4, 120, 50),   # 1: dominated by 0 (more LUTs, nothing better)
    _pt(0.95, 8, 300, 40),   # 2: front (most accurate, fastest)
    _pt(0.80, 2, 90, 100),   # 3: front (fewest DSPs and LUTs)
    _pt(0.80, 2, 90, 100),   # 4: a tie with 3: neither dominates
    _pt(0.85, 4, 100, 60),   # 5: dominated by 0
]


def test_pareto_front_by_hand():
    assert pareto_front(POINTS) == [0, 2, 3, 4]


def test_pick_names_the_binding_constraint():
    c = pick(POINTS, Targets(max_dsp=4))
    assert c["feasible"] and c["index"] == 0
    assert c["binding"] == ["max_dsp"]  # only point 2 is more accurate, and it has 8 DSPs
    c = pick(POINTS, Targets(max_dsp=8, max_latency=45))
    assert c["index"] == 2 and c["binding"] == []  # the most accurate design meets both
    c = pick(POINTS, Targets(max_lut=95))
    assert c["index"] == 3 and set(c["binding"]) == {"max_lut"}
    c = pick(POINTS, Targets(max_lut=95, max_latency=45))  # nothing is both small and fast
    assert not c["feasible"] and len(c["violated"]) == 1


def test_pick_with_another_objective():
    c = pick(POINTS, Targets(min_accuracy=0.85), objective="lut")
    assert c["index"] == 0  # 3 and 4 have fewer LUTs but miss the accuracy target
    assert c["binding"] == ["min_accuracy"]


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """One small sweep (4 trainings), shared by the tests below."""
    from kofn.app.cli import main

    out = tmp_path_factory.mktemp("explore") / "ex"
    rc = main(["explore", "--out", str(out), "--ratios", "1/4,1/2", "--weight-bits", "4,8", "--lanes", "1,8",
               "--epochs", "3", "--jobs", "2", "--max-dsp", "12", "-q"])
    return rc, out


@pytest.mark.slow
def test_small_sweep_end_to_end(small_sweep):
    from kofn.core import ir

    rc, out = small_sweep
    doc = json.loads((out / "explore.json").read_text())
    assert rc == (0 if doc["pick"]["feasible"] else 1)
    assert len(doc["trainings"]) == 4 and len(doc["points"]) == 8
    for p in doc["points"]:
        m = ir.load(out / "models" / p["tag"])
        ks = [L.k for L in m.layers]
        assert ks == ([16, 8] if p["ratio"] == "1/4" else [32, 16])  # k/n of 64 and 32 inputs
        assert all(L.weight_fmt.width == p["weight_bits"] for L in m.layers)
        assert 0.0 <= p["accuracy"] <= 1.0
    # the same trained model at 8 lanes is faster and uses more DSPs than at 1 lane
    by = {(p["tag"], p["lanes"]): p for p in doc["points"]}
    for tag in {p["tag"] for p in doc["points"]}:
        assert by[(tag, 8)]["latency_cycles"] < by[(tag, 1)]["latency_cycles"]
        assert by[(tag, 8)]["dsp"] > by[(tag, 1)]["dsp"]
    front = doc["pareto"]
    pts = doc["points"]
    keys = (("accuracy", 1), ("dsp", -1), ("lut", -1), ("latency_cycles", -1))
    for i in front:  # no point of the sweep dominates a front point
        for j, q in enumerate(pts):
            assert not (all(s * q[k] >= s * pts[i][k] for k, s in keys) and any(s * q[k] > s * pts[i][k] for k, s in keys))
    chosen = doc["pick"]["point"]
    if doc["pick"]["feasible"]:
        assert chosen["dsp"] <= 12
    assert (out / "explore.png").stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert "Pareto front" in page and "data:image/png;base64," in page


@pytest.mark.slow
def test_explore_report_renders(small_sweep, tmp_path):
    from browser import assert_renders, need_chromium

    need_chromium()
    _, out = small_sweep
    assert_renders(out / "report.html", tmp_path)
