from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the cores: idle OpenMP threads (torch) sleep instead of spinning, and
    # numpy's OpenBLAS (light use here; its idle threads spin too) keeps to one thread.  Set
    # before torch and numpy load; the kofn commands and simulators the tests start inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"

#: Test files that take minutes (whole flows with large Verilator builds, place and route, the
#: formal check, sweeps), in the order they start: `--dist loadfile` hands a file to a worker
#: whole, and a long file started last would run alone at the end.
SLOW_FILES = ("test_examples.py", "test_flow.py", "codegen/test_synth.py", "test_methods_flow.py", "test_sweep_dask.py",
              "codegen/test_pnr.py", "test_prove.py", "test_qonnx.py", "sim/test_rtl.py", "test_fuzz_flow.py")


def pytest_collection_modifyitems(config, items):
    """The files of :data:`SLOW_FILES` first, in that order; the rest as collected."""
    rank = {f"tests/{f}": i for i, f in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable


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
