from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One compute thread per xdist worker (torch, numpy's BLAS, and the kofn commands the
    # tests start): the workers already fill the cores, and two workers each spinning one
    # thread per core only contend.  Set before torch is imported.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

#: Test files that take minutes (a synthesized corpus, whole flows, place and route), in the
#: order they start: `--dist loadfile` hands a file to a worker whole, and without this the
#: longest (the calibration corpus) would start last and run alone at the end.
SLOW_FILES = ("codegen/test_synth.py", "test_flow.py", "test_methods_flow.py", "test_qonnx.py",
              "codegen/test_pnr.py", "test_sweep_dask.py", "test_prove.py")


def pytest_collection_modifyitems(config, items):
    """The files of :data:`SLOW_FILES` first, in that order; the rest as collected."""
    rank = {f"tests/{f}": i for i, f in enumerate(SLOW_FILES)}

    def key(item):
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the order within a file and among the others is kept


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists() and not (MNIST_DIR / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST test set not found at {MNIST_DIR} (see ../shared/data/mnist/README.md)")
    return MNIST_DIR


def pytest_addoption(parser):
    parser.addoption("--fuzz-seed", type=int, default=0,
                     help="first seed of the fuzzed tests (tests/test_robust.py, tests/test_fuzz_flow.py); "
                          "a longer campaign: python -m kofn.app.fuzz --seeds 0-99")


@pytest.fixture(scope="session")
def fuzz_seed(request) -> int:
    return request.config.getoption("--fuzz-seed")
