"""Architecture figures of a kofn checkout: module sizes, the import graph and its cycles,
and string dispatch on layer kinds.

    python benchmarks/architecture.py [REPO]      # default: this checkout

The import graph counts every ``import`` and ``from ... import`` statement of a module,
function-level ones included (a lazy import is still a dependency).  Modules are named as
installed (``kofn.codegen.render`` for ``codegen/render.py``), following the
``[tool.setuptools.package-dir]`` mapping of ``pyproject.toml``.  ``tests/test_layering.py``
uses :func:`import_graph` to enforce the layering.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

#: A layer kind compared as a string: ``kind == "conv"``, ``type != "dense"`` (layer kinds only:
#: ``scheduler.kind == "local"`` in kofn.app.sweep is where tasks run, not a layer).
LAYER_KINDS = ("dense", "conv", "maxpool", "gap", "add")
KIND_DISPATCH = re.compile(r"""\b(kind|type)\s*[!=]=\s*["'](%s)["']""" % "|".join(LAYER_KINDS))


def package_dirs(repo: Path) -> dict[str, Path]:
    """Installed package name -> source folder, from pyproject.toml."""
    doc = tomllib.loads((repo / "pyproject.toml").read_text())
    mapping = doc["tool"]["setuptools"].get("package-dir", {})
    return {name: repo / mapping.get(name, name.replace(".", "/")) for name in doc["tool"]["setuptools"]["packages"]}


def modules(repo: Path) -> dict[str, Path]:
    """Every module of the installed package: dotted name -> file."""
    out = {}
    for pkg, folder in package_dirs(repo).items():
        for f in sorted(folder.glob("*.py")):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(repo: Path, root: str = "kofn") -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` (module level and inside functions)."""
    mods = modules(repo)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, path.stem == "__init__", node)
                # `from . import ir` imports the module `ir`; `from .ir import X` the module `ir`
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:  # `kofn.codegen.render.X` -> `kofn.codegen.render`
                    t = t.rpartition(".")[0]
                if t and t.startswith(root) and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]], ignore_packages: bool = True) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan).  An ``__init__``
    that re-exports its submodules is a package, not a layer: its edges to its own
    submodules are left out when ``ignore_packages``."""
    g = {m: {t for t in ts if not (ignore_packages and t.startswith(m + "."))} for m, ts in graph.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def kind_dispatch(repo: Path) -> dict[str, int]:
    """String comparisons on a layer kind (``kind == "conv"``, ``type != "dense"``), per file,
    in Python and in templates."""
    out = {}
    files = list(modules(repo).values()) + sorted((repo / "hw_templates").rglob("*.j2"))
    for f in files:
        n = len(KIND_DISPATCH.findall(f.read_text()))
        if n:
            out[str(f.relative_to(repo))] = n
    return out


def main(argv: list[str]) -> int:
    repo = Path(argv[0] if argv else Path(__file__).resolve().parents[1]).resolve()
    mods = modules(repo)
    sizes = sorted(((len(p.read_text().splitlines()), m) for m, p in mods.items()), reverse=True)
    print(f"{len(mods)} modules, {sum(s for s, _ in sizes)} lines; the largest ten:")
    for s, m in sizes[:10]:
        print(f"  {s:5d}  {m}")
    graph = import_graph(repo)
    cyc = cycles(graph)
    print(f"import edges (function-level included): {sum(len(v) for v in graph.values())}")
    print(f"import cycles: {len(cyc)}")
    for c in cyc:
        print("  " + " <-> ".join(c))
    kd = kind_dispatch(repo)
    py = sum(v for k, v in kd.items() if k.endswith(".py"))
    print(f"kind string comparisons: {py} in Python, {sum(kd.values()) - py} in templates")
    for f, n in sorted(kd.items(), key=lambda kv: -kv[1]):
        print(f"  {n:3d}  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
