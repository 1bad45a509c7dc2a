"""Helpers of the robustness tests (``tests/test_robust.py``, ``tests/test_robust_builds.py``):
a folder's contents by hash, what a run left beside its output, the one-line user error,
and a quick config."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from kofn.app.config import default_config_text

__all__ = ["tree", "leftovers", "user_error", "fast_config"]


def tree(p: Path) -> dict[str, str]:
    """Every file under ``p`` (relative path -> sha256): byte-identical means equal dicts."""
    return {str(f.relative_to(p)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(p.rglob("*"))
            if f.is_file() or f.is_symlink()}


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.kofn-"))


def user_error(capsys, what: str, culprit: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"kofn: {what}: "), last
    assert culprit in last, last
    return last


def fast_config(**sim) -> str:
    text = default_config_text()
    text = re.sub(r"^epochs = \d+", "epochs = 1", text, count=1, flags=re.M)
    text = re.sub(r"^random_vectors = \d+", "random_vectors = 20", text, count=1, flags=re.M)
    text = re.sub(r"^test_vectors = -?\d+", "test_vectors = 20", text, count=1, flags=re.M)
    for k, v in sim.items():
        text = re.sub(rf"^{k} = \w+", f"{k} = {v}", text, count=1, flags=re.M)
    return text
