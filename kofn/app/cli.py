"""The ``kofn`` command: its argument parser (:func:`main`) and the commands that train or
build (``flow``, ``sim``, ``default-config``, ``compare``, ``explore``).

The commands that add to a finished build (``export``, ``synth``, ``prove``) are in
:mod:`kofn.app.cli_build`; how every command ends, its exit status and signals, in
:mod:`kofn.app.cli_run`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import __version__
from ..core.errors import BuildError, UsageError
from .cli_build import export_command, prove_command, synth_command
from .cli_run import run_command

METHODS_DEFAULT = ("dense", "magnitude", "gradual", "srste", "random", "dpp", "psp", "dtp")

__all__ = ["main"]


def _flow(args: argparse.Namespace) -> int:
    from .config import load_config, read_config_text
    from .flow import Progress, preflight, run_flow
    from .outdir import atomic_dir, check_out

    check_out(args.out)  # before any work
    text = read_config_text(args.config)
    cfg = load_config(args.config, text)
    progress = Progress(quiet=args.quiet)
    progress(f"kofn {__version__}: flow {cfg.name} from {cfg.source} into {args.out}")
    pre = preflight(cfg, progress)  # the data and model files, before training or any output
    with atomic_dir(args.out, progress, keep_failed=args.keep_failed) as tmp:
        report = run_flow(cfg, tmp, progress, config_text=text, pre=pre)
    progress(f"build complete in {Path(args.out).resolve()}")
    return _verdict(report)


def _sim(args: argparse.Namespace) -> int:
    from .build_dir import open_build
    from .flow import Progress, resimulate
    from .outdir import atomic_dir

    build = open_build(args.build_dir, need_config=True).path  # checked before the copy
    progress = Progress(quiet=args.quiet)
    with atomic_dir(build, progress, keep_failed=args.keep_failed, seed_from=build, what="build") as tmp:
        report = resimulate(tmp, progress, source=build)
    progress(f"re-simulated {build}")
    return _verdict(report)


def _default_config(args: argparse.Namespace) -> int:
    from .config import default_config_text

    print(default_config_text(), end="")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import run_compare
    from .flow import Progress
    from .outdir import atomic_dir, check_out
    from .sweep import PointCache, parse_scheduler

    check_out(args.out)
    progress = Progress(quiet=args.quiet)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise UsageError(f"--seeds: {args.seeds!r} is not a comma-separated list of integers") from None
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs: must be >= 1, got {args.epochs}")
    parse_scheduler(args.scheduler)  # a malformed --scheduler before any work
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers: must be >= 1, got {args.workers}")
    cache = PointCache(args.out, fresh=args.fresh)
    try:
        with atomic_dir(args.out, progress, keep_failed=args.keep_failed) as tmp:
            run_compare(
                args.dataset,
                [r for r in args.ratios.split(",") if r.strip()],
                [m.strip() for m in args.methods.split(",") if m.strip()],
                tmp,
                epochs=args.epochs,
                seeds=seeds,
                mnist_path=args.data,
                progress=progress,
                granularities=[g.strip() for g in args.granularities.split(",") if g.strip()],
                workers=args.workers,
                scheduler=args.scheduler,
                cache=cache,
            )
    except BaseException:
        if not args.quiet and cache.kept_note():  # an interrupted or failed run's finished trainings
            print(cache.kept_note(), file=sys.stderr)
        raise
    print((Path(args.out) / "compare.md").read_text(), end="")
    return 0


def _explore(args: argparse.Namespace) -> int:
    from .compare import parse_ratio
    from .config import load_config
    from .explore import run_explore
    from .flow import Progress
    from .outdir import atomic_dir, check_out
    from .pareto import Targets, describe_pick

    check_out(args.out)
    cfg = load_config(args.config)
    ratios = [parse_ratio(r) for r in args.ratios.split(",") if r.strip()]

    def ints(option: str, text: str, least: int) -> list[int]:
        try:
            vals = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"{option}: {text!r} is not a comma-separated list of integers") from None
        if not vals or min(vals) < least:
            raise UsageError(f"{option}: every value must be >= {least}, got {text!r}")
        return vals

    wbits, abits = ints("--weight-bits", args.weight_bits, 2), ints("--act-bits", args.act_bits, 2)
    lanes = ints("--lanes", args.lanes, 1)
    if not ratios:
        raise UsageError("--ratios: no ratio given")
    if args.min_fmax is not None and cfg.hw.schedule != "dataflow":
        raise UsageError("--min-fmax: the Fmax model covers the dataflow schedule only "
                         f"(this config's hw.schedule is {cfg.hw.schedule!r})")
    from_build = None
    if args.from_build:
        from .build_dir import open_build

        from_build = open_build(args.from_build).path
        if not (from_build / "model" / "model.pt").is_file():
            raise BuildError(f"{from_build / 'model' / 'model.pt'}: missing; --from takes a `kofn flow` build that "
                             "trained its model")
    targets = Targets(args.max_dsp, args.max_lut, args.max_ff, args.max_bram18, args.max_latency, args.min_accuracy,
                      args.min_fmax)
    from .sweep import PointCache, parse_scheduler

    parse_scheduler(args.scheduler)  # a malformed --scheduler before any work
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--workers: must be >= 1, got {args.jobs}")
    progress = Progress(quiet=args.quiet)
    cache = PointCache(args.out, fresh=args.fresh)
    try:
        with atomic_dir(args.out, progress, keep_failed=args.keep_failed) as tmp:
            doc = run_explore(cfg, tmp, ratios, wbits, abits, lanes, epochs=args.epochs, jobs=args.jobs,
                              targets=targets, objective=args.objective, family=args.family,
                              from_build=from_build, progress=progress, scheduler=args.scheduler, cache=cache,
                              synth=args.synth)
    except BaseException:
        if not args.quiet and cache.kept_note():
            print(cache.kept_note(), file=sys.stderr)
        raise
    front = [doc["points"][i] for i in doc["pareto"]]
    print(f"{len(doc['points'])} designs, {len(front)} on the Pareto front (accuracy x DSP x LUT x latency):")
    print("| k/n | w bits | a bits | P | accuracy | DSP | BRAM18 | LUT | FF | cycles |\n|---|---|---|---|---|---|---|---|---|---|")
    for p in sorted(front, key=lambda p: -p["accuracy"]):
        print(f"| {p['ratio']} | {p['weight_bits']} | {p['act_bits']} | {p['lanes']} | {p['accuracy']:.4f} | {p['dsp']} | "
              f"{p['bram18']} | {p['lut']} | {p['ff']} | {p['latency_cycles']} |")
    if doc.get("synth"):
        print(f"Pareto front synthesized with Yosys ({args.family}), estimate / Yosys:")
        print("| k/n | w bits | a bits | P | LUT | FF | DSP | BRAM18 |\n|---|---|---|---|---|---|---|---|")
        for r in doc["synth"]:
            p, e, y = doc["points"][r["index"]], r["estimate"], r["yosys"]
            print(f"| {p['ratio']} | {p['weight_bits']} | {p['act_bits']} | {p['lanes']} | "
                  + " | ".join(f"{e[k]} / {y[k]}" for k in ("lut", "ff", "dsp", "bram18")) + " |")
    print(describe_pick(doc))
    print(f"wrote {Path(args.out) / 'explore.json'}, explore.png and report.html")
    return 0 if doc["pick"]["feasible"] else 1


def _verdict(rep) -> int:
    report = rep.to_json()
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


def bound_openmp_spin() -> None:
    """Idle OpenMP threads (torch's libgomp) spin 1,000 times, not libgomp's default 300,000,
    before they sleep, unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``; set before
    torch loads (the commands import it lazily).  The default ``kofn flow``, 2 cores: beside a
    process that keeps one core busy, spinning threads had it at epoch 42 of 60 after 600 s;
    with 1,000 spins 33 s (``OMP_WAIT_POLICY=PASSIVE``: 29 s); on idle cores 24 s (default
    25-29 s, passive 30-36 s)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")


def main(argv: list[str] | None = None) -> int:
    bound_openmp_spin()
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
    from .sweep import sweep_options

    c = sub.add_parser("compare", help="train every pruning method side by side; compare.json, .md and .png")
    c.add_argument("--dataset", default="digits", help="digits (64-32-10, every layer) or mnist (784-300-100-10, first layer)")
    c.add_argument("--ratios", default="1/4,1/8", help="k/n ratios, comma separated (default: 1/4,1/8)")
    c.add_argument("--methods", default=",".join(METHODS_DEFAULT), help=f"comma separated (default: {','.join(METHODS_DEFAULT)})")
    c.add_argument("--out", default="kofn-compare", help="output folder (default: kofn-compare)")
    c.add_argument("--epochs", type=int, default=None, help="epochs for every method (default: digits 60, mnist 30)")
    c.add_argument("--seeds", default="0", help="comma separated seeds; accuracy is their mean (default: 0)")
    c.add_argument("--data", default=None, help="mnist: folder of IDX files (e.g. ../shared/data/mnist)")
    c.add_argument("--granularities", default="weight",
                   help="comma separated: weight (k of n per neuron), bank (k/P of each of P input banks, "
                        "a lane per bank); default weight")
    c.add_argument("--workers", type=int, default=None,
                   help="local worker processes, i.e. parallel trainings (default: one per core)")
    sweep_options(c)
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_compare)
    e = sub.add_parser("export", help="export a build's IR to hls4ml (C-simulated) or ONNX (run by onnxruntime)")
    e.add_argument("target", choices=("hls4ml", "onnx"))
    e.add_argument("build_dir", help="a kofn flow build folder")
    e.add_argument("-o", default=None, help="hls4ml: project folder (default BUILD/hls4ml); onnx: file (default BUILD/<name>.onnx)")
    e.add_argument("--vectors", type=int, default=-1, help="check on the first N of the build's vectors (default: all)")
    e.add_argument("--no-check", action="store_true", help="only write the export")
    e.set_defaults(func=export_command)
    y = sub.add_parser("synth", help="synthesize a build with Yosys and compare with the estimate; "
                                     "--family ecp5 places and routes with nextpnr for a real Fmax")
    y.add_argument("build_dir")
    y.add_argument("--family", default="xc7",
                   help="comma separated: xc7 (7-series, with a logic-only timing path), xcup (UltraScale+), "
                        "ecp5 (Yosys synth_ecp5 + nextpnr-ecp5 place and route); default xc7")
    y.add_argument("--device", default="85k", help="ecp5: nextpnr device (default 85k, an LFE5U-85F)")
    y.add_argument("--package", default="CABGA381", help="ecp5: package (default CABGA381)")
    y.add_argument("--speed", type=int, default=6, choices=(6, 7, 8), help="ecp5: speed grade (default 6)")
    y.add_argument("--freq", type=float, default=None, help="ecp5: clock constraint in MHz (default: the build's hw.clock_mhz)")
    y.add_argument("--seed", type=int, default=1, help="ecp5: placer seed (default 1)")
    y.add_argument("--threads", "--jobs", type=int, default=None,
                   help="ecp5: nextpnr threads (the PyPI WebAssembly build runs on one)")
    y.set_defaults(func=synth_command)
    v = sub.add_parser("prove", help="formally check a dataflow build's stream control with Yosys, ABC and "
                                     "yosys-smtbmc (no lost beat, AXI4-Stream rules, frames, the scheduled cycles)")
    v.add_argument("build_dir")
    v.add_argument("--depth", type=int, default=None,
                   help="safety BMC depth in cycles when PDR is undecided (default: twice the latency plus the "
                        "reset; a smaller one is a quicker, weaker check)")
    v.add_argument("--pdr-timeout", type=float, default=600.0,
                   help="seconds for the unbounded safety proof (ABC pdr) before BMC takes over (default 600)")
    v.add_argument("--solver", default="yices", choices=("yices", "z3"), help="SMT solver (default yices)")
    v.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds for the whole check (default 1800); properties still open when it runs out are "
                        "reported undecided, with the cycles BMC cleared (exit 2)")
    v.add_argument("-q", "--quiet", action="store_true")
    v.set_defaults(func=prove_command)
    x = sub.add_parser("explore", help="sweep k/n, lanes and widths: Pareto front (JSON + plot), pick for targets")
    x.add_argument("config", nargs="?", help="TOML config to vary (default: the embedded digits MLP)")
    x.add_argument("--out", default="kofn-explore", help="output folder (default: kofn-explore)")
    x.add_argument("--ratios", default="1/8,1/4,1/2", help="k/n ratios for every pruned layer (default: 1/8,1/4,1/2)")
    x.add_argument("--weight-bits", default="4,8", help="weight widths (default: 4,8)")
    x.add_argument("--act-bits", default="8", help="hidden activation widths (default: 8)")
    x.add_argument("--lanes", default="1,2,4,8", help="lanes P per layer, capped at k (default: 1,2,4,8)")
    x.add_argument("--epochs", type=int, default=None, help="epochs per training run (default: the config's)")
    x.add_argument("--from", dest="from_build", default=None,
                   help="fine-tune from a `kofn flow` build's trained weights instead of training from scratch")
    x.add_argument("--workers", "--jobs", dest="jobs", type=int, default=None,
                   help="local worker processes, i.e. parallel trainings (default: one per core)")
    sweep_options(x)
    x.add_argument("--family", default="xc7", choices=("xc7", "xcup"), help="resource estimate family (default: xc7)")
    x.add_argument("--synth", action="store_true",
                   help="also synthesize every Pareto-front design with Yosys (--family), one task each on the "
                        "workers (they need yosys); explore.json's synth: the estimate beside Yosys's figures")
    x.add_argument("--objective", default="accuracy", choices=("accuracy", "lut", "dsp", "latency_cycles"),
                   help="what the pick optimises among designs meeting the targets (default: accuracy)")
    x.add_argument("--max-dsp", type=int, default=None)
    x.add_argument("--max-lut", type=int, default=None)
    x.add_argument("--max-ff", type=int, default=None)
    x.add_argument("--max-bram18", type=int, default=None)
    x.add_argument("--max-latency", type=int, default=None, help="cycles, first input beat to last output beat")
    x.add_argument("--min-accuracy", type=float, default=None, help="integer test accuracy, 0..1")
    x.add_argument("--min-fmax", type=float, default=None,
                   help="MHz: the Fmax model's ECP5-85 speed 6 estimate (kofn.codegen.fmax; dataflow schedule)")
    x.add_argument("-q", "--quiet", action="store_true")
    x.set_defaults(func=_explore)
    d = sub.add_parser("default-config", help="print the embedded default config (a documented starting point)")
    d.set_defaults(func=_default_config)
    for name, sp in sub.choices.items():
        if name in ("flow", "sim", "compare", "explore"):
            sp.add_argument("--keep-failed", action="store_true",
                            help="keep a failed or interrupted run's temporary folder (beside the output) for debugging")
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
