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

**Cache and resume**: :mod:`kofn.app.sweep_cache` (the cache key of a point and the
:class:`PointCache` journal); progress lines with an ETA: :mod:`kofn.app.sweep_progress`.
Both are re-exported here, so ``from kofn.app.sweep import PointCache, Tally`` keeps working.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..core.errors import KofnError, UsageError
from .sweep_cache import (TRAIN_MODULES, CachedPoint, PointCache, arrays_digest, cache_key, code_digest, data_digest,
                          environment, plain)
from .sweep_progress import Tally

__all__ = ["sweep_options", "CONNECT_TIMEOUT", "SweepError", "Scheduler", "parse_scheduler", "cores", "TaskRunner",
           "Tally", "PointCache", "CachedPoint", "TRAIN_MODULES", "cache_key", "plain", "code_digest", "environment",
           "data_digest", "arrays_digest"]

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
