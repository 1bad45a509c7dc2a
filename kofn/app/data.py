"""Datasets: scikit-learn's bundled 8x8 digits (the embedded default), MNIST IDX files and
CIFAR-10's "python version" batches.

Images are returned as float32 in [0, 1], flattened (HWC: the order pixels stream into the
hardware), with int64 labels.  Nothing is downloaded: digits ship inside scikit-learn, MNIST is
read from a folder of the standard IDX files (gzipped or not), CIFAR-10 from a folder of
``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (the pickled dicts of
``cifar-10-python.tar.gz``, unpacked).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError

__all__ = ["Dataset", "load_digits", "load_mnist", "load_cifar10", "read_cifar_batch", "write_cifar_batch",
           "read_idx", "write_idx", "MNIST_SPLIT", "CIFAR_BATCHES"]

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


#: CIFAR-10's "python version": five training batches and one test batch of 10,000 images each.
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file: ``(images [N, 3072] uint8 in HWC order, labels [N] int64)``.

    The file is a pickled dict whose ``b"data"`` is ``[N, 3072]`` uint8, each row the 1024 red,
    then green, then blue values of a 32x32 image (row-major), and ``b"labels"`` N labels 0..9.
    Unpickling runs with a restricted loader that builds only dicts, lists, strings, numbers and
    numpy arrays (a pickle can otherwise run code).  Any defect is a :class:`DataError` naming
    the file."""
    import pickle

    path = Path(path)

    class _Safe(pickle.Unpickler):
        ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                   ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                   ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # protocol 2's bytes

        def find_class(self, module, name):
            if (module, name) in self.ALLOWED:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    try:
        with open(path, "rb") as f:
            doc = _Safe(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (a CIFAR-10 folder holds {', '.join(CIFAR_BATCHES)})") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise DataError(f"{path}: not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(doc, dict) or b"data" not in doc or b"labels" not in doc:
        raise DataError(f"{path}: not a CIFAR-10 batch (a dict with b'data' and b'labels' expected)")
    x = np.asarray(doc[b"data"])
    y = np.asarray(doc[b"labels"])
    if x.ndim != 2 or x.shape[1] != 3072 or x.dtype != np.uint8:
        raise DataError(f"{path}: b'data' is {x.dtype} {' x '.join(map(str, x.shape))}; CIFAR-10's is uint8 N x 3072")
    if y.shape != (len(x),):
        raise DataError(f"{path}: {y.size:,} labels for {len(x):,} images")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: the labels are {y.dtype}, not integers 0..9")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: label {int(y.max() if y.max() > 9 else y.min())}; CIFAR-10's labels are 0..9")
    hwc = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(-1, 3072)
    return np.ascontiguousarray(hwc), y.astype(np.int64)


def write_cifar_batch(path: str | Path, images_hwc: np.ndarray, labels) -> None:
    """Write a batch in CIFAR-10's format (what :func:`read_cifar_batch` reads) from HWC
    images ``[N, 32 * 32 * 3]`` uint8: for tests and for users converting their own data."""
    import pickle

    x = np.asarray(images_hwc, dtype=np.uint8).reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2).reshape(-1, 3072)
    doc = {b"batch_label": b"kofn", b"labels": [int(v) for v in labels], b"data": x,
           b"filenames": [f"{i}.png".encode() for i in range(len(x))]}
    with open(path, "wb") as f:
        pickle.dump(doc, f, protocol=2)


def load_cifar10(directory: str | Path) -> Dataset:
    """CIFAR-10 from a folder of its "python version" batches: ``data_batch_1`` .. ``5`` train
    (50,000 images), ``test_batch`` tests (10,000); pixel values scaled to [0, 1], HWC."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: " + ("not a folder" if d.exists() else "no such folder") +
                        " (data.path names the folder of CIFAR-10's python batches)")
    parts = [read_cifar_batch(d / name) for name in CIFAR_BATCHES]
    xr = np.concatenate([p[0] for p in parts[:-1]]).astype(np.float32) / 255.0
    yr = np.concatenate([p[1] for p in parts[:-1]])
    xt, yt = parts[-1]
    return Dataset("cifar10", xr, yr, xt.astype(np.float32) / 255.0, yt)
