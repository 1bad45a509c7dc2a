"""Progress lines of a sweep with an ETA (:class:`Tally`): ``[done/total] what (seconds;
elapsed, about N left)``, one per point as it finishes, cached points counted at once."""

from __future__ import annotations

import math
import time

__all__ = ["Tally"]


class Tally:
    """``[done/total] ...`` progress lines: cached points count as done at once; the ETA comes
    from the computed ones: their throughput once as many finished as there are workers, before
    that the time the first ones took, ``workers`` tasks at a time."""

    def __init__(self, total: int, workers: int) -> None:
        self.total, self.workers = total, max(1, workers)
        self.done = self.computed = 0
        self.to_compute = total
        self.seconds: list[float] = []
        self.t0 = time.perf_counter()

    def cached(self, what: str) -> str:
        self.done += 1
        self.to_compute -= 1
        return f"[{self.done}/{self.total}] {what} (cached)"

    def start(self) -> None:
        """The clock of the computed tasks starts here (after the cluster is up)."""
        self.t0 = time.perf_counter()

    def finished(self, what: str, seconds: float) -> str:
        self.done += 1
        self.computed += 1
        self.seconds.append(seconds)
        elapsed = time.perf_counter() - self.t0
        left = self.to_compute - self.computed
        if left <= 0:
            eta = 0.0
        elif self.computed >= self.workers:
            eta = elapsed / self.computed * left
        else:  # the first wave: a task takes about what the first ones took, `workers` at a time
            eta = elapsed * math.ceil(left / self.workers)
        tail = f"{elapsed:.0f} s elapsed" + (f", about {_dur(eta)} left" if left > 0 else ", done")
        return f"[{self.done}/{self.total}] {what} ({seconds:.1f} s; {tail})"


def _dur(s: float) -> str:
    s = int(round(s))
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60:02d} s"

