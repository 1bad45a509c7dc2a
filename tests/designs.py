"""Random designs shared by the codegen and simulation tests, chosen to cover the corners."""

from __future__ import annotations

from kofn.core.fixed import FixedFormat as F
from kofn.core.testing import random_cnn, random_model

# name -> (sizes, ks, lanes, model kwargs)
DESIGNS = {
    # k % P != 0 (lane padding), n not a power of two, signed 12-bit output padded to 16 bits
    "pad": ([20, 12, 5], [5, 4], [2, 4], {}),
    # P = 1, k = n (dense row), k = 1, signed input, unsigned saturating output with ReLU
    "edge": ([7, 6, 3], [7, 1], [1, 1], dict(input_fmt=F(6, 2), hidden_fmt=F(5, 1, False),
                                             output_fmt=F(8, 4, False), relu_last=True)),
    # three layers, wide weights, 8-bit signed output with no tdata padding
    "deep": ([33, 16, 9, 4], [8, 6, 9], [8, 3, 5], dict(weight_fmt=F(10, 3), bias_fmt=F(14, 6),
                                                         output_fmt=F(8, 6))),
    # bank granularity: lane p reads bank p only (input i in bank i % P); 3 banks of 8 with
    # k/P = 2, then 4 banks of 3 (a 2:1 bank, k/P = 1 of a bank of 3, not a power of two)
    "bank": ([24, 12, 6], [6, 4], [3, 4], dict(banks=[3, 4])),
    # banks of 512 values: the dataflow stage's bank memories are block RAM (2 x 512 words x 8 bits
    # each); the input stream binds the II (at most P = 2 values per beat)
    "bank_bram": ([1024, 8, 4], [16, 4], [2, 2], dict(banks=[2, 2])),
}

# name -> (input shape HWC, layer spec for kofn.core.testing.random_cnn, lanes, model kwargs)
CNN_DESIGNS = {
    # weight-level conv with "same" padding and lane padding (k=5, P=2), pool, kernel-level conv
    # with P=4 not dividing K*K=9 (lanes straddle kernels), dense head
    "cnn_mixed": ((8, 8, 2), [("conv", 4, 3, 1, 1, "weight", 5), ("pool",), ("conv", 6, 3, 1, 0, "kernel", 2),
                              ("dense", 10, 8)], [2, None, 4, 4], {}),
    # stride 2 "valid" leaving a trailing input row (never read), conv -> conv, kernel level
    # with P=7 (wider than a 2x2 kernel), signed input and signed hidden activations
    "cnn_stride": ((8, 7, 3), [("conv", 3, 3, 2, 0, "weight", 4), ("conv", 5, 2, 1, 0, "kernel", 2),
                               ("dense", 6, 5)], [3, 7, 2],
                   dict(input_fmt=F(6, 2), hidden_fmt=F(7, 3))),
    # 5x5 "same" with one whole kernel per step (P=25), pools dropping odd rows and columns
    # (output leaves before the trailing input is consumed), stride-2 "same", P=1 dense
    "cnn_odd": ((11, 10, 1), [("conv", 4, 5, 1, 2, "kernel", 1), ("pool",), ("conv", 3, 3, 2, 1, "weight", 7),
                              ("pool",), ("dense", 5, 3)], [25, None, 7, None, 1], {}),
    # a pool straight after the input (signed codes: a signed comparison), then a dense layer
    # on the flattened HWC image
    "cnn_pool_first": ((5, 6, 3), [("pool",), ("dense", 4, 6)], [None, 3], dict(input_fmt=F(6, 2))),
    # banked weight-level conv (a 3x3x2 window of 18 in 3 banks of 6, k/P = 2), pool, banked dense
    # (36 inputs in 6 banks of 6, k/P = 1)
    "cnn_bank": ((6, 6, 2), [("conv", 4, 3, 1, 1, "bank", 6, 3), ("pool",), ("dense", 5, 6, 6)], [3, None, 6], {}),
    # a ResNet's projection: 1x1 with stride 2 (stride > kernel: every other pixel of every other
    # row, the trailing odd column never read), then 1x1 with stride 3 on a 4x5 image
    "cnn_1x1_stride": ((7, 9, 2), [("conv", 3, 1, 2, 0, "weight", 1), ("conv", 4, 1, 3, 0, "weight", 2),
                                   ("dense", 5, 6)], [1, 2, 2], {}),
    # global average pooling over 7x6 = 42 pixels (not a power of two: the divider multiplies),
    # one fraction bit fewer out than in (DEN = 84), a third of the means saturating
    "cnn_gap": ((7, 6, 1), [("conv", 3, 3, 1, 1, "weight", 4), ("gap", F(6, 4)), ("dense", 3, 3)], [2, None, 2],
                dict(hidden_fmt=F(8, 5))),
    # global average pooling straight after s_axis on signed codes (negative sums), one
    # fraction bit more out than in
    "cnn_gap_first": ((5, 6, 2), [("gap", F(8, 3)), ("dense", 3, 2)], [None, 2], dict(input_fmt=F(6, 2))),
}

ALL_DESIGNS = sorted(DESIGNS) + sorted(CNN_DESIGNS)


def design(name: str, seed: int = 0):
    if name in CNN_DESIGNS:
        shape, spec, lanes, kw = CNN_DESIGNS[name]
        return random_cnn(shape, spec, seed=seed, **kw), lanes
    sizes, ks, lanes, kw = DESIGNS[name]
    return random_model(sizes, ks, seed=seed, **kw), lanes


def estimate_report(plan, measured=None):
    """The :class:`kofn.app.report.Report` a flow would write for ``plan`` (a
    :class:`kofn.codegen.BuildPlan`) before any simulation; ``measured``: an RTL simulation's
    ``(latency, ii)`` for it to carry, or ``None``."""
    from kofn.app.flow import layer_figures
    from kofn.app.report import LatencyFigures, Report, resources_report
    from kofn.codegen import memory_bits, resources

    m, lat = plan.model, plan.latency
    return Report(
        kofn_version="test", name=m.name, top=plan.top, layers=tuple(layer_figures(p) for p in plan.layers),
        latency=LatencyFigures(lat.total_cycles, lat.ii_cycles, (), lat.throughput(plan.clock_mhz), plan.clock_mhz,
                               *(measured or (None, None)), schedule=plan.schedule, stream_in=plan.stream_in,
                               stream_out=plan.stream_out),
        memory=memory_bits(plan.layers, plan.schedule),
        resources=resources_report(resources(m, plan.layers, "xc7", plan.schedule, plan.stream_in, plan.stream_out),
                                   "xc7"), model=m,
        efficiency=plan.efficiency)
