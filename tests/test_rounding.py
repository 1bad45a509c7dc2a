"""The requantization's rounding modes (kofn.core.fixed.ROUNDINGS): half up (kofn's own),
half to even (QONNX's and Brevitas's ROUND) and floor.  The integer rule is checked against
exact rational arithmetic; RTL and HLS against the reference, on designs where the modes
really give different codes (so the check can fail)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
import math

import numpy as np
import pytest

from designs import design
from kofn.codegen import axis_args, plan_build, render_build, write_design
from kofn.core import ir as ir_mod
from kofn.core.fixed import ROUNDINGS, round_shift
from kofn.core.ir import Model
from kofn.core.reference import run
from kofn.core.testing import random_inputs


def _exact(x: int, shift: int, rounding: str) -> int:
    q = Fraction(x, 2 ** shift)
    fl = math.floor(q)
    if rounding == "floor":
        return fl
    if q - fl != Fraction(1, 2):
        return math.floor(q + Fraction(1, 2))
    return fl + 1 if rounding == "half_up" else (fl if fl % 2 == 0 else fl + 1)


@pytest.mark.parametrize("rounding", list(ROUNDINGS))
def test_round_shift_equals_exact_rationals(rounding):
    x = np.arange(-600, 601, dtype=np.int64)
    for shift in range(0, 7):
        got = round_shift(x, shift, rounding)
        want = [_exact(int(v), shift, rounding) for v in x]
        assert got.tolist() == want, (rounding, shift)


def test_half_even_is_numpys_round():
    """QONNX's ROUND executes as np.round (ties to even): the same integers."""
    x = np.arange(-5000, 5001, dtype=np.int64)
    for shift in (1, 3, 6):
        assert round_shift(x, shift, "half_even").tolist() == np.round(x / 2.0 ** shift).astype(np.int64).tolist()


def test_unknown_rounding_is_refused():
    m, _ = design("pad", seed=7)
    with pytest.raises(ValueError, match="rounding 'half_down'"):
        dataclasses.replace(m.layers[0], rounding="half_down")


def with_roundings(m: Model, roundings) -> Model:
    layers, it = [], iter(roundings)
    for L in m.layers:
        layers.append(dataclasses.replace(L, rounding=next(it)) if L.weighted else L)
    return dataclasses.replace(m, layers=tuple(layers))


# (design, the rounding of each weighted layer in order)
CASES = [("pad", ["half_even", "floor"]), ("cnn_mixed", ["floor", "half_even", "half_even"])]


def _case(name, roundings, seed):
    m, lanes = design(name, seed=seed)
    r = with_roundings(m, roundings)
    x = random_inputs(m, 600 if m.layers[0].kind == "dense" else 80, seed=3)
    # the modes must matter on these inputs, or the check below could not fail
    assert np.any(run(r, x) != run(m, x))
    return r, lanes, x


def test_ir_round_trip_keeps_the_rounding(tmp_path):
    r, _, x = _case("pad", ["half_even", "floor"], 7)
    ir_mod.save(r, tmp_path / "m")
    back = ir_mod.load(tmp_path / "m")
    assert [L.rounding for L in back.layers] == ["half_even", "floor"]
    np.testing.assert_array_equal(run(back, x), run(r, x))


@pytest.mark.slow
@pytest.mark.parametrize("name,roundings", CASES)
def test_rtl_bit_exact_with_each_rounding(name, roundings, tmp_path):
    from kofn.sim.rtl import build_rtl, simulate_rtl

    r, lanes, x = _case(name, roundings, 7)
    b = plan_build(r, lanes)
    d = render_build(b)
    write_design(d, tmp_path)
    build_rtl([tmp_path / s for s in d.sources], b.top, tmp_path / "sim_build", tmp_path / "build.log", **axis_args(b))
    expected = run(r, x)
    res = simulate_rtl(tmp_path, b.top, x, expected, **axis_args(b), build_dir=tmp_path / "sim_build",
                       stall_prob=0.2, timing_vectors=10, seed=1)
    np.testing.assert_array_equal(res.outputs, expected)
    assert (res.mismatches, res.vectors) == (0, len(x))


@pytest.mark.slow
@pytest.mark.parametrize("name,roundings", CASES)
def test_hls_bit_exact_with_each_rounding(name, roundings, tmp_path):
    from kofn.sim import build_csim, run_csim

    r, lanes, x = _case(name, roundings, 11)
    d = render_build(plan_build(r, lanes))
    write_design(d, tmp_path)
    binary = build_csim(tmp_path / "hls", "kofn_top", tmp_path / "csim")
    np.testing.assert_array_equal(run_csim(binary, x, tmp_path / "csim").outputs, run(r, x))


@pytest.mark.parametrize("name,roundings", CASES)
def test_onnx_export_runs_each_rounding_exactly_and_imports_back(name, roundings, tmp_path):
    """ONNX Round is half to even: a half_even layer exports as Round, a floor layer as Floor;
    onnxruntime reproduces the reference and the importer reads the roundings back."""
    from kofn.app.export import run_onnx, to_onnx
    from kofn.app.onnx_import import onnx_to_ir, read_onnx

    r, _, x = _case(name, roundings, 5)
    proto = to_onnx(r, tmp_path / "m.onnx")
    ops = [n.op_type for n in proto.graph.node]
    assert ("Round" in ops) == ("half_even" in roundings)
    np.testing.assert_array_equal(run_onnx(r, tmp_path / "m.onnx", x), run(r, x))
    back = onnx_to_ir(read_onnx(proto), r.name)
    assert [L.rounding for L in back.layers if L.weighted] == roundings
    np.testing.assert_array_equal(run(back, x), run(r, x))


@pytest.mark.slow
def test_hls4ml_export_keeps_each_rounding(tmp_path):
    from kofn.app.export import check_hls4ml

    r, _, x = _case("pad", ["half_even", "floor"], 5)
    codes, mismatches = check_hls4ml(r, x, tmp_path / "h4")
    assert mismatches == 0
    np.testing.assert_array_equal(codes, run(r, x))
