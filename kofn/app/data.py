"""Datasets: scikit-learn's bundled 8x8 digits (the embedded default) and MNIST IDX files.

Images are returned as float32 in [0, 1], flattened, with int64 labels.  Nothing is
downloaded: digits ship inside scikit-learn, and MNIST is read from a folder of the
standard IDX files (gzipped or not).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "load_digits", "load_mnist", "read_idx", "MNIST_SPLIT"]

#: The "MNIST-10k protocol" (see ../shared/data/mnist/README.md): the first 8000 test-set
#: images train, the last 2000 test.
MNIST_SPLIT = 8000


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The 1797 8x8 digits, pixel values 0..16 scaled to [0, 1]; a seeded stratified-free shuffle split."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    te, tr = order[:n_test], order[n_test:]
    return Dataset("digits", x[tr], y[tr], x[te], y[te])


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a numpy array."""
    path = Path(path)
    with _open(path) as f:
        zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise ValueError(f"{path}: not an unsigned-byte IDX file")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} bytes of data, found {data.size}")
    return data.reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for cand in (directory / stem, directory / f"{stem}.gz"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"{directory}: neither {stem} nor {stem}.gz found")


def load_mnist(directory: str | Path) -> Dataset:
    """MNIST from a folder of IDX files.

    With the full set (``train-*`` files present) the standard 60k/10k split is used;
    with only the ``t10k-*`` files, the MNIST-10k protocol: images 0..7999 train,
    8000..9999 test.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"MNIST folder {d} does not exist")
    xt = read_idx(_find(d, "t10k-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255.0
    yt = read_idx(_find(d, "t10k-labels-idx1-ubyte")).astype(np.int64)
    try:
        xr = read_idx(_find(d, "train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255.0
        yr = read_idx(_find(d, "train-labels-idx1-ubyte")).astype(np.int64)
        return Dataset("mnist", xr, yr, xt, yt)
    except FileNotFoundError:
        return Dataset("mnist-10k", xt[:MNIST_SPLIT], yt[:MNIST_SPLIT], xt[MNIST_SPLIT:], yt[MNIST_SPLIT:])
