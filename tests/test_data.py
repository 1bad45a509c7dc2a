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


def _cifar_folder(tmp_path, n=(3, 2, 2, 2, 2, 4), seed=0):
    """A CIFAR-10 folder of generated batches (n images each), and the HWC images written."""
    from kofn.app.data import CIFAR_BATCHES, write_cifar_batch

    rng = np.random.default_rng(seed)
    written = []
    for name, k in zip(CIFAR_BATCHES, n):
        x = rng.integers(0, 256, size=(k, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, size=k)
        write_cifar_batch(tmp_path / name, x, y)
        written.append((x, y))
    return written


def test_cifar10_reads_the_python_batches_in_hwc_order(tmp_path):
    """Pixel (y, x) channel c of an image is byte c * 1024 + y * 32 + x of its row in the
    file (the red plane, then green, then blue); kofn streams HWC: (y * 32 + x) * 3 + c."""
    import pickle

    from kofn.app.data import load_cifar10

    written = _cifar_folder(tmp_path)
    raw = pickle.loads((tmp_path / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    ds = load_cifar10(tmp_path)
    assert ds.name == "cifar10" and ds.x_train.shape == (11, 3072) and ds.x_test.shape == (4, 3072)
    for (y, x, c) in [(0, 0, 0), (0, 1, 0), (5, 7, 2), (31, 31, 1)]:
        assert ds.x_train[0, (y * 32 + x) * 3 + c] == np.float32(raw[0, c * 1024 + y * 32 + x] / 255.0)
    np.testing.assert_array_equal(ds.y_train, np.concatenate([w[1] for w in written[:5]]))
    np.testing.assert_array_equal(ds.y_test, written[5][1])
    np.testing.assert_array_equal(np.round(ds.x_test * 255).astype(np.uint8), written[5][0])


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "data_batch_3").unlink(), r"data_batch_3: no such file"),
    (lambda d: (d / "test_batch").write_bytes(b"not a pickle"), r"test_batch: not a CIFAR-10 batch"),
    (lambda d: (d / "data_batch_2").write_bytes(__import__("pickle").dumps({b"data": np.zeros((2, 100), np.uint8),
                                                                           b"labels": [0, 1]})),
     r"data_batch_2: b'data' is uint8 2 x 100"),
    (lambda d: (d / "data_batch_1").write_bytes(__import__("pickle").dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                                           b"labels": [0, 12]})),
     r"data_batch_1: label 12"),
    (lambda d: (d / "data_batch_5").write_bytes(__import__("pickle").dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                                           b"labels": ["cat", "dog"]})),
     r"data_batch_5: the labels are <U3, not integers"),
    (lambda d: (d / "data_batch_4").write_bytes(__import__("pickle").dumps(__import__("collections").OrderedDict())),
     r"data_batch_4: not a CIFAR-10 batch \(UnpicklingError: refusing to load collections.OrderedDict\)"),
])
def test_a_damaged_cifar10_folder_names_the_file(tmp_path, damage, message):
    from kofn.app.data import load_cifar10
    from kofn.core.errors import DataError

    _cifar_folder(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path)


def test_a_cifar10_config_needs_its_folder_and_takes_32x32x3_images():
    from kofn.app.config import parse_config
    from kofn.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.path: is required for dataset 'cifar10'"):
        parse_config('[data]\ndataset = "cifar10"\n[[layers]]\nout_features = 10\nk = 4\n')
    cfg = parse_config('[data]\ndataset = "cifar10"\npath = "/x"\n[[layers]]\ntype = "conv"\nout_channels = 2\n'
                       'kernel = 3\nk = 9\n[[layers]]\nout_features = 10\nk = 4\nrelu = false\n')
    assert cfg.input_shape == (32, 32, 3) and cfg.data.n_features == 3072
