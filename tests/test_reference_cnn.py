"""The integer reference for images: convolution (weight and kernel level, stride, padding)
and max pooling, checked against torch's own conv2d / max_pool2d on the integer codes,
plus IR validation and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from designs import CNN_DESIGNS, design
from kofn.core import ir
from kofn.core.rules import same_padding
from kofn.core.fixed import FixedFormat as F
from kofn.core.fixed import requantize
from kofn.core.reference import conv2d, maxpool2d, run, run_layers, windows
from kofn.core.testing import random_cnn, random_inputs


def _torch_conv_codes(x: np.ndarray, L: ir.Conv2dLayer) -> np.ndarray:
    """The convolution computed independently: torch conv2d in float64 on the integer codes
    (exact: every partial sum is an integer far below 2**53), then the shared requantize."""
    h, w, c = L.in_shape
    img = torch.as_tensor(x, dtype=torch.float64).reshape(-1, h, w, c).permute(0, 3, 1, 2)
    dense = L.dense_weights().reshape(L.rows, L.kernel, L.kernel, c)  # window order (ky, kx, c)
    wt = torch.as_tensor(dense, dtype=torch.float64).permute(0, 3, 1, 2)  # [C_out, C_in, K, K]
    acc = torch.nn.functional.conv2d(img, wt, stride=L.stride, padding=L.pad)
    acc = acc + torch.as_tensor(L.bias * 2.0 ** L.accumulator.bias_shift).reshape(1, -1, 1, 1)
    acc = acc.permute(0, 2, 3, 1).reshape(len(x), -1).numpy()
    assert np.all(acc == np.round(acc))
    return requantize(acc.astype(np.int64), L.accumulator.frac, L.output_fmt, L.relu)


@pytest.mark.parametrize(
    "shape,spec",
    [
        ((8, 8, 2), ("conv", 4, 3, 1, 1, "weight", 5)),
        ((8, 7, 3), ("conv", 3, 3, 2, 0, "weight", 27)),  # every weight kept, stride 2
        ((9, 9, 4), ("conv", 5, 5, 2, 2, "kernel", 3)),  # 5x5 "same", stride 2
        ((6, 6, 5), ("conv", 2, 2, 1, 0, "kernel", 1)),  # even kernel, valid
        ((5, 5, 1), ("conv", 3, 1, 1, 0, "kernel", 1)),  # 1x1
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conv_matches_torch_conv2d(shape, spec, seed):
    m = random_cnn(shape, [spec, ("dense", 3, 2)], seed=seed, hidden_fmt=F(9, 4))
    L = m.layers[0]
    x = random_inputs(m, 16, seed=seed)
    np.testing.assert_array_equal(conv2d(x, L), _torch_conv_codes(x, L))


def test_conv_chunking_does_not_change_results():
    m = random_cnn((7, 7, 3), [("conv", 4, 3, 1, 1, "kernel", 2), ("dense", 3, 2)], seed=4)
    x = random_inputs(m, 9, seed=4)
    np.testing.assert_array_equal(conv2d(x, m.layers[0], max_elements=1), conv2d(x, m.layers[0]))


def test_kernel_level_field_indices_are_whole_kernels():
    m = random_cnn((6, 6, 4), [("conv", 3, 3, 1, 0, "kernel", 2), ("dense", 3, 2)], seed=5)
    L = m.layers[0]
    fi = L.field_indices.reshape(L.rows, L.k, 9)
    for r in range(L.rows):
        for j, ch in enumerate(L.indices[r]):
            assert list(fi[r, j]) == [t * 4 + ch for t in range(9)]


@pytest.mark.parametrize("shape", [(4, 4, 3), (5, 7, 2), (2, 3, 1)])
def test_maxpool_matches_torch(shape):
    m = random_cnn(shape, [("pool",), ("dense", 2, 1)], seed=1, input_fmt=F(6, 2))  # signed codes
    x = random_inputs(m, 10, seed=2)
    h, w, c = shape
    want = torch.nn.functional.max_pool2d(
        torch.as_tensor(x, dtype=torch.float64).reshape(-1, h, w, c).permute(0, 3, 1, 2), 2
    ).permute(0, 2, 3, 1).reshape(10, -1).numpy().astype(np.int64)
    np.testing.assert_array_equal(maxpool2d(x, m.layers[0]), want)


def test_windows_are_hwc_tap_major_with_zero_padding():
    x = np.arange(1, 2 * 2 * 2 + 1).reshape(1, -1)  # 2x2 image, 2 channels: pixel p channel c = 2p+c+1
    win = windows(x, (2, 2, 2), 3, 1, 1)  # 3x3 "same": 4 windows of 18 values
    assert win.shape == (1, 4, 18)
    # window at (0, 0): taps (ky, kx) over rows -1..1, cols -1..1; only (1,1),(1,2),(2,1),(2,2) inside
    expect = np.zeros(18, dtype=np.int64)
    for (ky, kx), pixel in {(1, 1): 0, (1, 2): 1, (2, 1): 2, (2, 2): 3}.items():
        t = ky * 3 + kx
        expect[t * 2 : t * 2 + 2] = [2 * pixel + 1, 2 * pixel + 2]
    np.testing.assert_array_equal(win[0, 0], expect)


@pytest.mark.parametrize("name", sorted(CNN_DESIGNS))
def test_ir_round_trip_images(name, tmp_path):
    m, _ = design(name, seed=3)
    ir.save(m, tmp_path)
    m2 = ir.load(tmp_path)
    assert [l.kind for l in m2.layers] == [l.kind for l in m.layers]
    assert m2.input_shape == m.input_shape
    x = random_inputs(m, 20, seed=1)
    for a, b in zip(run_layers(m, x), run_layers(m2, x)):
        np.testing.assert_array_equal(a, b)


def test_ir_rejects_bad_image_models():
    m = random_cnn((6, 6, 2), [("conv", 3, 3, 1, 0, "kernel", 2), ("pool",), ("dense", 4, 3)], seed=0)
    conv, pool, dense = m.layers
    with pytest.raises(ValueError, match="last layer must be dense"):
        ir.Model("x", (conv, pool))
    with pytest.raises(ValueError, match="expects an image"):
        ir.Model("x", (conv, ir.MaxPool2dLayer("p", (5, 5, 3), conv.output_fmt), dense))
    with pytest.raises(ValueError, match="channel entry is outside"):
        ir.Conv2dLayer("c", (6, 6, 2), 3, 1, 0, "kernel", np.array([[0, 2]]), np.zeros((1, 18)), np.zeros(1),
                       F(8, 1, False), F(8, 2), F(12, 4), F(8, 3, False), True)
    with pytest.raises(ValueError, match="weights .* must be"):
        ir.Conv2dLayer("c", (6, 6, 2), 3, 1, 0, "kernel", np.array([[0, 1]]), np.zeros((1, 2)), np.zeros(1),
                       F(8, 1, False), F(8, 2), F(12, 4), F(8, 3, False), True)
    with pytest.raises(ValueError, match="does not fit"):
        ir.Conv2dLayer("c", (2, 2, 1), 3, 1, 0, "weight", np.array([[0]]), np.zeros((1, 1)), np.zeros(1),
                       F(8, 1, False), F(8, 2), F(12, 4), F(8, 3, False), True)
    with pytest.raises(ValueError, match="odd kernel"):
        same_padding(4)
    with pytest.raises(ValueError, match="unique"):
        ir.Model("x", (conv, ir.MaxPool2dLayer("l0", conv.out_shape, conv.output_fmt),
                       ir.DenseLayer("l2", 8, np.array([[0]]), np.array([[1]]), np.array([0]),
                                     conv.output_fmt, F(8, 2), F(12, 4), F(12, 6), False)))


def test_run_checks_image_input_size():
    m, _ = design("cnn_mixed")
    assert m.n_inputs == 8 * 8 * 2
    with pytest.raises(ValueError, match=r"\[batch, 128\]"):
        run(m, np.zeros((2, 64), dtype=np.int64))
