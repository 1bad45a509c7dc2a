"""The ``kofn`` command."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from .. import __version__
from ..core.errors import BuildError, KofnError, UsageError

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


def _export(args: argparse.Namespace) -> int:
    from .build_dir import load_vectors, open_build
    from .export import check_hls4ml, onnx_exactness_bound, run_onnx, to_hls4ml, to_onnx
    from .outdir import check_out, check_out_file, replace_dir
    from ..core.reference import run

    b = open_build(args.build_dir)
    model, build = b.model, b.path
    x = load_vectors(b, required=False)
    if x is not None and args.vectors >= 0:
        x = x[: args.vectors]
    if args.target == "hls4ml":
        out = check_out(args.o or build / "hls4ml", "-o")
        with replace_dir(out) as tmp:  # a failed export leaves an earlier project as it was
            hm = to_hls4ml(model, tmp)
            result = {"target": "hls4ml", "project": str(out), "backend": "Vitis", "io_type": "io_parallel"}
            if x is not None and not args.no_check:
                print(f"kofn export: compiling the hls4ml project in {tmp} and C-simulating {len(x)} vectors ...",
                      file=sys.stderr)
                _, mism = check_hls4ml(model, x, tmp, hm)
                result.update(vectors=int(len(x)), mismatches=mism)
    else:
        out = check_out_file(args.o or build / f"{model.name}.onnx", "-o")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.kofn-tmp")
        try:
            to_onnx(model, tmp)
            result = {"target": "onnx", "file": str(out), **onnx_exactness_bound(model)}
            if x is not None and not args.no_check:
                got, ref = run_onnx(model, tmp, x), run(model, x)
                result.update(vectors=int(len(x)), mismatches=int((got != ref).sum()),
                              argmax_agree=float((got.argmax(1) == ref.argmax(1)).mean()))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    print(json.dumps(result, indent=2))
    if result.get("mismatches"):
        print(f"kofn export: {result['mismatches']} output codes differ from the reference", file=sys.stderr)
        return 1
    return 0


class SynthToolError(KofnError):
    """Yosys or nextpnr is missing or failed on the design."""

    what = "synth"


def _prove(args: argparse.Namespace) -> int:
    from .prove import print_proof, prove_build, write_proof

    if args.depth is not None and args.depth < 1:
        raise UsageError(f"--depth: must be >= 1, got {args.depth}")
    if args.pdr_timeout < 0:
        raise UsageError(f"--pdr-timeout: must be >= 0, got {args.pdr_timeout}")
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    proof = prove_build(args.build_dir, depth=args.depth, pdr_timeout=args.pdr_timeout, solver=args.solver,
                        timeout=args.timeout, progress=say)
    build = Path(args.build_dir).resolve()
    write_proof(build, proof)
    print_proof(proof)
    unreached = [n for n, s in proof.covers if s is None] if proof.covers_complete else []
    failed = [p for p in proof.properties if p.status == "failed"]
    for p in failed:
        print(f"kofn prove: FAILED {p.name} ({p.text}) in cycle {p.cycle}; counterexample {build / p.vcd}",
              file=sys.stderr)
    if unreached:
        print(f"kofn prove: cover(s) not reached: {', '.join(unreached)} (a vacuous environment?)", file=sys.stderr)
    if not failed:
        n_proven = sum(p.status == "proven" for p in proof.properties)
        safety = ("the safety ones proven by PDR" if proof.safety_method == "pdr"
                  else f"the safety ones by BMC to {proof.safety_depth} cycles")
        print(f"kofn prove: {len(proof.properties)} properties hold ({n_proven} proven: {safety}; the live ones "
              f"by BMC to {proof.live_depth} cycles); wrote {build / 'formal' / 'prove.json'}", file=sys.stderr)
    return 1 if failed or unreached else 0


def _synth(args: argparse.Namespace) -> int:
    from ..codegen import plan_layers, resources
    from ..codegen.pnr import PnrError, place_and_route
    from ..codegen.synth import FAMILIES, YosysNotFound, synthesize
    from .build_dir import check_roms, open_build
    from .flow import plan_build
    from .report import resources_report, write_json_atomic

    families = [f.strip() for f in args.family.split(",") if f.strip()]
    bad = [f for f in families if f not in (*FAMILIES, "ecp5")]
    if bad or not families:
        raise UsageError(f"--family: {', '.join(bad) or '(none)'}: expected xc7, xcup or ecp5")
    b = open_build(args.build_dir)
    build, model, report = b.path, b.model, b.report
    flist = build / "rtl" / "filelist.f"
    if not flist.is_file():
        raise BuildError(f"{flist}: missing ({b.hint()})")
    names = flist.read_text(errors="replace").split()
    odd = [f for f in names if "/" in f or "\\" in f or f.startswith(".") or not f.endswith((".sv", ".v"))]
    if odd:
        raise BuildError(f"{flist}: {odd[0]!r} is not a source file name in rtl/ ({b.hint()})")
    sources = [f"rtl/{f}" for f in names]
    missing = [s for s in sources if not (build / s).is_file()]
    if missing or not sources:
        raise BuildError(f"{flist}: lists {', '.join(missing) or 'no source'}, " + ("missing" if missing else "") +
                         f" ({b.hint()})")
    if b.config is not None:
        check_roms(b, plan_build(model, b.config))  # the ROMs synthesized are the IR's
    top = sources[-1].rsplit("/", 1)[1].removesuffix(".sv")
    rpath = build / "report.json"
    lanes = [l.get("lanes") or None for l in report.layers] if report is not None else None
    clock = args.freq or (report.latency.clock_mhz if report is not None else 100.0)
    sp = build / "synth.json"
    try:
        out = json.loads(sp.read_text()) if sp.exists() else {}  # earlier families' results stay
    except (ValueError, OSError) as e:
        raise BuildError(f"{sp}: {e} (delete it to start the synthesis results afresh)") from None
    by_family, timing, rc = {}, {}, 0
    for fam in families:
        if fam == "ecp5":
            try:
                r = place_and_route(build, sources, top, clock_mhz=clock, device=args.device, package=args.package,
                                    speed=args.speed, seed=args.seed, threads=args.threads,
                                    progress=lambda m: print(f"ecp5: {m}", file=sys.stderr, flush=True))
            except (YosysNotFound, PnrError) as e:
                raise SynthToolError(str(e)) from None
            d = r.as_dict()
            out[fam] = timing[fam] = d
            cp = r.critical_path
            print(f"ecp5: synth {r.seconds['synth']:.0f} s, place and route {r.seconds['pnr']:.0f} s", file=sys.stderr)
            print(f"| ecp5 {r.device} speed {r.speed} | post-route |\n|---|---|")
            print(f"| Fmax | {r.fmax_mhz:.1f} MHz (constraint {r.clock_mhz:g} MHz: {'met' if r.met else 'FAILED'}) |")
            for key, label in (("lut4", "LUT4 (TRELLIS_COMB)"), ("ff", "FF (TRELLIS_FF)"), ("mult18", "MULT18X18D"),
                               ("dp16kd", "DP16KD")):
                print(f"| {label} | {d[key]:,} |")
            if cp:
                print(f"| critical path | {cp['delay_ns']} ns ({cp['routing_ns']} ns routing) in {cp['module']}: "
                      f"{cp['from']} -> {cp['to']} |")
            if not r.met:
                print(f"kofn synth: timing FAILED on ecp5: {r.verdict} (see build/synth/nextpnr_ecp5.log)", file=sys.stderr)
                rc = 1
            continue
        lat = report.latency if report is not None else None
        sched = dict(schedule=lat.schedule, stream_in=lat.stream_in, stream_out=lat.stream_out) if lat else {}
        est = resources_report(resources(model, plan_layers(model, lanes), family=fam, **sched), fam) if model else {}
        by_family[fam] = est
        print(f"{fam}: running yosys synth_xilinx ...", file=sys.stderr, flush=True)
        try:
            r = synthesize(build, sources, top, fam)
        except YosysNotFound as e:
            raise SynthToolError(str(e)) from None
        out[fam] = r.as_dict()
        print(f"{fam}: yosys synth_xilinx in {r.seconds:.0f} s", file=sys.stderr)
        print(f"| {fam} | estimate | yosys | error |\n|---|---|---|---|")
        for key in ("dsp", "bram18", "lut", "ff"):
            e, y = est.get(key), getattr(r, key)
            err = "exact" if e == y else (f"{(e - y) / y * 100:+.1f} %" if e is not None and y else "-")
            print(f"| {key} | {e if e is not None else '-'} | {y} | {err} |")
        if r.logic_path:
            lp = r.logic_path
            timing[fam] = lp
            print(f"{fam}: longest logic-only path {lp['ns']} ns (<= {lp['mhz_logic_only']} MHz before routing) in "
                  f"{lp['module']}", file=sys.stderr)
    write_json_atomic(sp, out)
    if report is not None:
        if by_family:
            report = report.with_synth({f: v for f, v in out.items() if f in by_family}, by_family)
        if timing:
            report = report.with_timing(timing)
        report.write(build)
        from .report_html import write_flow_html

        write_flow_html(report, build)
        print(f"kofn synth: updated {rpath} and {build / 'report.html'}", file=sys.stderr)
    return rc


def _explore(args: argparse.Namespace) -> int:
    from .compare import parse_ratio
    from .config import load_config
    from .explore import Targets, describe_pick, run_explore
    from .flow import Progress
    from .outdir import atomic_dir, check_out

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


_BUG = ("kofn: internal error (a bug in kofn {v}, not in your input): please report it with the traceback above, "
        "the command line and the config")


class _Signalled(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread after the children were told to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):  # noqa: ARG001
    from .outdir import kill_children

    kill_children()  # Verilator, make, g++, the simulator: worker threads waiting on them return now
    # ... and whatever a tool driver starts next (a runner's next command) until kofn exits
    threading.Thread(target=_reap, daemon=True, name="kofn-reaper").start()
    raise _Signalled(signum)


def _reap() -> None:
    import time

    from .outdir import kill_children

    for _ in range(240):
        kill_children()
        time.sleep(0.25)


def _run(func, args) -> int:
    """``func(args)`` on kofn's one error path: a user error is one line and exit 2; an
    interruption exit 128 + the signal; anything else a traceback, a bug-report line, exit 1."""
    main_thread = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        return func(args)
    except KofnError as e:
        msg = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"kofn: {e.what}: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"kofn: interrupted ({signal.Signals(signum).name}); no build folder was changed and the run's "
              "temporary files were removed", file=sys.stderr)
        return 128 + signum
    except OSError as e:
        if e.errno not in _user_errnos():
            traceback.print_exc()
            print(_BUG.format(v=__version__), file=sys.stderr)
            return 1
        where = e.filename or "a file"
        print(f"kofn: system: {where}: {e.strerror or e}; no build folder was changed", file=sys.stderr)
        return 2
    except Exception:
        from .outdir import low_disk

        full = low_disk()
        if full is not None:  # a tool died writing into a full file system: not kofn's bug
            print(f"kofn: system: {full[0]}: the file system is full ({full[1] / 2**20:.1f} MiB free; a build needs "
                  f"tens of MiB) and {type(sys.exc_info()[1]).__name__} followed; no build folder was changed",
                  file=sys.stderr)
            return 2
        traceback.print_exc()
        print(_BUG.format(v=__version__), file=sys.stderr)
        return 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _user_errnos():
    from .outdir import OS_USER_ERRNOS

    return OS_USER_ERRNOS


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
    e.set_defaults(func=_export)
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
    y.set_defaults(func=_synth)
    v = sub.add_parser("prove", help="formally check a dataflow build's stream control with Yosys, ABC and "
                                     "yosys-smtbmc (no lost beat, AXI4-Stream rules, frames, the scheduled cycles)")
    v.add_argument("build_dir")
    v.add_argument("--depth", type=int, default=None,
                   help="safety BMC depth in cycles when PDR is undecided (default: twice the latency plus the "
                        "reset; a smaller one is a quicker, weaker check)")
    v.add_argument("--pdr-timeout", type=float, default=600.0,
                   help="seconds for the unbounded safety proof (ABC pdr) before BMC takes over (default 600)")
    v.add_argument("--solver", default="yices", choices=("yices", "z3"), help="SMT solver (default yices)")
    v.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole check (default 1800)")
    v.add_argument("-q", "--quiet", action="store_true")
    v.set_defaults(func=_prove)
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
    return _run(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
