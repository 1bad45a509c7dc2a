"""Global average pooling in hardware (issue 28): kofn_gap's parameters compute the integer
rule for every sum a channel can hold, and its DSP count is Yosys's.  (Bit-exactness in RTL and
HLS simulation runs on the `cnn_gap` designs of tests/designs.py with every other design.)"""

from __future__ import annotations

import numpy as np
import pytest

from kofn.codegen import plan_build, render_build, write_design
from kofn.codegen.estimate import resources
from kofn.codegen.gap import gap_params
from kofn.core.fixed import FixedFormat as F, avg_pool_codes
from kofn.core.testing import random_cnn


def rtl_arithmetic(L, sums: np.ndarray) -> np.ndarray:
    """kofn_gap.sv's datapath on the channel sums, at its widths: the shifted sum sign-extended
    or truncated to U_W bits plus OFFSET (mod 2^U_W), times MULT, shifted by SHIFT, truncated to
    Q_W bits, minus BIAS, clamped to [OMIN, OMAX] and cut to the output's O_W bits."""
    g = gap_params(L)
    u = ((sums.astype(object) << g.shl) + g.offset) % (1 << g.u_w)
    q = ((u * g.mult) >> g.shift) % (1 << g.q_w)
    y = np.clip(q - g.bias, g.omin, g.omax).astype(np.int64)
    w = L.output_fmt.width
    y = y & ((1 << w) - 1)
    return np.where(L.output_fmt.signed & (y >= 1 << (w - 1)), y - (1 << w), y)


@pytest.mark.parametrize("shape, fin, fout", [
    ((7, 7, 1), F(8, 1, False), F(10, 3, False)),   # area 49, 4 more fraction bits out
    ((4, 4, 1), F(8, 3, False), F(8, 3, False)),    # a power of two: MULT a shift
    ((5, 6, 1), F(6, 2), F(8, 3)),                  # signed: negative sums, the offset's work
    ((7, 6, 1), F(8, 5), F(6, 4)),                  # one fraction bit fewer out, saturating
    ((3, 3, 1), F(4, 4), F(3, 0)),                  # three fraction bits fewer, a tiny output
    ((1, 1, 1), F(8, 2), F(8, 2)),                  # one pixel: the identity
])
def test_the_rtl_datapath_is_the_integer_rule_for_every_sum(shape, fin, fout):
    from kofn.core.ir import GlobalAvgPoolLayer

    L = GlobalAvgPoolLayer("g", shape, fin, fout)
    n = shape[0] * shape[1]
    sums = np.arange(fin.min_int * n, fin.max_int * n + 1, dtype=np.int64)
    # avg_pool_codes on images whose one channel sums to each value (n - 1 zeros and the sum
    # spread over codes within the format)
    imgs = np.zeros((len(sums), n), dtype=np.int64)
    rest = sums.copy()
    for j in range(n):
        imgs[:, j] = np.clip(rest, fin.min_int, fin.max_int)
        rest -= imgs[:, j]
    assert np.all(rest == 0) and np.all(imgs.sum(axis=1) == sums)
    want = avg_pool_codes(imgs.reshape(-1, shape[0], shape[1], 1), fin, fout)[:, 0]
    np.testing.assert_array_equal(rtl_arithmetic(L, sums), want)


@pytest.mark.slow
@pytest.mark.parametrize("shape, fin, dsp", [((4, 4, 2), F(8, 1, False), 0), ((7, 7, 3), F(8, 1, False), 1)])
def test_the_gap_dsp_count_is_yosys(shape, fin, dsp, tmp_path):
    from kofn.codegen.synth import synthesize

    m = random_cnn(shape, [("gap", F(10, 3, False)), ("dense", 3, 2)], seed=1, input_fmt=fin)
    b = plan_build(m, [None, 2])
    est = resources(m, b.layers, "xc7", schedule="dataflow", stream_in=b.stream_in, stream_out=b.stream_out)
    assert est.layers[0].dsp == dsp
    d = render_build(b)
    write_design(d, tmp_path)
    got = synthesize(tmp_path, list(d.sources), family="xc7", timing=False).instances["u_l0"]
    assert got["dsp"] == dsp
