"""A build folder read back as untrusted input (``kofn sim``, ``synth``, ``export``).

:func:`open_build` checks what a command is about to use before it uses it, each defect a
:class:`~kofn.core.errors.BuildError` naming the file: the folder; its ``config.toml`` (``kofn
sim`` rebuilds with it and never guesses another); the IR in ``model/`` (codes within their
formats, exact k-of-n rows, identifiers for names: :func:`kofn.core.ir.load`); ``report.json``;
the test vectors (shape and codes of the input format); and :func:`check_roms`, the ROM files
against the IR.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import ir as ir_mod
from ..core.errors import BuildError, ConfigError
from ..core.ir import Model

__all__ = ["Build", "open_build", "check_roms", "load_vectors"]

#: What reading a damaged file raises, besides ValueError.
_READ_ERRORS = (OSError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError)


@dataclass(frozen=True)
class Build:
    path: Path
    config: object | None  # FlowConfig
    model: Model
    report: object | None  # Report

    def hint(self) -> str:
        return f"run `kofn flow --out {self.path}` to rebuild it"


def open_build(path: str | Path, *, need_config: bool = False) -> Build:
    """The build folder ``path`` with its config (when present, or required by ``need_config``),
    IR and report, each checked."""
    from .config import parse_config, read_config_text
    from .report import Report

    build = Path(path).resolve() if str(path).strip() else None
    if build is None or not build.is_dir():
        what = "an empty path" if build is None else "not a folder" if build.exists() else "no such folder"
        raise BuildError(f"{path}: {what} (a build folder is what `kofn flow --out DIR` writes)")
    cfg_path = build / "config.toml"
    cfg = None
    if cfg_path.is_file():
        try:
            cfg = parse_config(read_config_text(cfg_path), str(cfg_path))  # its data and model paths are not used
        except ConfigError as e:
            raise BuildError(f"{cfg_path}: {e}") from None
    elif need_config:
        raise BuildError(f"{cfg_path}: missing; kofn rebuilds a folder with the config it was made with and will not "
                         f"guess another (copy the config back, or run `kofn flow CONFIG --out {build}`)")
    model_dir = build / "model"
    if not (model_dir / "model.json").is_file():
        raise BuildError(f"{model_dir / 'model.json'}: missing (run `kofn flow --out {build}` first)")
    try:
        model = ir_mod.load(model_dir)
    except (ValueError, *_READ_ERRORS) as e:
        raise BuildError(f"{model_dir}: the IR cannot be trusted: {_why(e)}") from None
    report = None
    if (build / "report.json").is_file():
        try:
            report = Report.load(build)
        except (ValueError, *_READ_ERRORS) as e:
            raise BuildError(f"{build / 'report.json'}: {_why(e)}") from None
    return Build(build, cfg, model, report)


def _why(e: BaseException) -> str:
    return str(e) if isinstance(e, ValueError) and not isinstance(e, json.JSONDecodeError) else f"{type(e).__name__}: {e}"


def load_vectors(build: Build, required: bool = True) -> np.ndarray | None:
    """``vectors/inputs.npy``: ``[N, inputs]`` codes of the model's input format."""
    path = build.path / "vectors" / "inputs.npy"
    if not path.is_file():
        if required:
            raise BuildError(f"{path}: missing ({build.hint()})")
        return None
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, *_READ_ERRORS) as e:
        raise BuildError(f"{path}: {_why(e)}") from None
    m = build.model
    fmt = m.layers[0].input_fmt
    if x.ndim != 2 or x.shape[1] != m.n_inputs or x.dtype.kind not in "iu":
        raise BuildError(f"{path}: {x.dtype} {' x '.join(map(str, x.shape))}, expected integer codes N x {m.n_inputs}")
    if len(x) and (x.min() < fmt.min_int or x.max() > fmt.max_int):
        raise BuildError(f"{path}: input codes {int(x.min())}..{int(x.max())} fall outside {fmt.describe()} "
                         f"({fmt.min_int}..{fmt.max_int})")
    return x.astype(np.int64)


def check_roms(build: Build, plan) -> None:
    """Every ROM file the IR's design needs is in ``rom/`` with the contents the IR gives."""
    from ..codegen import render_build

    design = render_build(plan)
    for rel, text in design.files.items():
        if not rel.startswith("rom/"):
            continue
        p = build.path / rel
        if not p.is_file():
            raise BuildError(f"{p}: missing ({build.hint()}, or `kofn sim {build.path}` to regenerate it)")
        have = p.read_text(errors="replace")
        if have != text:
            want_l, have_l = text.splitlines(), have.splitlines()
            line = next((i for i, (a, b) in enumerate(zip(want_l, have_l)) if a != b), min(len(want_l), len(have_l)))
            raise BuildError(f"{p}: does not match the IR in model/ (first difference on line {line + 1}); "
                             f"`kofn sim {build.path}` regenerates it from the IR")
