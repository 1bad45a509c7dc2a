"""Datasets: scikit-learn's bundled 8x8 digits (the embedded default) and MNIST IDX files.

Images are returned as float32 in [0, 1], flattened, with int64 labels.  Nothing is
downloaded: digits ship inside scikit-learn, and MNIST is read from a folder of the
standard IDX files (gzipped or not).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError

__all__ = ["Dataset", "load_digits", "load_mnist", "read_idx", "write_idx", "MNIST_SPLIT"]

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
    """Read one IDX file (``.gz`` or plain) into a numpy array; :class:`DataError` naming the
    file when it is unreadable, truncated or not an unsigned-byte IDX file."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: empty or truncated (no IDX header)")
            zero, dtype_code, ndim = struct.unpack(">HBB", head)
            if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
                raise DataError(f"{path}: not an unsigned-byte IDX file (magic 0x{head.hex()}, expected 0x000008"
                                "01 for labels or 0x00000803 for images)")
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            shape = struct.unpack(">" + "I" * ndim, dims)
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read it: {e}") from None
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated or padded: its header promises {' x '.join(map(str, shape))} values "
                        f"({int(np.prod(shape)):,} bytes), the file holds {data.size:,}")
    return data.reshape(shape)


def write_idx(path: str | Path, arr: np.ndarray, magic: int | None = None) -> None:
    """Write ``arr`` as an unsigned-byte IDX file (what :func:`read_idx` reads); ``magic``
    replaces the 4-byte magic number (to make a broken file on purpose)."""
    arr = np.asarray(arr)
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) if magic is None else struct.pack(">I", magic)
    Path(path).write_bytes(head + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes())


def _find(directory: Path, stem: str) -> Path:
    for cand in (directory / stem, directory / f"{stem}.gz"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"{directory}: neither {stem} nor {stem}.gz found")


def _images_labels(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    ip, lp = _find(d, f"{split}-images-idx3-ubyte"), _find(d, f"{split}-labels-idx1-ubyte")
    x, y = read_idx(ip), read_idx(lp)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{ip}: holds images of shape {' x '.join(map(str, x.shape[1:]))}, MNIST's are 28 x 28")
    if y.ndim != 1:
        raise DataError(f"{lp}: a label file is one-dimensional, this one is {' x '.join(map(str, y.shape))}")
    if len(x) != len(y):
        raise DataError(f"{lp}: {len(y):,} labels for the {len(x):,} images of {ip.name}")
    if len(y) and y.max() > 9:
        raise DataError(f"{lp}: label {int(y.max())} at index {int(y.argmax())}; MNIST's labels are 0..9")
    return x.reshape(-1, 784).astype(np.float32) / 255.0, y.astype(np.int64)


def load_mnist(directory: str | Path) -> Dataset:
    """MNIST from a folder of IDX files.

    With the full set (``train-*`` files present) the standard 60k/10k split is used;
    with only the ``t10k-*`` files, the MNIST-10k protocol: images 0..7999 train,
    8000..9999 test.  Any problem is a :class:`DataError` naming the file.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: " + ("not a folder" if d.exists() else "no such folder") +
                        " (data.path names the folder of MNIST's IDX files)")
    try:
        xt, yt = _images_labels(d, "t10k")
    except FileNotFoundError as e:
        raise DataError(f"{e} (the MNIST test set, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, is required)") from None
    try:
        xr, yr = _images_labels(d, "train")
        return Dataset("mnist", xr, yr, xt, yt)
    except FileNotFoundError:
        if len(yt) <= MNIST_SPLIT:
            raise DataError(f"{d}: the MNIST-10k protocol trains on test images 0..{MNIST_SPLIT - 1} and tests on the "
                            f"rest; this t10k set has only {len(yt):,} images") from None
        return Dataset("mnist-10k", xt[:MNIST_SPLIT], yt[:MNIST_SPLIT], xt[MNIST_SPLIT:], yt[MNIST_SPLIT:])
