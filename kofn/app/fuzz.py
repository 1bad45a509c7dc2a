"""A fuzzed flow: random valid configs through ``kofn flow``, and random invalid ones through
its validation.

:func:`random_config` draws a flow config from a seed: an MLP or a CNN on the 8x8 digits
(conv, maxpool, bn, strides, padding), every granularity (weight, block, bank, kernel,
feature_map), random widths and signedness (inputs up to 12 bits: 16-bit tdata lanes), lanes
hand-set, by the default rule or ``"auto"`` (folded to a drawn ``hw.target_ii`` or
``hw.max_dsp``, bank layers included), both schedules, k = 1 and k = n, several values per
input beat (a dense first layer, into bank memories too) and per output beat, and skewed stage
rates (a wide first layer with a large k and up to 16 lanes feeding a tiny banked layer, the
shape of issue 26's seed 44) among the draws.  Configs the validation refuses are redrawn (the generator aims at valid ones; the
count of redraws is reported).  :func:`check_flow` runs one through the whole flow (short
training, few vectors) and returns what must hold: reference = RTL = HLS on every output code,
estimated = measured cycles and II.

:func:`invalid_config` mutates the default config with one value that is invalid by
construction and returns the TOML and the key the error must name.

A longer campaign than the test suite's, from the command line::

    python -m kofn.app.fuzz --seeds 0-99 --out fuzz-out [--keep] [--icarus] [--prove]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .fuzz_invalid import INVALID_CASES, invalid_config  # the invalid half, re-exported

__all__ = ["random_config", "valid_config", "check_flow", "invalid_config", "INVALID_CASES", "FlowCheck", "main"]


def _fmt(width: int, int_bits: int, signed: bool | None = None) -> str:
    s = "" if signed is None else f", signed = {'true' if signed else 'false'}"
    return f"{{ width = {width}, int_bits = {int_bits}{s} }}"


_ACT_FRAC = [0]  # the fraction bits of what the next layer reads (random_config threads it through)


def _formats(r: random.Random, relu: bool) -> list[str]:
    """Weight, bias and output formats; the bias never has more fraction bits than the
    accumulator (the activation's plus the weight's), which the validation requires."""
    ww = r.randint(3, 8)
    wi = r.randint(1, min(3, ww))
    bf = r.randint(0, min(12, _ACT_FRAC[0] + ww - wi))
    bw = bf + r.randint(4, 8)
    ow = r.randint(4, 8)
    oi = r.randint(max(1, ow - (_ACT_FRAC[0] + ww - wi)), min(4, ow)) if ow - (_ACT_FRAC[0] + ww - wi) <= 4 else ow
    out_signed = (not relu) or r.random() < 0.2
    _ACT_FRAC[0] = ow - oi
    return [f"weight = {_fmt(ww, wi)}", f"bias = {_fmt(bw, bw - bf)}", f"output = {_fmt(ow, oi, out_signed)}"]


def _k(r: random.Random, n: int) -> int:
    """k in 1..n, with k = 1 and k = n drawn often."""
    u = r.random()
    return 1 if u < 0.15 else n if u < 0.3 else r.randint(1, n)


def _divisors(x: int) -> list[int]:
    return [d for d in range(1, x + 1) if x % d == 0]


def _lanes(r: random.Random, row: int, wide: bool = False) -> str | None:
    """A ``lanes`` line for a layer of ``row`` entries per row: often unset (the default rule),
    sometimes ``"auto"`` (folded to the config's hw.target_ii or hw.max_dsp), else a P in
    1..row (up to 8, or up to 16 when ``wide``)."""
    u = r.random()
    if u < 0.25:
        return None
    if u < 0.45:
        return 'lanes = "auto"'
    return f"lanes = {r.randint(1, min(row, 16 if wide else 8))}"


def _dense(r: random.Random, n: int, out: int, last: bool, after_fm: bool, gran: str | None = None,
           wide_k: bool = False) -> tuple[list[str], int | str | None]:
    """A dense layer of ``n`` inputs and ``out`` outputs and the P its input banks need (a bank
    layer's lanes: an int, ``"auto"`` or ``None`` for the default rule; ``None`` otherwise).
    ``gran``: the granularity (drawn when ``None``); ``wide_k``: a large k (n/4..n) and up to 16
    lanes, a stage much slower than a small one behind it."""
    gran = gran or r.choice(["weight", "weight", "block", "bank"] + ([] if last else ["feature_map"]))
    if gran == "bank" and after_fm:
        gran = "weight"
    relu = (not last) and r.random() < 0.85
    lines = [f"out_features = {out}", f'granularity = "{gran}"', f"relu = {'true' if relu else 'false'}"]
    banks: int | str | None = None
    if gran == "block":
        m = r.choice([d for d in _divisors(n) if d <= 16])
        k = _k(r, m)
        lines += [f"block = {m}", f"k = {k}"]
        row = k * (n // m)
    elif gran == "feature_map":
        k = r.randint(1, out)
        lines.append(f"k = {k}")
        row = n
    elif gran == "bank":
        p = r.choice([d for d in _divisors(n) if d <= (16 if wide_k else 8)])
        k = p * (r.randint(max(1, n // p // 4), n // p) if wide_k else _k(r, n // p))
        lines.append(f"k = {k}")
        if r.random() < 0.25:  # folded: P is chosen (among those dividing k and n) before training
            lines.append('lanes = "auto"')
            banks = "auto"
        else:
            lines.append(f"lanes = {p}")
            banks = p
        row = None
    else:
        k = r.randint(max(1, n // 4), n) if wide_k else _k(r, n)
        lines.append(f"k = {k}")
        row = k
    if row is not None and (lane := _lanes(r, row, wide_k)):
        lines.append(lane)
    return lines + _formats(r, relu), banks


def random_config(seed: int) -> str:
    """A flow config (TOML) drawn from ``seed``; see the module doc.  Not yet validated."""
    r = random.Random(seed)
    cnn = r.random() < 0.5
    in_signed = r.random() < 0.25
    in_w = r.randint(9, 12) if r.random() < 0.1 else r.randint(4, 8)  # > 8 bits: 16-bit tdata lanes
    in_i = r.randint(1, 2)
    _ACT_FRAC[0] = in_w - in_i
    lines = [f'name = "fuzz_{seed}"', f"seed = {seed}",
             f"input = {_fmt(in_w, in_i, in_signed)}",
             '[data]\ndataset = "digits"',
             f'[train]\nmethod = "{r.choice(["dpp", "psp", "dtp", "magnitude", "random", "srste", "gradual"])}"\n'
             f"epochs = {r.randint(1, 2)}",
             "[sim]\nrandom_vectors = 40\ntest_vectors = 24\ntiming_vectors = 10",
             ]
    sched = r.choice(["dataflow", "dataflow", "sequential"])
    hw = [f'schedule = "{sched}"']
    layers: list[list[str]] = []
    first_banks: int | str | None = None  # the first layer's banks, when it is a dense bank layer
    after_fm = False
    if cnn:
        h = w = 8
        c = 1
        for _ in range(r.randint(1, 2)):
            kern = r.randint(1, 4)
            pad = "same" if kern % 2 and r.random() < 0.4 else "valid"
            stride = r.randint(1, kern) if r.random() < 0.4 else 1
            ph = h if pad == "same" else h - kern + 1
            if ph < 1:
                break
            oc = r.randint(2, 6)
            gran = r.choice(["weight", "weight", "kernel", "bank", "feature_map"])
            if gran == "bank" and after_fm:
                gran = "weight"
            relu = r.random() < 0.85
            n = c * kern * kern
            lines_l = ['type = "conv"', f"out_channels = {oc}", f"kernel = {kern}", f"stride = {stride}",
                       f'padding = "{pad}"', f'granularity = "{gran}"', f"bn = {'true' if r.random() < 0.4 else 'false'}",
                       f"relu = {'true' if relu else 'false'}"]
            if gran == "bank":
                p = r.choice([d for d in _divisors(n) if d <= 8])
                lines_l += [f"k = {p * _k(r, n // p)}", 'lanes = "auto"' if r.random() < 0.25 else f"lanes = {p}"]
            else:
                if gran == "kernel":
                    k = _k(r, c)
                    row = k * kern * kern
                elif gran == "feature_map":
                    k = r.randint(1, oc)
                    row = n
                else:
                    k = _k(r, n)
                    row = k
                lines_l.append(f"k = {k}")
                if lane := _lanes(r, row):
                    lines_l.append(lane)
            layers.append(lines_l + _formats(r, relu))
            after_fm = gran == "feature_map"
            h = (h + 2 * (kern // 2 if pad == "same" else 0) - kern) // stride + 1
            w = h
            c = oc
            if h >= 2 and r.random() < 0.5:
                layers.append(['type = "maxpool"'])
                h //= 2
                w = h
        n = h * w * c
    else:
        n = 64
    if not cnn and r.random() < 0.25:
        # skewed stage rates (fuzz seed 44 before issue 26's fix): a wide first layer with a
        # large k and many lanes feeding a tiny banked layer
        hidden = r.randint(2, 6)
        first, first_banks = _dense(r, n, hidden, last=False, after_fm=False,
                                    gran=r.choice(["weight", "weight", "bank"]), wide_k=True)
        layers.append(first)
        layers.append(_dense(r, hidden, 10, last=True, after_fm=False, gran="bank")[0])
    else:
        if r.random() < 0.5 or not cnn:
            hidden = r.randint(4, 24)
            dense, banks = _dense(r, n, hidden, last=False, after_fm=after_fm)
            first_banks = banks if not cnn else None
            layers.append(dense)
            after_fm = 'granularity = "feature_map"' in layers[-1]
            n = hidden
        layers.append(_dense(r, n, 10, last=True, after_fm=after_fm)[0])
    if sched == "dataflow":
        if not cnn and first_banks != "auto" and r.random() < 0.4:  # a dense first layer: several values per beat
            most = first_banks if isinstance(first_banks, int) and first_banks > 1 else 64
            hw.append(f"stream_in = {r.choice([v for v in (2, 3, 4, 5, 8, 16, 64) if v <= most] or [1])}")
        if r.random() < 0.4:
            hw.append(f"stream_out = {r.choice([1, 2, 3, 4, 5, 7, 10])}")
    auto = sum('lanes = "auto"' in "\n".join(layer) for layer in layers)
    if auto:
        if r.random() < 0.6:
            hw.append(f"target_ii = {r.randint(4, 200)}")
        else:  # room for every hand-set layer (8 lanes at most by default, 16 by hand) and the auto ones
            hand = sum(16 for layer in layers if any(x.startswith("lanes = ") and "auto" not in x for x in layer))
            hand += sum(8 for layer in layers if layer[0] != 'type = "maxpool"' and
                        not any(x.startswith("lanes = ") for x in layer))
            hw.append(f"max_dsp = {hand + r.randint(auto, 8 * auto)}")
    text = "\n".join(lines) + "\n[hw]\n" + "\n".join(hw) + "\n"
    for layer in layers:
        text += "\n[[layers]]\n" + "\n".join(layer) + "\n"
    return text


def valid_config(seed: int, tries: int = 50) -> tuple[str, int]:
    """The first of ``random_config(seed * 1000 + i)`` the validation accepts, and ``i``
    (how many were redrawn)."""
    from .config import ConfigError, parse_config

    for i in range(tries):
        text = random_config(seed * 1000 + i)
        try:
            parse_config(text, f"<fuzz {seed}>")
            return text, i
        except ConfigError:
            continue
    raise RuntimeError(f"fuzz seed {seed}: no valid config in {tries} draws (the generator drifted from the rules)")


@dataclass(frozen=True)
class FlowCheck:
    seed: int
    summary: str  # the network, one line
    rtl_mismatches: int
    hls_mismatches: int
    tlast_errors: int
    vectors: int
    cycles: tuple[int, int]  # estimated, measured
    ii: tuple[float, float]
    seconds: float
    icarus: dict | None = None  # mismatches, x_beats, latency and II under Icarus, when asked
    redraws: int = 0  # configs the validation refused before this one (valid_config)
    prove: dict | None = None  # kofn prove's verdict on a dataflow build, when asked


    @property
    def ok(self) -> bool:
        good = (self.rtl_mismatches == 0 and self.hls_mismatches == 0 and self.tlast_errors == 0 and self.vectors > 0
                and self.cycles[0] == self.cycles[1] and self.ii[0] == self.ii[1])
        if self.icarus is not None:
            ic = self.icarus
            good = good and ic["mismatches"] == 0 and ic.get("x_beats", 0) == 0 and \
                ic["latency_cycles"] == self.cycles[1] and ic["ii_cycles"] == self.ii[1]
        if self.prove is not None:  # a proof cut short by its time limit is reported, not failed
            good = good and self.prove["passed"] is not False and not self.prove.get("unreached_covers")
        return good


def check_flow(seed: int, out: Path, icarus: bool = False, prove: bool = False,
               prove_timeout: float = 600.0) -> FlowCheck:
    """Draw a valid config from ``seed`` and run the whole flow into ``out``."""
    from .config import parse_config
    from .flow import Progress, preflight, run_flow

    text, redraws = valid_config(seed)
    cfg = parse_config(text, f"<fuzz {seed}>")
    t0 = time.perf_counter()
    progress = Progress(quiet=True)
    rep = run_flow(cfg, Path(out), progress, config_text=text, pre=preflight(cfg, progress)).to_json()
    lat, be = rep["latency"], rep["bitexact"]
    summary = ", ".join(f"{l['kind']}" + (f" k={l['k']}/{l['n']} P={l['lanes']}" if "k" in l else "")
                        for l in rep["layers"]) + f"; {lat['schedule']}"
    ic = _icarus(Path(out), cfg) if icarus else None
    pv = _prove(Path(out), prove_timeout) if prove and lat["schedule"] == "dataflow" else None
    return FlowCheck(seed, summary, be["rtl"]["mismatches"], be["hls"]["mismatches"], be["rtl"]["tlast_errors"],
                     be["rtl"]["vectors"], (lat["estimated_cycles"], lat["measured_cycles"]),
                     (lat["ii_cycles"], lat["measured_ii_cycles"]), round(time.perf_counter() - t0, 1), ic, redraws, pv)


def _prove(out: Path, timeout: float = 600.0) -> dict:
    """``kofn prove`` on the build (PDR at most ``timeout / 2`` seconds a try, 10 s per property
    alone, ``timeout`` seconds in all): passed, how many safety properties PDR proved and BMC
    bounded, any failure."""
    from .prove import ProveToolError, prove_build

    t0 = time.perf_counter()
    try:
        p = prove_build(out, pdr_timeout=timeout / 2, timeout=timeout, progress=lambda m: None, per_prop=10.0)
    except ProveToolError as e:
        if "time limit" not in str(e):
            raise
        return {"passed": None, "safety": "timeout", "why": str(e), "seconds": round(time.perf_counter() - t0, 1)}
    return {"passed": None if p.undecided and not p.count("failed") else p.passed,
            "undecided": [q.name for q in p.undecided],
            "safety": p.safety_method, "safety_depth": p.safety_depth,
            "live_depth": p.live_depth, "properties": len(p.properties),
            "proven": p.count("proven"), "bounded": p.count("bounded", "safety"),
            "failed": [q.name for q in p.properties if q.status == "failed"],
            "unreached_covers": [n for n, c in p.covers if c is None] if p.covers_complete else [],
            "covers_complete": p.covers_complete, "seconds": round(time.perf_counter() - t0, 1)}


def _icarus(out: Path, cfg) -> dict:
    """The build's RTL under Icarus Verilog, the same vectors as the flow's Verilator run."""
    import numpy as np

    from .flow import plan_build
    from ..codegen import axis_args
    from ..core import ir as ir_mod
    from ..sim.rtl import build_rtl, simulate_rtl

    plan = plan_build(ir_mod.load(out / "model"), cfg)
    x = np.load(out / "vectors" / "inputs.npy")
    exp = np.load(out / "vectors" / "expected.npy")
    srcs = [out / "rtl" / f for f in (out / "rtl" / "filelist.f").read_text().split()]
    bdir = out / "sim_build_icarus"
    build_rtl(srcs, plan.top, bdir, out / "sim_build_icarus.log", simulator="icarus", **axis_args(plan))
    r = simulate_rtl(out, plan.top, x, exp, **axis_args(plan), build_dir=bdir, stall_prob=cfg.sim.stall_prob,
                     timing_vectors=cfg.sim.timing_vectors, seed=cfg.sim.seed, simulator="icarus")
    return {"mismatches": r.mismatches, "x_beats": getattr(r, "x_beats", 0), "latency_cycles": r.latency_cycles,
            "ii_cycles": r.ii_cycles}


# --- command line ---------------------------------------------------------------------------

def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part.strip()[1:]:
            a, b = part.split("-", 1)
            out += range(int(a), int(b) + 1)
        elif part.strip():
            out.append(int(part))
    return out


def main(argv: list[str] | None = None) -> int:
    from .cli import bound_openmp_spin

    bound_openmp_spin()
    ap = argparse.ArgumentParser(prog="python -m kofn.app.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-99 or 3,7,11 (default 0-9)")
    ap.add_argument("--out", default="kofn-fuzz", help="folder for the builds and fuzz.json (default kofn-fuzz)")
    ap.add_argument("--keep", action="store_true", help="keep every build (default: only the failing ones)")
    ap.add_argument("--icarus", action="store_true", help="also simulate every design under Icarus Verilog")
    ap.add_argument("--prove", action="store_true", help="also run kofn prove on every dataflow design")
    ap.add_argument("--prove-timeout", type=float, default=600.0,
                    help="seconds for each kofn prove (default 600; a proof cut short is reported, not failed)")
    args = ap.parse_args(argv)
    import shutil

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, failed = [], []
    t0 = time.perf_counter()
    for s in _seeds(args.seeds):
        b = out / f"seed{s}"
        shutil.rmtree(b, ignore_errors=True)
        try:
            c = check_flow(s, b, icarus=args.icarus, prove=args.prove, prove_timeout=args.prove_timeout)
            row = {**c.__dict__, "ok": c.ok}
        except Exception as e:  # a crash is a finding too
            row = {"seed": s, "ok": False, "error": f"{type(e).__name__}: {e}"}
        results.append(row)
        print(json.dumps(row), flush=True)
        if row["ok"] and not args.keep:
            shutil.rmtree(b, ignore_errors=True)
        if not row["ok"]:
            failed.append(s)
    (out / "fuzz.json").write_text(json.dumps(results, indent=2) + "\n")
    x_beats = sum((row.get("icarus") or {}).get("x_beats", 0) for row in results)
    print(f"{len(results)} designs, seeds {args.seeds}: {len(results) - len(failed)} bit-exact with exact cycles"
          + (f"; {x_beats} X beats under Icarus" if args.icarus else "")
          + (f"; kofn prove: {sum(1 for r in results if (r.get('prove') or {}).get('passed'))} of "
             f"{sum(1 for r in results if r.get('prove') is not None)} dataflow designs hold "
             f"({sum(1 for r in results if (r.get('prove') or {}).get('safety') == 'pdr')} with every safety "
             f"property proven by PDR; {sum((r.get('prove') or {}).get('proven', 0) for r in results)} properties "
             f"proven, {sum((r.get('prove') or {}).get('bounded', 0) for r in results)} bounded by BMC; "
             f"{sum(len((r.get('prove') or {}).get('undecided', [])) for r in results)} undecided; "
             f"{sum(1 for r in results if (r.get('prove') or {}).get('safety') == 'timeout')} cut short)"
             if args.prove else "")
          + f"; {sum(row.get('redraws', 0) for row in results)} redraws; {time.perf_counter() - t0:.0f} s"
          + (f"; FAILED: {failed}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
