"""Dataset loaders: the bundled digits and the IDX reader (real MNIST when present)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from kofn.core.errors import DataError

from kofn.app.data import MNIST_SPLIT, load_digits, load_mnist, read_idx


def _write_idx(path, arr, gz):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open(path, "wb") if gz else open(path, "wb")).write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    p = tmp_path / ("a.gz" if gz else "a")
    _write_idx(p, arr, gz)
    np.testing.assert_array_equal(read_idx(p), arr)


def test_idx_rejects_truncated(tmp_path):
    p = tmp_path / "t"
    p.write_bytes(struct.pack(">HBBI", 0, 8, 1, 10) + b"\x00" * 3)
    with pytest.raises(DataError, match=r"promises 10 values \(10 bytes\), the file holds 3"):
        read_idx(p)


def test_mnist_10k_protocol_from_plain_files(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (10000, 28, 28))
    labels = np.arange(10000) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", imgs, False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, False)
    ds = load_mnist(tmp_path)
    assert ds.name == "mnist-10k"
    assert ds.x_train.shape == (MNIST_SPLIT, 784) and ds.x_test.shape == (2000, 784)
    np.testing.assert_array_equal(ds.y_test, labels[MNIST_SPLIT:])
    np.testing.assert_allclose(ds.x_test[0], imgs[MNIST_SPLIT].reshape(-1) / 255.0, rtol=1e-6)


def test_real_mnist(mnist_dir):
    ds = load_mnist(mnist_dir)
    assert ds.x_train.shape == (8000, 784) and ds.x_test.shape == (2000, 784)
    assert 0.0 <= ds.x_test.min() and ds.x_test.max() <= 1.0
    assert set(np.unique(ds.y_test)) == set(range(10))


def test_digits():
    ds = load_digits()
    assert ds.n_features == 64 and len(ds.y_test) + len(ds.y_train) == 1797
    assert len(ds.y_test) >= 300
    with pytest.raises(DataError, match="/nonexistent/mnist: no such folder"):
        load_mnist("/nonexistent/mnist")
