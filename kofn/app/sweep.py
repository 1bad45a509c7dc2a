"""Sweeps as tasks: where ``kofn explore`` and ``kofn compare`` run their trainings, and the
cache that lets a rerun skip the points already done.

**Where tasks run** (``--scheduler``):

* ``local`` (the default): an embedded :class:`distributed.LocalCluster` of ``--workers``
  processes (default: one per core, capped at the number of tasks), one thread each, bound to
  127.0.0.1, no dashboard.  It starts only when there is something to compute and is closed
  when the command ends, fails or is interrupted.
* ``tcp://HOST:PORT`` (or ``HOST:PORT``, or a scheduler file written by ``dask scheduler
  --scheduler-file F``): an existing Dask cluster.  The address is checked first (a plain TCP
  connection, then the scheduler's identity), so a wrong one is a one-line error within
  :data:`CONNECT_TIMEOUT` seconds, not a hang.  Every worker connected at the start must run
  the same kofn code, torch and numpy as this client (:func:`environment`): the cache key
  vouches for the code that computed a point.
* ``processes``: no Dask, a :class:`concurrent.futures.ProcessPoolExecutor` of ``--workers``
  processes (the fallback, and the baseline of ``benchmarks/sweep_dask.py``).

**Task inputs and outputs.**  A task is a top-level function ``fn(common, item)``.  ``common``
(the dataset, the initial weights) is sent once per worker (``client.scatter(...,
broadcast=True)``; the process pool's initializer); ``item`` is the task's own config.  A task
returns plain data (dicts, bytes, numbers): a trained model comes back as the bytes of the IR
files (``model.json``, ``model.npz``) and the client writes them.  Workers need kofn installed
and nothing else: no shared file system, no access to ``--out`` or to the dataset's files.
A :class:`~kofn.core.errors.KofnError` raised in a task comes back as that same error (one
line, exit 2); a worker that keeps dying (:class:`distributed.scheduler.KilledWorker`) or a
lost scheduler is a :class:`SweepError`.

**Cache and resume** (:class:`PointCache`).  Every finished point is written, as it finishes,
into a journal folder beside the output folder, ``OUT_PARENT/.OUT.kofn-points/`` (it survives
an interrupted or failed run: the run's own temporary output folder does not).  The finished
output folder holds the same entries for every point of the run: ``OUT/points/<tag>.json``
(the result, the cache key, what it was computed from, the SHA-256 of each file) and, for a
trained model, ``OUT/models/<tag>/model.json`` and ``model.npz``.  A run looks a point up in
the journal first, then in the existing ``OUT``, and reuses it only when the key matches: the
SHA-256 of the point's whole config (sim settings and the config's path left out), the
dataset's arrays, the initial weights (``--from``), kofn's version and the SHA-256 of the
source files that compute the point (:func:`code_digest`), torch's and numpy's versions.  A
successful run removes the journal (its points are in ``OUT`` now).  ``--fresh`` ignores both.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..core.errors import KofnError, UsageError
from .outdir import write_atomic

__all__ = ["sweep_options", "CONNECT_TIMEOUT", "SweepError", "Scheduler", "parse_scheduler", "cores", "TaskRunner",
           "Tally", "PointCache", "cache_key", "plain", "code_digest", "environment", "data_digest", "arrays_digest"]

#: Seconds to reach a ``--scheduler`` before giving up with a one-line error.
CONNECT_TIMEOUT = 10.0
#: Seconds to wait for a first worker on a cluster that has none.
WORKER_WAIT = 60.0


class SweepError(KofnError):
    """The cluster failed under a sweep: a worker kept dying on a task, the scheduler went away."""

    what = "system"


# ---------------------------------------------------------------------------------------------
# --scheduler


@dataclass(frozen=True)
class Scheduler:
    """Where tasks run: ``kind`` is ``local``, ``processes`` or ``address`` (``address`` set)."""

    kind: str
    address: str | None = None
    source: str = ""  # what the user wrote (an address or a scheduler file)

    def describe(self) -> str:
        return {"local": "local", "processes": "processes"}.get(self.kind, self.address or "")


def parse_scheduler(text: str | None) -> Scheduler:
    """``--scheduler``'s value: ``local`` (or none), ``processes``, ``tcp://HOST:PORT``,
    ``HOST:PORT`` or the JSON file a ``dask scheduler --scheduler-file`` wrote."""
    t = (text or "local").strip()
    if t in ("local", "processes"):
        return Scheduler(t)
    if "://" in t:
        return Scheduler("address", t, t)
    p = Path(t).expanduser()
    if p.is_file():
        try:
            address = json.loads(p.read_text())["address"]
            if not isinstance(address, str) or "://" not in address:
                raise ValueError(f"address {address!r}")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(f"--scheduler: {p}: not a Dask scheduler file ({e})") from None
        return Scheduler("address", address, str(p))
    if re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}", t):
        return Scheduler("address", f"tcp://{t}", t)
    raise UsageError(f"--scheduler: {t!r}: expected local, processes, tcp://HOST:PORT or a scheduler file "
                     "(dask scheduler --scheduler-file FILE)")


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def sweep_options(p) -> None:
    """Add ``--scheduler`` and ``--fresh`` to an argparse parser (``kofn explore``, ``kofn compare``)."""
    p.add_argument("--scheduler", default="local", metavar="WHERE",
                   help="where the trainings run: local (default: an embedded Dask LocalCluster, one worker process "
                        "per core), tcp://HOST:PORT (an existing `dask scheduler`; its `dask worker`s need kofn "
                        "installed, no shared files), a scheduler file (dask scheduler --scheduler-file FILE), or "
                        "processes (a plain process pool, no Dask)")
    p.add_argument("--fresh", action="store_true",
                   help="recompute every point; by default the points a previous run into the same --out finished "
                        "(even an interrupted one) are reused when their inputs are unchanged")


# ---------------------------------------------------------------------------------------------
# Code, environment and inputs digests (the cache key)

#: The modules whose source computes a training result (every file of a package).
TRAIN_MODULES = ("kofn.core", "kofn.pruning", "kofn.app.training", "kofn.app.data", "kofn.app.config",
                 "kofn.app.sweep")


#: The files of a package that count as its code: Python, and codegen's templates.
CODE_SUFFIXES = (".py", ".j2", ".sv", ".v")


@lru_cache(maxsize=None)
def code_digest(modules: tuple[str, ...] = TRAIN_MODULES) -> str:
    """SHA-256 of the source files of ``modules`` (a package: all its ``.py`` files and
    templates, :data:`CODE_SUFFIXES`), by module-relative path: equal for equal code however
    kofn is installed.  Computed once per process."""
    h = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            h.update(f"{name}:missing\n".encode())
            continue
        if spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            files = sorted(f for f in root.rglob("*") if f.suffix in CODE_SUFFIXES and f.is_file())
        else:
            root, files = Path(spec.origin).parent, [Path(spec.origin)]
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(f"{name}/{f.relative_to(root).as_posix()}\n".encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(modules: tuple[str, ...] = TRAIN_MODULES) -> dict:
    """What computed a point besides its inputs: kofn's version and code, torch's and numpy's
    versions.  Part of the cache key; a worker's must equal the client's."""
    from .. import __version__

    return {"kofn": __version__, "code": code_digest(tuple(modules)), "torch": _version("torch"),
            "numpy": _version("numpy")}


def arrays_digest(*arrays) -> str:
    """SHA-256 of numpy arrays (dtype, shape, bytes)."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def data_digest(ds) -> str:
    """SHA-256 of a :class:`~kofn.app.data.Dataset` (its name and four arrays)."""
    return hashlib.sha256(ds.name.encode() + arrays_digest(ds.x_train, ds.y_train, ds.x_test, ds.y_test).encode()
                          ).hexdigest()


def plain(o):
    """``o`` as JSON-able data (what :func:`cache_key` hashes)."""
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: plain(getattr(o, f.name)) for f in dataclasses.fields(o)}
    if isinstance(o, dict):
        return {str(k): plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [plain(v) for v in o]
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    return str(o)  # Fraction, Path, enum


def cache_key(doc: dict) -> str:
    """SHA-256 of ``doc`` as canonical JSON (dataclasses as dicts, fractions and paths as text)."""
    return hashlib.sha256(json.dumps(plain(doc), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The point cache


@dataclass(frozen=True)
class CachedPoint:
    result: dict
    files: dict[str, bytes]  # e.g. {"model.json": ..., "model.npz": ...}; {} when none


class PointCache:
    """Finished points of a sweep whose output folder is ``out`` (see the module docstring).

    ``lookup`` reads the journal ``OUT_PARENT/.OUT.kofn-points`` and then ``OUT``; ``record``
    writes a finished point into the journal at once; ``write`` puts a point into the run's
    (temporary) output folder; ``discard`` removes the journal once the run's output holds every
    point.  ``out=None``: nothing is read or kept across runs.  Callers hold ``OUT``'s lock
    (:func:`kofn.app.outdir.atomic_dir`), so one run at a time touches the journal."""

    VERSION = 1

    def __init__(self, out: str | Path | None, fresh: bool = False) -> None:
        self.out = Path(out).expanduser().resolve() if out is not None else None
        self.fresh = fresh
        self.journal = self.out.parent / f".{self.out.name}.kofn-points" if self.out is not None else None

    def roots(self) -> list[Path]:
        return [] if self.out is None or self.fresh else [self.journal, self.out]

    @staticmethod
    def _files_dir(root: Path, tag: str) -> Path:
        return root / "models" / tag

    def lookup(self, tag: str, key: str) -> CachedPoint | None:
        for root in self.roots():
            got = self._read(root, tag, key)
            if got is not None:
                return got
        return None

    def _read(self, root: Path, tag: str, key: str) -> CachedPoint | None:
        try:
            doc = json.loads((root / "points" / f"{tag}.json").read_text())
            if doc.get("cache") != self.VERSION or doc.get("key") != key or doc.get("tag") != tag:
                return None
            files = {}
            for name, sha in doc["files"].items():
                data = (self._files_dir(root, tag) / name).read_bytes()
                if hashlib.sha256(data).hexdigest() != sha:
                    return None  # overwritten by another run's point of the same tag
                files[name] = data
            if not isinstance(doc["result"], dict):
                return None
            return CachedPoint(doc["result"], files)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    @classmethod
    def write(cls, root: Path, tag: str, key: str, result: dict, files: dict[str, bytes], inputs: dict) -> None:
        """Write one point under ``root``: its files first, then ``points/<tag>.json`` (each
        through a rename), so a json found names complete files."""
        if files:
            d = cls._files_dir(root, tag)
            d.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                write_atomic(d / name, data)
        (root / "points").mkdir(parents=True, exist_ok=True)
        doc = {"cache": cls.VERSION, "tag": tag, "key": key,
               "files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()},
               "result": result, "inputs": inputs}
        write_atomic(root / "points" / f"{tag}.json", (json.dumps(doc, indent=1) + "\n").encode())

    def record(self, tag: str, key: str, result: dict, files: dict[str, bytes], inputs: dict) -> None:
        """Keep a point that just finished in the journal (survives an interrupted run)."""
        if self.journal is not None:
            self.write(self.journal, tag, key, result, files, inputs)

    def kept(self) -> int:
        """How many finished points the journal holds (after a failed or interrupted run)."""
        try:
            return sum(1 for _ in (self.journal / "points").glob("*.json")) if self.journal is not None else 0
        except OSError:
            return 0

    def kept_note(self) -> str | None:
        """A line for the user when a run stopped with points in the journal."""
        n = self.kept()
        if not n:
            return None
        return (f"kofn: {n} finished point{'s are' if n != 1 else ' is'} kept in {self.journal}: the same command "
                "resumes from them (--fresh ignores them)")

    def discard(self) -> None:
        """Remove the journal (call when the run's output holds every point)."""
        if self.journal is not None:
            shutil.rmtree(self.journal, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Progress with an ETA


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


# ---------------------------------------------------------------------------------------------
# Running tasks


@dataclass(frozen=True)
class _Shared:
    """The inputs every task of a run shares (sent once per worker)."""

    value: Any


def _call(fn, shared: _Shared, item):
    """Task body: ``fn`` on a private copy of the shared inputs (a worker keeps one copy of them
    for all its tasks; a task must not see another's changes), torch on one thread."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return fn(copy.deepcopy(shared.value), item)


_POOL_SHARED: _Shared | None = None


def _pool_init(shared: _Shared) -> None:
    global _POOL_SHARED
    _POOL_SHARED = shared


def _pool_call(fn, item):
    return _call(fn, _POOL_SHARED, item)


def _quiet_distributed(level: int = logging.WARNING) -> None:
    for name in ("distributed", "distributed.client", "distributed.scheduler", "distributed.worker",
                 "distributed.nanny", "distributed.core", "distributed.comm", "distributed.batched",
                 "distributed.deploy", "distributed.process", "distributed.utils_perf", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(level)


class TaskRunner:
    """Runs a sweep's tasks on a :class:`Scheduler` (a context manager: the local cluster or the
    process pool is shut down on exit, its processes killed if the run failed or was
    interrupted; a remote cluster is left running, this run's tasks cancelled)."""

    def __init__(self, scheduler: Scheduler, workers: int | None = None,
                 progress: Callable[[str], None] = print) -> None:
        if workers is not None and workers < 1:
            raise UsageError(f"--workers: must be >= 1, got {workers}")
        if workers is not None and scheduler.kind == "address":
            raise UsageError("--workers: sizes the local cluster; with --scheduler "
                             f"{scheduler.source} the cluster's own workers run the tasks")
        self.scheduler = scheduler
        self.requested = workers
        self.progress = progress
        self.client = self.cluster = self.pool = None
        self.workers = 0  # task slots (worker threads) once started

    # --- lifecycle

    def __enter__(self) -> "TaskRunner":
        return self

    def __exit__(self, etype, exc, tb) -> None:
        self.close(failed=etype is not None)

    def start(self, n_tasks: int) -> None:
        """Start (or join) the cluster for ``n_tasks`` tasks."""
        if self.workers:
            return
        kind = self.scheduler.kind
        n = max(1, min(self.requested or cores(), max(1, n_tasks)))
        if kind == "processes":
            self.workers = n
            return  # a pool per run(): its initializer takes the run's shared inputs
        _quiet_distributed()
        from distributed import Client, LocalCluster

        if kind == "local":
            # no dashboard; the scheduler's HTTP routes (health, metrics) on a free port, not 8787.
            # The workers log errors only: kofn reports their failures itself, and the rest is
            # noise on a terminal ("event loop unresponsive" under a training holding the GIL,
            # "task cancelled" when a failed run closes the cluster)
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                                        silence_logs=logging.ERROR)
            _quiet_distributed()  # LocalCluster set this process's distributed loggers too: WARNING here
            self.client = Client(self.cluster, set_as_default=False)
            self.workers = n
            return
        address = self.scheduler.address
        n_workers = _probe(address, CONNECT_TIMEOUT, self.scheduler.source)
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except Exception as e:  # noqa: BLE001 - whatever the connection raised, it is one line
            raise UsageError(f"--scheduler: cannot connect to the Dask scheduler at {address}: {_why(e)}") from None
        if n_workers == 0:
            self.progress(f"the cluster at {address} has no worker yet; waiting up to {WORKER_WAIT:.0f} s for one "
                          f"(start one with `dask worker {address}`)")
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise UsageError(f"--scheduler: no worker joined the cluster at {address} within {WORKER_WAIT:.0f} s; "
                             f"start workers with `dask worker {address} --nthreads 1`") from None
        self._check_workers()
        info = (self.client.scheduler_info(n_workers=-1) if _takes_n_workers(self.client)
                else self.client.scheduler_info())
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))

    def _check_workers(self) -> None:
        """Every worker runs the same kofn code, torch and numpy as this client."""
        mine = environment()
        try:
            got = self.client.run(_worker_environment, on_error="return")
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"--scheduler: cannot ask the workers of {self.scheduler.address} for their kofn: "
                             f"{_why(e)}") from None
        for worker, env in sorted(got.items()):
            if isinstance(env, BaseException):
                raise UsageError(f"--scheduler: worker {worker} cannot run kofn's tasks ({_why(env)}); install this "
                                 f"kofn ({mine['kofn']}) on every worker") from None
            diff = [k for k in mine if env.get(k) != mine[k]]
            if diff:
                shown = ", ".join(f"{k} {env.get(k)!s:.12} (here {mine[k]!s:.12})" for k in diff)
                raise UsageError(f"--scheduler: worker {worker} runs other code than this kofn: {shown}; install "
                                 "the same kofn, torch and numpy on every worker")

    def describe(self) -> str:
        k = self.scheduler.kind
        if k == "local":
            return f"a local Dask cluster of {self.workers} worker process{'es' if self.workers != 1 else ''}"
        if k == "processes":
            return f"a pool of {self.workers} process{'es' if self.workers != 1 else ''} (no Dask)"
        return f"the Dask cluster at {self.scheduler.address} ({self.workers} worker threads)"

    def close(self, failed: bool = False) -> None:
        if failed:
            _quiet_distributed(logging.CRITICAL)  # workers killed by Ctrl-C say so at length
        if self.pool is not None:
            pool, self.pool = self.pool, None
            if failed:
                procs = list(getattr(pool, "_processes", {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for p in procs:
                    try:
                        p.kill()
                    except (OSError, AttributeError):
                        pass
                for p in procs:
                    p.join(5)
            else:
                pool.shutdown(wait=True)
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            try:
                client.close(timeout=5 if failed else 30)
            except Exception:  # noqa: BLE001 - closing after a failure: the first error is the one to tell
                if not failed:
                    raise
        if cluster is not None:
            try:
                cluster.close(timeout=5 if failed else 30)
            except Exception:  # noqa: BLE001
                if not failed:
                    raise

    # --- running

    def run(self, fn: Callable[[Any, Any], Any], common: Any, items: Sequence[tuple[str, Any]]
            ) -> Iterator[tuple[str, Any]]:
        """``fn(common, item)`` for every ``(tag, item)``; yields ``(tag, result)`` as tasks finish.
        ``fn`` must be a top-level function; ``common`` and the items must pickle."""
        if not items:
            return
        self.start(len(items))
        shared = _Shared(common)
        if self.scheduler.kind == "processes":
            yield from self._run_pool(fn, shared, items)
        else:
            yield from self._run_dask(fn, shared, items)

    def _run_pool(self, fn, shared, items):
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        if self.pool is not None:  # the previous run's
            self.pool.shutdown(wait=True)
        self.pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_pool_init, initargs=(shared,))
        futs = {self.pool.submit(_pool_call, fn, item): tag for tag, item in items}
        for f in as_completed(futs):
            try:
                res = f.result()
            except BrokenProcessPool as e:
                raise SweepError(f"a worker process died running {futs[f]} ({e}); out of memory?") from None
            yield futs[f], res

    def _run_dask(self, fn, shared, items):
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        client = self.client
        try:
            data = client.scatter(shared, broadcast=True, hash=False)
        except Exception as e:  # noqa: BLE001
            raise SweepError(f"cannot send the sweep's inputs to the cluster ({_why(e)})") from None
        futs = {}
        for tag, item in items:
            f = client.submit(_call, fn, data, item, pure=False, key=f"kofn-{tag}-{os.urandom(4).hex()}")
            futs[f] = tag
        try:
            for f in as_completed(list(futs), loop=client.loop):
                tag = futs[f]
                try:
                    res = f.result()
                except KilledWorker as e:
                    raise SweepError(f"{tag}: the task killed its worker again and again ({e}); out of memory? "
                                     "see the workers' logs") from None
                except (FutureCancelledError, asyncio.CancelledError) as e:
                    raise SweepError(f"{tag}: the cluster cancelled the task (lost the scheduler or its "
                                     f"workers? {_why(e)})") from None
                f.release()
                yield tag, res
        finally:
            # a remote cluster keeps running: drop this run's queued tasks there (the local one is
            # closed next, its workers with it; cancelling first only makes them log about it)
            pending = [f for f in futs if not f.done()] if self.scheduler.kind == "address" else []
            if pending:
                try:
                    client.cancel(pending)
                except Exception:  # noqa: BLE001 - the run already failed
                    pass
            try:
                data.release()
            except Exception:  # noqa: BLE001
                pass


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _worker_environment() -> dict:
    """On a worker: its :func:`environment`."""
    return environment()


def _why(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) < 300 else msg[:297] + "..."


def _probe(address: str, timeout: float, source: str) -> int:
    """Check that a Dask scheduler answers at ``address`` (tcp:// only; other protocols are left
    to the client's own timeout); returns its worker count (-1: not probed)."""
    what = f"--scheduler: {source}" + (f" ({address})" if source != address else "")
    m = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:/]+):(\d+)/?", address)
    if not m:
        if not address.startswith(("tls://", "ucx://", "inproc://", "ws://", "wss://")):
            raise UsageError(f"{what}: not a Dask address (tcp://HOST:PORT)")
        return -1
    host, port = m.group(1).strip("[]"), int(m.group(2))
    t0 = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        if isinstance(e, (socket.timeout, TimeoutError)):
            why = f"no answer within {timeout:.0f} s"
        raise UsageError(f"{what}: cannot reach a Dask scheduler: {why} (is `dask scheduler` running there?)") from None

    async def identity():
        from distributed.comm import connect

        comm = await connect(address, timeout=max(1.0, timeout - (time.monotonic() - t0)))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        ident = asyncio.run(asyncio.wait_for(identity(), max(1.0, timeout - (time.monotonic() - t0))))
    except Exception as e:  # noqa: BLE001 - a server that is not a Dask scheduler answers anything
        why = ("no answer" if isinstance(e, (asyncio.TimeoutError, TimeoutError)) else
               "it answered in another protocol" if isinstance(e, MemoryError) else _why(e))
        raise UsageError(f"{what}: something listens there but it is not a Dask scheduler ({why})") from None
    if not isinstance(ident, dict) or ident.get("type") != "Scheduler":
        raise UsageError(f"{what}: something listens there but it is not a Dask scheduler")
    return int(ident.get("n_workers", -1))
