"""``kofn prove`` (issue 26): the formal check of a dataflow build's stream control.

The directed case is issue 26's reproducer (one dense stage whose pipeline outlasts its issue
time, in front of m_axis) under the old start rule, a bank merely not full: the check must fail,
naming the lost beat or the lemma that sees it coming (results in flight for a full bank, or
a bank's next frame behind its frame end), with a counterexample; under today's reservation it must pass.  The
old rule is put back by mutation: its 10-line controller and the top's instance of it."""

from __future__ import annotations

import io
import re
import shutil

import pytest

from kofn.codegen import plan_build, render_build, write_design
from kofn.codegen.formal import formal_plan
from kofn.core.fixed import FixedFormat as F
from kofn.core.testing import random_cnn, random_model

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("yosys") is None or shutil.which("yosys-smtbmc") is None,
                                 reason="needs Debian's yosys (yosys-smtbmc, yosys-abc)")]

OLD_CTRL = """module kofn_df_ctrl (
    input  logic clk, input logic rst, input logic [1:0] in_full, input logic [1:0] out_full,
    input  logic can_start, output logic start, output logic bank
`ifdef FORMAL
    , output logic [1:0] f_busy
`endif
);
`ifdef FORMAL
    assign f_busy = 2'b11;  // no reservation: for the lemmas, every bank counts as reserved
`endif
    assign start = can_start && in_full[bank] && !out_full[bank];
    always_ff @(posedge clk) begin
        if (rst) bank <= 1'b0;
        else if (start) bank <= !bank;
    end
endmodule
"""


#: issue 26's reproducers: one dense stage whose pipeline outlasts its issue time in front of
#: m_axis; fuzz seed 44's shape, a wide dense stage (k = 16 on 8 lanes) into a tiny banked one
DESIGNS = {
    "stage_into_m_axis": (lambda: random_model([13, 11], [2], seed=413, input_fmt=F(6, 2)), None, 2),
    "seed44_shape": (lambda: random_model([64, 4, 10], [16, 4], seed=44, banks=[1, 4]), [8, 4], 0),
}
REPRODUCERS = sorted(DESIGNS)
#: and a chain of two dense stages (the default's shape, small): the first stage's results reach
#: the second's buffer tagged with their row, bank and frame end (kofn_vecbuf TAGGED), so PDR
#: closes on the whole chain
DESIGNS["two_stage_chain"] = (lambda: random_model([8, 4, 2], [2, 2], seed=3), None, 0)
#: and a small CNN with every kind of stage boundary: a conv core into a max pool and a conv
#: frame buffer, a conv core into a dense stage's buffer, a dense core into the output buffer
DESIGNS["cnn_pool_chain"] = (lambda: random_cnn((6, 6, 1), [("conv", 2, 2, 1, 0, "weight", 3), ("pool",),
                                                             ("conv", 2, 2, 1, 0, "weight", 5), ("dense", 3, 2)],
                                                seed=1), None, 0)
#: the smallest CNN: one 2x2 conv on a 5x5 image, into a dense layer
DESIGNS["conv_into_dense"] = (lambda: random_cnn((5, 5, 1), [("conv", 2, 2, 1, 0, "weight", 3), ("dense", 3, 2)],
                                                 seed=1), None, 0)


def _design(tmp_path, old: bool, name: str = "stage_into_m_axis"):
    make, lanes, stream_in = DESIGNS[name]
    b = plan_build(make(), lanes, stream_in=stream_in)
    d = render_build(b)
    write_design(d, tmp_path)
    if old:  # the start rule before issue 26: the output bank merely not full
        (tmp_path / "rtl" / "kofn_df_ctrl.sv").write_text(OLD_CTRL)
        top = tmp_path / "rtl" / f"{b.top}.sv"
        text, n = re.subn(r"\.out_rel\(rel_(\w+)\),\s*\.out_rel_bank\(relb_\w+\)", r".out_full(full_\1)",
                          top.read_text())
        assert n == sum(1 for p in b.layers if p.layer.kind == "dense")
        top.write_text(text)
    return b, list(d.sources)


@pytest.mark.parametrize("name", REPRODUCERS)
def test_the_old_start_rule_fails_with_a_counterexample(name, tmp_path):
    from kofn.app.prove import prove_design

    b, srcs = _design(tmp_path, old=True, name=name)
    proof = prove_design(tmp_path, b, srcs, pdr_timeout=10, progress=lambda m: None)
    assert not proof.passed
    failed = {p.name: p for p in proof.properties if p.status == "failed" and p.mode == "safety"}
    # the lost beat, or the cycles before it, named by the lemmas that see it coming: the core
    # took the bank's next frame while that bank's frame end was still in its pipeline
    # (frame_order), or has results in flight for a bank still full (in_flight_bank_empty)
    named = sorted({"u_dut.no_lost_beat_res_l0", "u_dut.u_l0_mac.frame_order",
                    "u_dut.in_flight_bank_empty_l0"} & set(failed))
    assert named, sorted(failed)
    p = failed[named[0]]
    assert p.cycle is not None and p.cycle < formal_plan(b, srcs).safety_depth
    vcd = (tmp_path / p.vcd).read_text()
    assert "res_l0_valid" in vcd and "$enddefinitions" in vcd
    if name == "stage_into_m_axis":  # and at full rate, off the schedule: frame 2 early (II 11 against 13.5)
        assert any(q.mode == "live" and q.status == "failed" for q in proof.properties)


@pytest.mark.parametrize("name", ["stage_into_m_axis", "two_stage_chain", "cnn_pool_chain"])
def test_the_reservation_passes_every_property(name, tmp_path):
    from kofn.app.prove import prove_design

    b, srcs = _design(tmp_path, old=False, name=name)
    proof = prove_design(tmp_path, b, srcs, progress=lambda m: None)
    assert proof.passed, [p for p in proof.properties if p.status == "failed"]
    names = {p.name.rsplit(".", 1)[-1] for p in proof.properties}
    assert {"no_lost_beat_res_l0", "no_overwrite", "no_empty_read", "take_free_bank", "rel_reserved_bank",
            "start_on_full", "axis_out_valid_held", "axis_out_data_stable", "frame_tlast"} <= names
    assert any(n.startswith("live_frame") for n in names)
    # the lemmas that make the whole inductive, per MAC stage (a conv stage's loader too)
    mac = [p.layer.name for p in b.layers if p.layer.kind != "maxpool"]
    for n in mac:
        assert {f"in_flight_reserved_{n}", f"in_flight_bank_empty_{n}", f"bank_full_reserved_{n}"} <= names, n
    assert {f"frame_end_once_{p.layer.name}" for p in b.layers if p.layer.kind == "conv"} <= names
    assert sum(n == "frame_order" for n in (p.name.rsplit(".", 1)[-1] for p in proof.properties
                                            if p.mode == "safety")) == len(mac)
    assert all(s is not None for _, s in proof.covers) and len(proof.covers) == 3
    fp = formal_plan(b, srcs)
    assert proof.safety_depth >= 2 * b.latency.total_cycles
    assert proof.safety_method == "pdr"  # these small designs close: every safety property for all time
    # the abstract model frees every counter the RTL marks (the cores' row and step among them)
    log = (tmp_path / "formal" / "abstract_yosys.log").read_text()
    assert re.search(r"kofn_dense\.row a cutpoint", log) and re.search(r"kofn_dense\.step a cutpoint", log)
    for p in proof.properties:
        assert (p.status, p.method) == (("proven", "pdr") if p.mode == "safety" else ("bounded", "bmc"))
        if p.mode == "safety":  # the counters' own assertions on the RTL; the rest where they closed
            assert p.model in ("rtl", "counters free") or p.model.startswith("counters free, stage "), p.model
            assert p.model == "rtl" or not p.name.endswith(".idle_at_zero"), (p.name, p.model)
        if p.mode == "live":
            assert p.depth == fp.live_depth


def test_a_conv_stage_that_mistags_its_bank_fails(tmp_path):
    """A conv loader that tags each window with the other bank than the one it reserved (its
    results then land in a bank nobody reserved): the check must fail on the RTL, on the conv
    stage, with a counterexample.  So the lemmas that prove the CNNs (proven in one model with
    the rest) do not hide a fault of a conv stage's control."""
    from kofn.app.prove import prove_design

    b, srcs = _design(tmp_path, old=False, name="conv_into_dense")
    rtl = tmp_path / "rtl" / "kofn_conv_df.sv"
    text, n = re.subn(r"core_bank <= par;", "core_bank <= !par;", rtl.read_text())
    assert n == 1
    rtl.write_text(text)
    proof = prove_design(tmp_path, b, srcs, pdr_timeout=10, progress=lambda m: None)
    assert not proof.passed
    failed = [p for p in proof.properties if p.status == "failed" and p.mode == "safety"]
    assert failed and all(p.cycle is not None and p.cycle < proof.safety_depth for p in failed)
    assert any(p.name.endswith("_l0") or ".u_l0" in p.name for p in failed), [p.name for p in failed]
    vcd = (tmp_path / failed[0].vcd).read_text()
    assert "$enddefinitions" in vcd and "res_l0_bank" in vcd


def test_a_sequential_build_is_refused(tmp_path):
    m = random_model([13, 11], [2], seed=413)
    b = plan_build(m, None, schedule="sequential")
    with pytest.raises(ValueError, match="dataflow schedule"):
        formal_plan(b, ["rtl/kofn_top.sv"])


@pytest.mark.parametrize("bmc_done", [True, False], ids=["bmc_finishes", "bmc_cut_short"])
def test_a_property_pdr_leaves_open_is_bounded_the_rest_stay_proven(bmc_done, tmp_path, monkeypatch):
    """Where PDR closes some properties alone but not all, those stay proven and only the rest
    fall back to BMC (to at least twice the latency), each named in the report; where BMC runs
    out of time too, the rest are reported undecided with the cycles BMC cleared, not passed."""
    from kofn.app import prove as pv

    real_abc, real_one = pv._abc, pv._one_by_one
    left_open = "u_dut.no_lost_beat_res_l0"

    def abc(cwd, aig, engine):  # the joint PDR runs "do not close": the one-by-one pass decides
        if engine.startswith("pdr") and aig in ("formal/abstract.aig", "formal/safety.aig"):
            return "undecided", None, 0.0
        if not bmc_done and engine.startswith("bmc3") and aig == "formal/safety.aig":
            return "undecided", 17, 0.0  # as _abc reports a bmc3 cut short: the frames it cleared
        return real_abc(cwd, aig, engine)

    def one_by_one(*a, **k):  # ... and PDR does not close left_open alone either
        how = real_one(*a, **k)
        assert left_open in how  # it would have
        return {n: m for n, m in how.items() if n != left_open}

    monkeypatch.setattr(pv, "_abc", abc)
    monkeypatch.setattr(pv, "_one_by_one", one_by_one)
    b, srcs = _design(tmp_path, old=False)
    proof = pv.prove_design(tmp_path, b, srcs, progress=lambda m: None)
    assert proof.safety_method == "bmc" and "safety_bmc" in proof.seconds
    safety = {p.name: p for p in proof.properties if p.mode == "safety"}
    rest = [p for n, p in safety.items() if n != left_open]
    assert rest and all((p.status, p.method, p.depth) == ("proven", "pdr", 0) for p in rest)
    assert all(p.model == "rtl" for p in rest if p.name.endswith(".idle_at_zero"))
    assert all(p.status == "bounded" for p in proof.properties if p.mode == "live")
    if bmc_done:
        assert proof.passed and not proof.undecided
        assert (safety[left_open].status, safety[left_open].method) == ("bounded", "bmc")
        assert safety[left_open].depth == proof.safety_depth >= 2 * b.latency.total_cycles
    else:
        assert not proof.passed and [p.name for p in proof.undecided] == [left_open]
        assert (safety[left_open].status, safety[left_open].depth) == ("undecided", 17)
        assert proof.to_json()["undecided"] == [left_open] and proof.to_json()["passed"] is False
        out = io.StringIO()
        pv.print_proof(proof, file=out)
        row = [l for l in out.getvalue().splitlines() if l.startswith(f"| {left_open} | safety ")]
        assert row == [f"| {left_open} | safety | undecided | BMC, 17 cycles before the time limit |"]


def test_an_abc_time_limit_is_never_zero():
    """ABC reads ``-T 0`` as no limit: a check begun with under a second left must still stop."""
    from kofn.app.prove import _secs

    assert [_secs(t) for t in (0.0, 0.67, 1.0, 599.9)] == [1, 1, 1, 599]
