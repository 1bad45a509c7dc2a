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


#: The end-to-end sweep's targets.  Both DSPs and latency are exact functions of k and P
#: (not of training), so which points meet them is known in advance: only k/n = 1/4 at
#: P = 1 (2 DSPs, 674 cycles); P = 8 needs 16 DSPs, k/n = 1/2 at P = 1 takes 1,266 cycles.
MAX_DSP, MAX_LATENCY = 12, 1000


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """One small sweep (4 trainings), shared by the tests below."""
    from kofn.app.cli import main

    import re

    from kofn.app.config import default_config_text

    # the sequential schedule, whose closed-form cycles the test recomputes independently
    # (the dataflow schedule's cycles are checked against RTL simulation in tests/sim)
    base = tmp_path_factory.mktemp("explore")
    cfg = base / "seq.toml"
    cfg.write_text(re.sub(r'^schedule = "dataflow"', 'schedule = "sequential"', default_config_text(), count=1,
                          flags=re.M))
    out = base / "ex"
    rc = main(["explore", str(cfg), "--out", str(out), "--ratios", "1/4,1/2", "--weight-bits", "4,8", "--lanes", "1,8",
               "--epochs", "3", "--jobs", "2", "--max-dsp", str(MAX_DSP), "--max-latency", str(MAX_LATENCY), "-q"])
    return rc, out


def _dominates(a: dict, b: dict) -> bool:
    """``a`` is at least as good as ``b`` on accuracy (higher), DSP, LUT and latency (lower),
    and better on one (docs/explore.md's Pareto front objectives)."""
    ge = [a["accuracy"] >= b["accuracy"], a["dsp"] <= b["dsp"], a["lut"] <= b["lut"],
          a["latency_cycles"] <= b["latency_cycles"]]
    gt = [a["accuracy"] > b["accuracy"], a["dsp"] < b["dsp"], a["lut"] < b["lut"],
          a["latency_cycles"] < b["latency_cycles"]]
    return all(ge) and any(gt)


@pytest.mark.slow
def test_small_sweep_end_to_end(small_sweep):
    """The sweep's points, front and pick, each checked against a recomputation: the
    hardware figures that are exact by construction (DSPs, cycles), the integer accuracy
    from the saved model, the front by pairwise dominance, the pick by the targets."""
    rc, out = small_sweep
    doc = json.loads((out / "explore.json").read_text())
    pts = doc["points"]
    assert doc["targets"] == {"max_dsp": MAX_DSP, "max_latency": MAX_LATENCY}
    assert len(doc["trainings"]) == 4 and len(pts) == 8
    assert sorted((p["ratio"], p["weight_bits"], p["lanes"]) for p in pts) == sorted(
        (r, w, P) for r in ("1/4", "1/2") for w in (4, 8) for P in (1, 8))

    # hardware: k of 64 and 32 inputs; one DSP per lane in both layers (4- and 8-bit weights
    # times 9-bit activation operands: 13- and 17-bit products); latency, MLP schedule of
    # codegen/estimate.py: n_in + sum_l (rows_l * ceil(k_l / P) + 4) + n_out, 64 inputs, 10 outputs
    for p in pts:
        ks = [16, 8] if p["ratio"] == "1/4" else [32, 16]
        assert p["dsp"] == 2 * p["lanes"]
        rows = (32, 10)
        assert p["latency_cycles"] == 64 + sum(r * -(-k // p["lanes"]) + 4 for r, k in zip(rows, ks)) + 10

    # accuracy: the integer reference of the saved model on the digits test split (the
    # default config: round(20 % of 1797) = 359 images held out, seed 0), recomputed here
    from kofn.app.data import load_digits
    from kofn.core import ir
    from kofn.core.fixed import quantize
    from kofn.core.reference import run

    ds = load_digits(0.2, seed=0)
    assert len(ds.y_test) == 359
    for tag in {p["tag"] for p in pts}:
        m = ir.load(out / "models" / tag)
        (first,) = {(p["ratio"], p["weight_bits"]) for p in pts if p["tag"] == tag}
        assert [L.k for L in m.layers] == ([16, 8] if first[0] == "1/4" else [32, 16])
        assert all(L.weight_fmt.width == first[1] for L in m.layers)
        correct = int((run(m, quantize(ds.x_test, m.input_fmt)).argmax(axis=1) == ds.y_test).sum())
        for p in pts:
            if p["tag"] == tag:
                assert p["accuracy"] == correct / 359, (tag, p["lanes"])

    # the Pareto front: the flagged points, none dominated by any point, and every other
    # point dominated by one on the front
    front = doc["pareto"]
    assert front == [i for i, p in enumerate(pts) if p["pareto"]]
    for i in front:
        assert not any(_dominates(q, pts[i]) for q in pts), i
    for j in set(range(len(pts))) - set(front):
        assert any(_dominates(pts[i], pts[j]) for i in front), j

    # the pick: feasible (k/n 1/4 at P = 1 meets both targets, see MAX_DSP), the most accurate
    # feasible point, ties broken by fewer LUTs, then cycles, then DSPs
    def meets(p):
        return p["dsp"] <= MAX_DSP and p["latency_cycles"] <= MAX_LATENCY

    feasible = [i for i, p in enumerate(pts) if meets(p)]
    assert sorted((pts[i]["ratio"], pts[i]["lanes"]) for i in feasible) == [("1/4", 1), ("1/4", 1)]
    c = doc["pick"]
    assert rc == 0 and c["feasible"] is True and c["violated"] == []
    rank = lambda p: (-p["accuracy"], p["lut"], p["latency_cycles"], p["dsp"])  # noqa: E731
    assert c["index"] == min(feasible, key=lambda i: rank(pts[i]))
    assert c["point"] == pts[c["index"]]
    # binding: the constraints that exclude the better points; those a better point
    # violates alone, else all that better points violate
    better = [p for p in pts if rank(p) < rank(c["point"])]
    assert c["better_excluded"] == len(better)
    viol = [[n for n, bad in (("max_dsp", p["dsp"] > MAX_DSP), ("max_latency", p["latency_cycles"] > MAX_LATENCY))
             if bad] for p in better]
    assert all(viol)  # every better point misses a target
    alone = {v[0] for v in viol if len(v) == 1}
    assert set(c["binding"]) == (alone or {n for v in viol for n in v})

    assert (out / "explore.png").stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert "Pareto front" in page and "data:image/png;base64," in page


@pytest.mark.slow
def test_explore_report_renders(small_sweep, tmp_path):
    from browser import assert_renders, need_chromium

    need_chromium()
    _, out = small_sweep
    assert_renders(out / "report.html", tmp_path)


def test_min_fmax_target():
    """``--min-fmax`` keeps the points whose Fmax estimate reaches it; a point without an
    estimate (the sequential schedule has no Fmax model) cannot meet it."""
    pts = [dict(p, fmax_mhz=f) for p, f in zip(POINTS, (160.0, 170.0, 120.0, 150.0, None, 155.0))]
    c = pick(pts, Targets(min_fmax=150))
    assert c["feasible"] and c["index"] == 0 and c["binding"] == ["min_fmax"]  # 2 is more accurate but slow
    assert Targets(min_fmax=150).violations(pts[4]) == ["min_fmax"]
    assert pick(pts, Targets(min_fmax=180))["feasible"] is False


def test_hardware_points_carry_the_fmax_estimate():
    from designs import design
    from kofn.app.explore import hardware_points
    from kofn.codegen import plan_build

    m, _ = design("pad")
    df, seq = hardware_points(m, [2], schedule="dataflow")[0], hardware_points(m, [2], schedule="sequential")[0]
    b = plan_build(m, [2, 2])
    assert df["fmax_mhz"] == round(b.fmax_estimate.fmax_mhz, 1) and df["fmax_mhz"] > 0
    assert seq["fmax_mhz"] is None


def test_hardware_points_keep_a_bank_layers_lanes():
    """A bank layer's P is its banks (fixed by training): every swept P leaves it alone and
    sets the other layers, so each point's MACs and multipliers follow."""
    from designs import design
    from kofn.app.explore import hardware_points
    from kofn.codegen import plan_build

    m, _ = design("bank")  # l0: 3 banks, l1: 4 banks (k = 6 and 4)
    pts = hardware_points(m, [1, 2, 6], schedule="dataflow")
    ref = plan_build(m, [3, 4]).latency
    for p in pts:
        assert (p["latency_cycles"], p["ii_cycles"]) == (ref.total_cycles, ref.ii_cycles)
    assert len({p["dsp"] for p in pts}) == 1
