from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


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
