"""The sweep cache: the key of a point (what computed it) and the journal and output entries
that let a rerun of ``kofn explore`` or ``kofn compare`` skip the points already done.

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

Used by :mod:`kofn.app.sweep` (the task runner checks a remote worker's :func:`environment`
against the client's) and by the sweeps themselves (:mod:`kofn.app.explore`,
:mod:`kofn.app.compare`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .outdir import write_atomic

__all__ = ["TRAIN_MODULES", "CODE_SUFFIXES", "code_digest", "environment", "arrays_digest", "data_digest", "plain",
           "cache_key", "CachedPoint", "PointCache"]


# ---------------------------------------------------------------------------------------------
# Code, environment and inputs digests (the cache key)

#: The modules whose source computes a training result (every file of a package): the task
#: body runs in :mod:`kofn.app.sweep`, and this module decides what a key covers.
TRAIN_MODULES = ("kofn.core", "kofn.pruning", "kofn.app.training", "kofn.app.data", "kofn.app.config",
                 "kofn.app.sweep", "kofn.app.sweep_cache")


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
