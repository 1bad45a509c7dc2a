"""Stage-by-stage progress lines on stderr, with elapsed seconds."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Progress"]


class Progress:
    """``progress(msg)`` prints a line; ``with progress.stage(name):`` times a stage into
    :attr:`times` (seconds per stage, for the report)."""

    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.times: dict[str, float] = {}

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[kofn {time.perf_counter() - self.t0:6.1f}s] {msg}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self(f"{name} ...")
        t = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - t, 3)
        self(f"{name} done in {self.times[name]:.1f}s")
