"""The ``kofn`` commands that work on a finished build folder and add to it: ``kofn export``
(hls4ml project or ONNX file, checked against the reference), ``kofn synth`` (Yosys per
family, nextpnr place and route for ECP5; ``synth.json`` and the report updated) and
``kofn prove`` (the formal check of the stream control, :mod:`kofn.app.prove`).

Each takes the parsed arguments of its sub-command (:func:`kofn.app.cli.main` builds the
parser) and returns the exit status; errors are :class:`~kofn.core.errors.KofnError` exceptions,
which :func:`kofn.app.cli_run.run_command` turns into one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..core.errors import BuildError, KofnError, UsageError

__all__ = ["export_command", "synth_command", "prove_command", "SynthToolError"]


def export_command(args: argparse.Namespace) -> int:
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



def prove_command(args: argparse.Namespace) -> int:
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
    open_ = proof.undecided
    n_proven = proof.count("proven")
    if open_ and not failed:
        print(f"kofn prove: {len(open_)} of {len(proof.properties)} properties undecided within the time limit "
              f"(--timeout; BMC cleared {min(p.depth for p in open_)} cycles): {', '.join(p.name for p in open_)}; "
              f"{n_proven} proven, none failed; wrote {build / 'formal' / 'prove.json'}", file=sys.stderr)
        return 2
    if not failed:
        n_bounded = proof.count("bounded", "safety")
        safety = ("the safety ones by PDR" if not n_bounded
                  else f"safety by PDR, {n_bounded} safety one(s) bounded: BMC to {proof.safety_depth} cycles")
        print(f"kofn prove: {len(proof.properties)} properties hold ({n_proven} proven, {safety}; the live ones "
              f"by BMC to {proof.live_depth} cycles); wrote {build / 'formal' / 'prove.json'}", file=sys.stderr)
    return 1 if failed or unreached else 0



def synth_command(args: argparse.Namespace) -> int:
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
