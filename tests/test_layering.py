"""The package's layering, enforced: a module imports only from its own layer or lower ones.

    kofn.app                                   (command line, flow pipeline, reports, interop)
    kofn.pruning | kofn.codegen | kofn.sim     (independent of each other)
    kofn.core                                  (fixed point, IR, rules, reference: numpy only)

Every import statement counts, the ones inside functions included (``import_graph`` in
``benchmarks/architecture.py`` reads them from the source with ``ast``).  We check the
graph ourselves instead of with import-linter because kofn installs ``pruning/``,
``codegen/`` and ``sim/`` as ``kofn.*`` sub-packages through ``package-dir``, which
import-linter's module discovery (a walk of the top package's folder) does not follow.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS = [["kofn.app"], ["kofn.pruning", "kofn.codegen", "kofn.sim"], ["kofn.core"]]
"""Highest first; packages in one layer must not import each other."""

THIRD_PARTY_BY_LAYER = {"kofn.core": ("torch", "jinja2", "cocotb", "onnx", "hls4ml", "matplotlib"),
                        "kofn.codegen": ("torch",), "kofn.sim": ("torch",)}
"""Heavy frameworks a layer must not import at all (``kofn.core`` is numpy only)."""


def _arch():
    spec = importlib.util.spec_from_file_location("kofn_architecture", REPO / "benchmarks" / "architecture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _package(mod: str) -> str | None:
    for layer in LAYERS:
        for pkg in layer:
            if mod == pkg or mod.startswith(pkg + "."):
                return pkg
    return None


def _rank(pkg: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if pkg in layer)


def layering_violations(repo: Path) -> list[str]:
    """``a -> b`` for every import that points up a layer or across one."""
    graph = _arch().import_graph(repo)
    out = []
    for mod, targets in sorted(graph.items()):
        src = _package(mod)
        for t in sorted(targets):
            dst = _package(t)
            if src is None or dst is None or src == dst:
                continue
            if _rank(dst) < _rank(src):
                out.append(f"{mod} -> {t} (imports a higher layer)")
            elif _rank(dst) == _rank(src):
                out.append(f"{mod} -> {t} ({src} and {dst} are independent)")
    return out


def third_party_violations(repo: Path) -> list[str]:
    import ast

    out = []
    for mod, path in _arch().modules(repo).items():
        banned = THIRD_PARTY_BY_LAYER.get(_package(mod) or "", ())
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            out += [f"{mod} imports {n}" for n in names if n.split(".")[0] in banned]
    return out


def test_no_module_imports_a_higher_or_sibling_layer():
    assert layering_violations(REPO) == []


def test_no_import_cycles():
    arch = _arch()
    assert arch.cycles(arch.import_graph(REPO)) == []


def test_core_codegen_and_sim_import_no_heavy_framework():
    assert third_party_violations(REPO) == []


def test_every_module_belongs_to_a_layer():
    mods = _arch().modules(REPO)
    assert [m for m in mods if m != "kofn" and m != "kofn.__main__" and not m.startswith("kofn.hw_templates")
            and _package(m) is None] == []


def _fake_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.setuptools]
        packages = ["kofn", "kofn.core", "kofn.app", "kofn.codegen"]
        [tool.setuptools.package-dir]
        "kofn" = "kofn"
        "kofn.codegen" = "codegen"
    """))
    for rel, text in {"kofn/__init__.py": "", "kofn/core/__init__.py": "", "kofn/app/__init__.py": "",
                      "codegen/__init__.py": "", **files}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text))
    return tmp_path


@pytest.mark.parametrize("where, code, found", [
    ("kofn/core/rules.py", "def f():\n    from ..app import flow\n", "kofn.core.rules -> kofn.app.flow (imports a higher layer)"),
    ("kofn/core/rules.py", "import kofn.codegen.render\n", "kofn.core.rules -> kofn.codegen.render (imports a higher layer)"),
    ("codegen/render.py", "from ..app.flow import run\n", "kofn.codegen.render -> kofn.app.flow (imports a higher layer)"),
])
def test_the_check_catches_an_upward_import(tmp_path, where, code, found):
    repo = _fake_repo(tmp_path, {"kofn/app/flow.py": "", "codegen/render.py": "", "kofn/core/rules.py": "",
                                 where: code})
    assert found in layering_violations(repo)


def test_the_check_catches_a_cycle(tmp_path):
    repo = _fake_repo(tmp_path, {"kofn/app/a.py": "from . import b\n", "kofn/app/b.py": "def f():\n    from .a import x\n"})
    arch = _arch()
    assert arch.cycles(arch.import_graph(repo)) == [["kofn.app.a", "kofn.app.b"]]
