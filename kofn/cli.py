"""The ``kofn`` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

METHODS_DEFAULT = ("dense", "magnitude", "gradual", "srste", "random", "dpp", "psp", "dtp")

__all__ = ["main"]


def _flow(args: argparse.Namespace) -> int:
    from .config import ConfigError, default_config_text, load_config
    from .flow import Progress, run_flow

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"kofn: config error: {e}", file=sys.stderr)
        return 2
    text = Path(args.config).read_text() if args.config else default_config_text()
    progress = Progress(quiet=args.quiet)
    progress(f"kofn {__version__}: flow {cfg.name} from {cfg.source} into {args.out}")
    from .onnx_import import OnnxImportError

    try:
        report = run_flow(cfg, Path(args.out), progress, config_text=text)
    except OnnxImportError as e:
        print(f"kofn: ONNX import error: {e}", file=sys.stderr)
        return 2
    return _verdict(report)


def _sim(args: argparse.Namespace) -> int:
    from .flow import Progress, resimulate

    report = resimulate(Path(args.build_dir), Progress(quiet=args.quiet))
    return _verdict(report)


def _default_config(args: argparse.Namespace) -> int:
    from .config import default_config_text

    print(default_config_text(), end="")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import run_compare
    from .flow import Progress

    progress = Progress(quiet=args.quiet)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        run_compare(
            args.dataset,
            [r for r in args.ratios.split(",") if r.strip()],
            [m.strip() for m in args.methods.split(",") if m.strip()],
            Path(args.out),
            epochs=args.epochs,
            seeds=seeds,
            mnist_path=args.data,
            progress=progress,
        )
    except ValueError as e:
        print(f"kofn compare: {e}", file=sys.stderr)
        return 2
    print((Path(args.out) / "compare.md").read_text(), end="")
    return 0


def _export(args: argparse.Namespace) -> int:
    import numpy as np

    from . import ir
    from .export import ExportError, check_hls4ml, onnx_exactness_bound, run_onnx, to_hls4ml, to_onnx
    from .reference import run

    build = Path(args.build_dir)
    try:
        model = ir.load(build / "model")
    except FileNotFoundError:
        print(f"kofn export: {build} holds no model/ (run `kofn flow --out {build}` first)", file=sys.stderr)
        return 2
    vec = build / "vectors" / "inputs.npy"
    x = np.load(vec) if vec.exists() else None
    if x is not None and args.vectors >= 0:
        x = x[: args.vectors]
    try:
        if args.target == "hls4ml":
            out = Path(args.o or build / "hls4ml")
            hm = to_hls4ml(model, out)
            result = {"target": "hls4ml", "project": str(out), "backend": "Vitis", "io_type": "io_parallel"}
            if x is not None and not args.no_check:
                print(f"kofn export: compiling the hls4ml project in {out} and C-simulating {len(x)} vectors ...",
                      file=sys.stderr)
                _, mism = check_hls4ml(model, x, out, hm)
                result.update(vectors=int(len(x)), mismatches=mism)
        else:
            out = Path(args.o or build / f"{model.name}.onnx")
            to_onnx(model, out)
            result = {"target": "onnx", "file": str(out), **onnx_exactness_bound(model)}
            if x is not None and not args.no_check:
                got, ref = run_onnx(model, out, x), run(model, x)
                result.update(vectors=int(len(x)), mismatches=int((got != ref).sum()),
                              argmax_agree=float((got.argmax(1) == ref.argmax(1)).mean()))
    except ExportError as e:
        print(f"kofn export: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    if result.get("mismatches"):
        print(f"kofn export: {result['mismatches']} output codes differ from the reference", file=sys.stderr)
        return 1
    return 0


def _synth(args: argparse.Namespace) -> int:
    from .codegen.synth import YosysNotFound, synthesize

    build = Path(args.build_dir)
    flist = build / "rtl" / "filelist.f"
    if not flist.exists():
        print(f"kofn synth: {flist} not found (run `kofn flow --out {build}` first)", file=sys.stderr)
        return 2
    sources = [f"rtl/{f}" for f in flist.read_text().split()]
    top = sources[-1].rsplit("/", 1)[1].removesuffix(".sv")
    rpath = build / "report.json"
    report = json.loads(rpath.read_text()) if rpath.exists() else {}
    est = report.get("resources", {})
    out = {}
    for fam in [f.strip() for f in args.family.split(",") if f.strip()]:
        try:
            r = synthesize(build, sources, top, fam)
        except (YosysNotFound, ValueError) as e:
            print(f"kofn synth: {e}", file=sys.stderr)
            return 2
        out[fam] = r.as_dict()
        print(f"{fam}: yosys synth_xilinx in {r.seconds:.0f} s", file=sys.stderr)
        print(f"| {fam} | estimate | yosys | error |\n|---|---|---|---|")
        for key in ("dsp", "bram18", "lut", "ff"):
            e, y = est.get(key), getattr(r, key)
            err = f"{(e - y) / y * 100:+.1f} %" if e is not None and y else ("exact" if e == y else "-")
            print(f"| {key} | {e if e is not None else '-'} | {y} | {err} |")
    (build / "synth.json").write_text(json.dumps(out, indent=2) + "\n")
    if report:
        report.setdefault("resources", {})["synth"] = {f: {k: v for k, v in d.items() if k != "cells"} for f, d in out.items()}
        rpath.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _verdict(report: dict) -> int:
    bad = [k for k, v in report["bitexact"].items() if v["mismatches"]]
    lat = report["latency"]
    summary = {
        "accuracy": report.get("accuracy"),
        "bitexact": report["bitexact"],
        "latency": {k: lat[k] for k in ("estimated_cycles", "measured_cycles", "ii_cycles", "measured_ii_cycles")},
        "resources": {k: report["resources"][k] for k in ("dsp", "bram18", "lut", "ff")},
    }
    print(json.dumps(summary, indent=2))
    if bad:
        print(f"kofn: MISMATCH in {', '.join(bad)} simulation", file=sys.stderr)
        return 1
    if lat["measured_cycles"] is not None and (
        lat["measured_cycles"] != lat["estimated_cycles"] or lat["measured_ii_cycles"] != lat["ii_cycles"]
    ):
        print("kofn: measured cycles differ from the estimate", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kofn", description="k-out-of-n pruned networks to bit-exact FPGA IP")
    parser.add_argument("--version", action="version", version=f"kofn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("flow", help="train, export, generate RTL/HLS, simulate bit-exactly, estimate")
    p.add_argument("config", nargs="?", help="TOML config (default: the embedded digits MLP)")
    p.add_argument("--out", default="kofn-out", help="build folder (default: kofn-out)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_flow)
    s = sub.add_parser("sim", help="regenerate and re-simulate a build folder from its saved IR (no training)")
    s.add_argument("build_dir")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_sim)
    c = sub.add_parser("compare", help="train every pruning method side by side; compare.json, .md and .png")
    c.add_argument("--dataset", default="digits", help="digits (64-32-10, every layer) or mnist (784-300-100-10, first layer)")
    c.add_argument("--ratios", default="1/4,1/8", help="k/n ratios, comma separated (default: 1/4,1/8)")
    c.add_argument("--methods", default=",".join(METHODS_DEFAULT), help=f"comma separated (default: {','.join(METHODS_DEFAULT)})")
    c.add_argument("--out", default="kofn-compare", help="output folder (default: kofn-compare)")
    c.add_argument("--epochs", type=int, default=None, help="epochs for every method (default: digits 60, mnist 30)")
    c.add_argument("--seeds", default="0", help="comma separated seeds; accuracy is their mean (default: 0)")
    c.add_argument("--data", default=None, help="mnist: folder of IDX files (e.g. ../shared/data/mnist)")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_compare)
    e = sub.add_parser("export", help="export a build's IR to hls4ml (C-simulated) or ONNX (run by onnxruntime)")
    e.add_argument("target", choices=("hls4ml", "onnx"))
    e.add_argument("build_dir", help="a kofn flow build folder")
    e.add_argument("-o", default=None, help="hls4ml: project folder (default BUILD/hls4ml); onnx: file (default BUILD/<name>.onnx)")
    e.add_argument("--vectors", type=int, default=-1, help="check on the first N of the build's vectors (default: all)")
    e.add_argument("--no-check", action="store_true", help="only write the export")
    e.set_defaults(func=_export)
    y = sub.add_parser("synth", help="synthesize a build with Yosys (synth_xilinx) and compare with the estimate")
    y.add_argument("build_dir")
    y.add_argument("--family", default="xc7", help="comma separated: xc7 (7-series), xcup (UltraScale+); default xc7")
    y.set_defaults(func=_synth)
    d = sub.add_parser("default-config", help="print the embedded default config (a documented starting point)")
    d.set_defaults(func=_default_config)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
