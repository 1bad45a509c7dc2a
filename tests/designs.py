"""Random designs shared by the codegen and simulation tests, chosen to cover the corners."""

from __future__ import annotations

from kofn.fixed import FixedFormat as F
from kofn.testing import random_model

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
}


def design(name: str, seed: int = 0):
    sizes, ks, lanes, kw = DESIGNS[name]
    return random_model(sizes, ks, seed=seed, **kw), lanes
