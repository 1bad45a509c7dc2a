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
