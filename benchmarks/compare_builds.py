"""Are two kofn builds the same IP?  Or: does this checkout still generate a build's IP?

    python benchmarks/compare_builds.py BEFORE AFTER     # two `kofn flow` folders
    python benchmarks/compare_builds.py --regen BUILD    # re-render BUILD's saved IR here

The first form compares ``rtl/``, ``hls/`` and ``rom/`` byte for byte and the figures of
``report.json`` (accuracy, bitexact, latency, memory, resources; wall-clock seconds are
left out).  The second plans and renders the build's own IR with the lanes its report
records and compares the generated files with the build's, without training or
simulating: the quick check of a codegen refactor.  Exit status 0 only when all agree.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

FOLDERS = ("rtl", "hls", "rom")
FIGURES = ("accuracy", "bitexact", "latency", "memory", "resources")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for d in FOLDERS if (root / d).is_dir()
            for p in sorted((root / d).rglob("*")) if p.is_file()}


def diff_files(a: Path, b: Path) -> list[str]:
    fa, fb = files(a), files(b)
    out = [f"only in {a}: {k}" for k in sorted(fa.keys() - fb.keys())]
    out += [f"only in {b}: {k}" for k in sorted(fb.keys() - fa.keys())]
    out += [f"differs: {k}" for k in sorted(fa.keys() & fb.keys()) if fa[k] != fb[k]]
    return out


def diff_figures(a: Path, b: Path) -> list[str]:
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    out = []
    for key in FIGURES:
        va, vb = ra.get(key), rb.get(key)
        if key == "resources":  # `kofn synth` adds these; a fresh build has none
            va = {k: v for k, v in (va or {}).items() if k not in ("synth", "by_family")}
            vb = {k: v for k, v in (vb or {}).items() if k not in ("synth", "by_family")}
        if va != vb:
            out.append(f"report.json {key}: {json.dumps(va)[:300]} != {json.dumps(vb)[:300]}")
    return out


def regen(build: Path) -> list[str]:
    from kofn.app.config import load_config
    from kofn.codegen import plan_build, render_build, write_design
    from kofn.core import ir

    cfg_path = build / "config.toml"
    cfg = load_config(cfg_path if cfg_path.exists() else None)
    model = ir.load(build / "model")
    report = json.loads((build / "report.json").read_text())
    lanes = [layer.get("lanes") or None for layer in report["layers"]]
    plan = plan_build(model, lanes, top=cfg.hw.top, part=cfg.hw.part, clock_mhz=cfg.hw.clock_mhz)
    with tempfile.TemporaryDirectory() as tmp:
        write_design(render_build(plan), tmp)
        return diff_files(build, Path(tmp))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--regen"]:
        problems = {b: regen(Path(b)) for b in argv[1:]}
    elif len(argv) == 2:
        a, b = map(Path, argv)
        problems = {f"{a} vs {b}": diff_files(a, b) + diff_figures(a, b)}
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for what, p in problems.items():
        print(f"{what}: {'identical' if not p else f'{len(p)} differences'}")
        for line in p:
            print(f"  {line}")
    return 0 if not any(problems.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
