"""Atomic build folders: a run writes into a temporary sibling and renames it into place only
when it succeeds, so a failed or interrupted run leaves an existing build exactly as it was.

    with atomic_dir(out, progress) as tmp:      # tmp = OUT_PARENT/.OUT.kofn-tmp-XXXX
        ...write everything into tmp...
    # success: OUT is replaced by tmp (the old OUT removed); failure: tmp removed, OUT untouched

One run at a time per folder: a lock (``OUT_PARENT/.OUT.kofn-lock``, ``flock``) makes a second
run into the same ``--out`` stop at once with an :class:`OutputError` naming the first one's pid.
The swap (two renames) runs with SIGINT and SIGTERM blocked.  ``keep_failed`` keeps a failed
run's temporary folder for debugging and says where it is.

:func:`write_atomic` / :func:`replace_dir` do the same for files and folders that a command adds
to an existing build (``kofn synth``, ``kofn export``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from ..core.errors import OutputError

__all__ = ["low_disk", "atomic_dir", "check_out", "check_out_file", "write_atomic", "replace_dir", "kill_children", "OS_USER_ERRNOS"]

#: OSError numbers that are the environment's doing, not kofn's (a full disk, a read-only or
#: unwritable folder, a quota): the CLI reports them as user errors.
OS_USER_ERRNOS = frozenset({errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG,
                            errno.ENOTDIR, errno.EISDIR, errno.EEXIST})


#: Folders this process has built into (their parents), for :func:`low_disk`.
_WRITTEN: list[Path] = []
#: A build needs tens of MiB (the Verilator objects alone): less free space than this is the
#: likely cause of a tool failing while writing.
LOW_DISK_BYTES = 64 << 20


def low_disk() -> tuple[Path, int] | None:
    """``(folder, free bytes)`` when a folder this process wrote into lies on a nearly full file
    system: a tool that failed there (Verilator, g++) most likely ran out of space."""
    for p in reversed(_WRITTEN):
        try:
            free = shutil.disk_usage(p).free
        except OSError:
            continue
        if free < LOW_DISK_BYTES:
            return p, free
    return None


def check_out(out: str | Path, what: str = "--out") -> Path:
    """``out`` resolved, or :class:`OutputError` when it cannot be a build folder."""
    if not str(out).strip():
        raise OutputError(f"{what}: an empty path (name the build folder, e.g. --out build)")
    p = Path(out).expanduser().resolve()
    if p.exists() and not p.is_dir():
        raise OutputError(f"{what}: {p} exists and is not a folder")
    if p == Path(p.anchor):
        raise OutputError(f"{what}: {p} is a file-system root; name a folder to build into")
    cwd = Path.cwd().resolve()
    if p == cwd or p in cwd.parents:
        raise OutputError(f"{what}: {p} is the current folder or holds it; kofn replaces its output folder as a "
                          "whole: name a new folder (e.g. --out build)")
    if p.is_dir() and not _is_kofn_output(p):
        shown = ", ".join(sorted(q.name for q in p.iterdir())[:4])
        raise OutputError(f"{what}: {p} is a folder that kofn did not write (it holds {shown}, ...); kofn replaces "
                          "its output folder as a whole: name a new folder or an earlier kofn output")
    _check_parent(p, what)
    return p


def _check_parent(p: Path, what: str) -> None:
    """The nearest existing folder above ``p`` is a writable folder."""
    for q in p.parents:
        if q.exists():
            if not q.is_dir():
                raise OutputError(f"{what}: {q} is not a folder")
            if not os.access(q, os.W_OK | os.X_OK):
                raise OutputError(f"{what}: {q} is not writable")
            return


def check_out_file(out: str | Path, what: str = "-o") -> Path:
    """``out`` resolved, or :class:`OutputError` when no file can be written there."""
    if not str(out).strip():
        raise OutputError(f"{what}: an empty path")
    p = Path(out).expanduser().resolve()
    if p.is_dir():
        raise OutputError(f"{what}: {p} is a folder; name the file to write")
    _check_parent(p, what)
    return p


#: Files one of kofn's commands writes at the top of its output folder.
_MARKERS = ("report.json", "config.toml", "model", "compare.json", "explore.json", "fuzz.json",
            "hls4ml_config.yml")


def _is_kofn_output(p: Path) -> bool:
    """An empty folder, or one a kofn command wrote (flow, sim, compare, explore)."""
    try:
        return not any(p.iterdir()) or any((p / m).exists() for m in _MARKERS)
    except OSError:
        return False


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    path = out.parent / f".{out.name}.kofn-lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"--out: {out} is being written by another kofn run (pid {pid}); "
                              f"wait for it or build into another folder") from None
        try:  # the holder before us may have removed the file between our open and our lock
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _mkdtemp(prefix: str, parent: Path) -> Path:
    """``tempfile.mkdtemp`` with the permissions a plain ``mkdir`` would give (not 0700): the
    folder becomes the user's build."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)
    return tmp


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` (if any) by ``tmp``: two renames, then the old folder is removed."""
    with _signals_blocked():
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.kofn-old-", dir=out.parent))
            os.rename(out, old / out.name)
        os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(out: str | Path, progress: Callable[[str], None] | None = None, *, keep_failed: bool = False,
               seed_from: Path | None = None, what: str = "--out") -> Iterator[Path]:
    """A temporary sibling of ``out`` to build into (a copy of ``seed_from`` when given), renamed
    onto ``out`` when the block succeeds; removed (or kept, ``keep_failed``) when it raises."""
    say = progress or (lambda _m: None)
    out = check_out(out, what)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{what}: cannot create {out.parent}: {e.strerror}") from None
    _WRITTEN.append(out.parent)
    with _lock(out):
        try:
            tmp = _mkdtemp(f".{out.name}.kofn-tmp-", out.parent)
        except OSError as e:
            raise OutputError(f"{what}: cannot create a folder beside {out}: {e.strerror}") from None
        try:
            if seed_from is not None:
                shutil.copytree(seed_from, tmp, symlinks=True, dirs_exist_ok=True)
            say(f"writing into {tmp}; it replaces {out} only if the run succeeds")
            yield tmp
        except BaseException:
            if keep_failed:  # said even under --quiet: it is where the evidence is
                print(f"kofn: the failed run's files are kept in {tmp} (--keep-failed); {out} is unchanged",
                      file=sys.stderr, flush=True)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        _swap_in(tmp, out)


_UMASK = os.umask(0)  # read once, at import (setting it back and forth later would race other threads)
os.umask(_UMASK)


def write_atomic(path: Path, data: str | bytes) -> None:
    """``data`` into ``path`` through a temporary file in the same folder and a rename, with a
    plain file's permissions (the umask's; ``mkstemp`` alone would leave it 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def replace_dir(path: Path) -> Iterator[Path]:
    """A temporary sibling folder that replaces ``path`` when the block succeeds (for a folder a
    command adds to a build, like ``BUILD/hls4ml``); removed when it raises."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _mkdtemp(f".{path.name}.kofn-tmp-", path.parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, path)


def kill_children(sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` to every descendant process of this one (Verilator, make, g++, the cocotb
    simulator); returns how many.  Linux ``/proc`` only; elsewhere a no-op."""
    parents: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            parents[int(e)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier and p not in mine}
        mine |= frontier
    for p in mine:
        with contextlib.suppress(OSError):
            os.kill(p, sig)
    return len(mine)
