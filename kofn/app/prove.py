"""``kofn prove BUILD_DIR``: a formal check of a build's stream control (issue 26).

The harness and models come from :mod:`kofn.codegen.formal`; the tools run through
:mod:`kofn.sim.formal`.  The steps, each with its engine:

1. Yosys writes the safety and the live model (SMT-LIB for ``yosys-smtbmc``, AIGER for ABC) and
   the cover models (AIGER).
2. **safety**, unbounded: ABC's ``pdr`` (IC3/property-directed reachability), first on the
   **abstract** model: every counter the RTL marks ``(* kofn_abstract *)`` (the cores' row and
   step, the buffers', loaders' and pools' position counters) becomes a free value each cycle.
   That model has every behaviour of the RTL and more, so what holds in it holds in the RTL;
   and since no control decision of a dataflow build rests on two counters agreeing (the
   results carry their bank and frame end), the properties still hold there.  The assertions
   about the counters themselves (``idle_at_zero``) are proven on the RTL as it is (the
   ``local`` model).  In order: all properties together (with the stages' lemmas,
   :data:`kofn.codegen.formal.LEMMAS`: where the designs close) on the abstract model, then on
   the RTL as it is (``JOINT_S`` each), then on the abstract model again for up to
   ``pdr_timeout`` (at most half the time left); each property alone (``per_prop`` seconds per try) on the
   abstract model, the RTL, and the abstract model with one stage's start freed
   (:func:`kofn.codegen.formal.property_script`); last the RTL as it is, together, for
   ``pdr_timeout`` seconds.  Where PDR finds an inductive invariant the property holds in every
   reachable state ("proven").  PDR subsumes k-induction here: ``yosys-smtbmc -i`` does not
   close on these designs at any small k.
3. **safety**, bounded, where PDR is undecided: ABC ``bmc3`` (SAT) to
   :attr:`~kofn.codegen.formal.FormalPlan.safety_depth` cycles, at least twice the latency
   ("bounded").  A failure from either engine is replayed by ``yosys-smtbmc`` to the same cycle
   for the failing property's name and a VCD counterexample.
4. **live**: ABC ``bmc3`` to the live depth (replayed by ``yosys-smtbmc`` on a failure): every
   frame's first input beat and last output beat in exactly the scheduled cycle.
5. **covers**: ABC ``bmc3`` on one model per cover, in which the cover is asserted never to
   happen, to the safety depth, with inputs always offered (tready free): the counterexample's
   cycle is the first that reaches it (stalls on both ports, two frames out), so a proof that
   holds because nothing moves would show.  (``yosys-smtbmc -c``
   gives the same cycles, 36, 113 and 154 on the default design, in 191-272 s against 17 s.)

Exit 0 when every property holds, 1 with the failing property, its cycle and the VCD, 2 on a
bad folder (the other commands' error path).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.errors import BuildError, KofnError

__all__ = ["PropertyResult", "Proof", "prove_build", "prove_design", "print_proof", "write_proof", "ProveToolError"]


JOINT_S = 120  # seconds for PDR on all safety properties together, on the abstract model and on the RTL


class ProveToolError(KofnError):
    """A formal tool is missing, failed or ran out of time (exit 2)."""

    what = "prove"


@dataclass(frozen=True)
class PropertyResult:
    name: str  # the assertion's hierarchical name (u_dut.u_l0_buf.no_overwrite)
    mode: str  # "safety" or "live"
    text: str
    status: str  # "proven", "bounded", "failed" or "undecided" (BMC cut short: ``depth`` cycles cleared)
    method: str  # "pdr" (unbounded: an inductive invariant) or "bmc"
    depth: int  # BMC cycles (0 for pdr)
    cycle: int | None = None  # a failure's cycle from power-up
    vcd: str | None = None
    model: str = "rtl"  # where it was proven: "rtl" (as it is) or the abstraction (kofn_abstract)


@dataclass(frozen=True)
class Proof:
    properties: tuple[PropertyResult, ...]
    covers: tuple[tuple[str, int | None], ...]
    covers_complete: bool  # False: the cover search hit its time limit (unreached ones unknown)
    safety_depth: int
    live_depth: int
    safety_method: str  # "pdr" (proven for all time) or "bmc" (to safety_depth)
    abstraction: str
    solver: str
    seconds: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every property holds (none failed, none left undecided by the time limit)."""
        return all(p.status not in ("failed", "undecided") for p in self.properties)

    @property
    def undecided(self) -> list[PropertyResult]:
        return [p for p in self.properties if p.status == "undecided"]

    def count(self, status: str, mode: str | None = None) -> int:
        """The properties with ``status`` (of ``mode``, "safety" or "live", when given)."""
        return sum(p.status == status and mode in (None, p.mode) for p in self.properties)

    def to_json(self) -> dict:
        return {"passed": self.passed, "undecided": [p.name for p in self.undecided], "solver": self.solver,
                "abstraction": self.abstraction,
                "safety_bmc_depth": self.safety_depth, "live_bmc_depth": self.live_depth,
                "safety_method": self.safety_method,
                "properties": [asdict(p) for p in self.properties],
                "covers": [{"name": n, "reached_at": s} for n, s in self.covers],
                "covers_complete": self.covers_complete, "seconds": self.seconds}


def _secs(t: float) -> int:
    """A time limit for ABC's ``-T``, at least 1 s: ``-T 0`` means none, and a check begun with
    the time nearly spent would then run unbounded."""
    return max(1, int(t))


def _abc(cwd: Path, aig: str, engine: str) -> tuple[str, int | None, float]:
    """ABC's ``engine`` (``pdr ...`` or ``bmc3 ...``) on an AIGER model (assumptions folded into
    the properties): ("proven" | "passed" | "failed" | "undecided", the failing frame (for a
    ``bmc3`` cut short by its time limit: the frames it cleared), seconds)."""
    import re

    t0 = time.perf_counter()
    # before PDR, sequential SAT sweeping (``scorr``: registers equal in every reachable state
    # merged, e.g. a valid bit and its copy in a tag chain) and AIG rewriting (``dc2``); both keep
    # every output's value in every cycle, so a proof or a failing frame holds for the model as
    # written.  PDR then needs the redundant copies in no invariant: fuzz seeds 19 and 22 closed
    # in 3.3 s and 1.4 s, undecided after 600 s without
    prep = "scorr; dc2; " if engine.startswith("pdr") else ""
    # -T bounds the engine only: the whole run (the sweep included) gets the engine's limit again
    # as a margin, then counts as undecided
    m = re.search(r"-T (\d+)", engine)
    try:
        r = subprocess.run(["yosys-abc", "-c", f"read_aiger {aig}; fold; strash; {prep}{engine}"], cwd=cwd,
                           capture_output=True, text=True, timeout=2 * int(m.group(1)) + 30 if m else None)
    except subprocess.TimeoutExpired:
        (cwd / (aig.removesuffix(".aig") + f"_{engine.split()[0]}.log")).write_text(
            f"yosys-abc {prep}{engine} on {aig}: stopped past twice its time limit (the sweep included)\n")
        return "undecided", None, time.perf_counter() - t0
    out = r.stdout + r.stderr
    (cwd / (aig.removesuffix(".aig") + f"_{engine.split()[0]}.log")).write_text(out)
    secs = time.perf_counter() - t0
    m = re.search(r"was asserted in frame (\d+)", out)
    if m:
        return "failed", int(m.group(1)), secs
    if "Property proved" in out:
        return "proven", None, secs
    # bmc3 ends "Resource limit reached (conf limit 0)" when done, "(timeout N sec)" when cut short
    if re.search(r"No output asserted in \d+ frames", out) and not re.search(r"Reached timeout|\(timeout \d+ sec\)", out):
        return "passed", None, secs
    if "UNDECIDED" in out or "Reached timeout" in out or "timeout" in out.lower():
        m = re.search(r"No output (?:asserted|failed) in (\d+) frames", out)
        return "undecided", int(m.group(1)) if m else None, secs
    raise ProveToolError(f"yosys-abc {engine} on {cwd / aig} gave no verdict: {out.strip().splitlines()[-1:]}")


def prove_build(build_dir: str | Path, *, depth: int | None = None, pdr_timeout: float = 600.0,
                solver: str = "yices", timeout: float = 1800.0, progress=print, per_prop: float = 30.0) -> Proof:
    """Check the stream control of the build in ``build_dir`` (module doc); writes the harness,
    models, logs and any counterexample under ``build_dir/formal`` and returns the
    :class:`Proof`.  ``depth``: the safety BMC depth (default: twice the latency plus the reset);
    ``pdr_timeout``: seconds for the unbounded attempt (PDR) before BMC takes over; ``per_prop``:
    seconds of PDR for each property alone, in each abstraction (at most half the time left)."""
    from .build_dir import open_build
    from .flow import plan_build

    b = open_build(build_dir, need_config=True)
    build = b.path
    sources = _sources(b)
    plan = plan_build(b.model, b.config)
    return prove_design(build, plan, sources, depth=depth, pdr_timeout=pdr_timeout, solver=solver,
                        timeout=timeout, progress=progress, per_prop=per_prop)


def _sources(b) -> list[str]:
    """The build's RTL files from its filelist, relative to the build folder, each checked."""
    build = b.path
    flist = build / "rtl" / "filelist.f"
    if not flist.is_file():
        raise BuildError(f"{flist}: missing ({b.hint()})")
    names = flist.read_text(errors="replace").split()
    if not names or any("/" in f or f.startswith(".") or not f.endswith((".sv", ".v")) for f in names):
        raise BuildError(f"{flist}: not a list of source files in rtl/ ({b.hint()})")
    sources = [f"rtl/{f}" for f in names]
    missing = [s for s in sources if not (build / s).is_file()]
    if missing:
        raise BuildError(f"{flist}: lists {missing[0]}, missing ({b.hint()})")
    return sources


def prove_design(build: Path, plan, sources: list[str], *, depth: int | None = None, pdr_timeout: float = 600.0,
                 solver: str = "yices", timeout: float = 1800.0, progress=print, per_prop: float = 30.0) -> Proof:
    """:func:`prove_build` on RTL already in folder ``build``: ``sources`` (relative to it) laid
    out as ``plan`` (a :class:`kofn.codegen.BuildPlan`)."""
    from ..codegen.formal import LOCAL_PROPERTIES, describe, formal_plan
    from ..sim import formal as fm
    from ..sim.tools import ToolNotFound

    build = Path(build)
    try:
        fp = formal_plan(plan, sources, safety_depth=depth)
    except ValueError as e:
        raise BuildError(f"{build}: {e}") from None
    try:
        env = fm.formal_env(solver)
    except ToolNotFound as e:
        raise ProveToolError(str(e)) from None
    if shutil.which("yosys-abc", path=env["PATH"]) is None:
        raise ProveToolError("yosys-abc not found (kofn prove needs it: apt-get install yosys)")
    fdir = build / "formal"
    shutil.rmtree(fdir, ignore_errors=True)
    fdir.mkdir()
    for rel, text in fp.files.items():
        (build / rel).write_text(text)
    secs: dict[str, float] = {}
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    for mode in ("safety", "abstract", "local", "live", "cover"):
        progress(f"prove: yosys writes the {mode} model{'s' if mode == 'cover' else ''} (datapath cut at {fp.out_stream}_data)")
        try:
            secs[f"yosys_{mode}"] = round(fm.run_yosys(build, f"formal/{mode}.ys", f"formal/{mode}_yosys.log", env,
                                                       timeout=left()), 1)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            raise ProveToolError(str(e)) from None
    safety_names, covers = fm.model_properties(fdir / "safety.smt2")
    live_names, _ = fm.model_properties(fdir / "live.smt2")
    results: list[PropertyResult] = []

    # safety: PDR (unbounded) on the abstract and local models, else on the RTL as it is, else
    # BMC; a failure replayed by yosys-smtbmc for its name and VCD
    n_safe = len(safety_names)

    def is_local(name: str) -> bool:
        return name.rsplit(".", 1)[-1] in LOCAL_PROPERTIES

    def pdr(aig: str, budget: float):
        return _abc(build, aig, f"pdr -T {_secs(min(budget, left()))}")

    n_local = sum(map(is_local, safety_names))
    # all together first, with the stages' lemmas (where the designs close): the abstract model,
    # then the RTL as it is (JOINT_S each: PDR's luck differs between the two), then the abstract
    # model again for up to pdr_timeout, at most half the time left; then one at a time
    progress(f"prove: safety, {n_safe} properties: PDR (IC3) with the counters abstracted "
             f"({n_safe - n_local}, at most {min(pdr_timeout, JOINT_S):.0f} s together) and on the counters ({n_local})")
    verdict, frame, s = pdr("formal/abstract.aig", min(pdr_timeout, JOINT_S))
    secs["safety_pdr_abstract"] = round(s, 1)
    if n_local and verdict != "failed":
        local, _, s = pdr("formal/local.aig", pdr_timeout)
        secs["safety_pdr_local"] = round(s, 1)
    local_ok = n_local == 0 or verdict != "failed" and local == "proven"
    abstracted = verdict == "proven" and local_ok
    how: dict[str, str] = {}  # property -> the abstraction that proved it (when proven one by one)
    rtl_joint = None
    if verdict == "undecided" and local_ok:
        # the RTL as it is, all together, as briefly (closes on small dense chains, the default)
        progress(f"prove: not closed with the counters abstracted; PDR on the RTL as it is, at most {min(pdr_timeout, JOINT_S):.0f} s")
        rtl_joint, frame, s = pdr("formal/safety.aig", min(pdr_timeout, JOINT_S))
        secs["safety_pdr_rtl"] = round(s, 1)
        if rtl_joint != "undecided":
            verdict = rtl_joint
    if verdict == "undecided" and local_ok and pdr_timeout > JOINT_S:
        long_ = min(pdr_timeout, (deadline - time.monotonic()) / 2)
        progress(f"prove: not closed in {JOINT_S} s; PDR with the counters abstracted again, at most {long_:.0f} s")
        again, _, s = pdr("formal/abstract.aig", long_)
        secs["safety_pdr_abstract_long"] = round(s, 1)
        if again == "proven":  # a counterexample there may be the abstraction's: only a proof counts
            verdict, abstracted = "proven", True
    if verdict == "undecided" and local_ok:
        # one property at a time, each in the abstractions of codegen.formal.property_script
        names = [n for n in safety_names if not is_local(n)]
        progress(f"prove: not closed together; {len(names)} properties one at a time, with the counters "
                 f"abstracted and each stage's start free in turn (at most {per_prop:.0f} s each)")
        half = time.monotonic() + (deadline - time.monotonic()) / 2  # the rest for BMC, live and covers
        how = _one_by_one(build, fp, names, env, lambda: max(1.0, half - time.monotonic()), secs, per_prop)
        abstracted = len(how) == len(names)
    if abstracted:
        verdict = "proven"
    elif rtl_joint in ("proven", "failed"):
        pass  # the RTL as it is decided (proven, or a counterexample to replay below)
    else:
        progress(f"prove: not closed with the counters abstracted ({verdict}); PDR on the RTL as it is, "
                 f"at most {pdr_timeout:.0f} s")
        verdict, frame, s = pdr("formal/safety.aig", pdr_timeout)
        secs["safety_pdr"] = round(s, 1)
    method, mdepth = "pdr", 0
    safety_open = False  # BMC cut short by the time limit: the properties it covers stay undecided
    if verdict == "undecided":
        # at most 2/3 of the time left, so that the live model and the covers still get a verdict
        progress(f"prove: PDR undecided; safety BMC to {fp.safety_depth} cycles (ABC bmc3)")
        verdict, frame, s = _abc(build, "formal/safety.aig", f"bmc3 -F {fp.safety_depth} -T {_secs(left() * 2 / 3)}")
        secs["safety_bmc"] = round(s, 1)
        method, mdepth = "bmc", fp.safety_depth
        if verdict == "undecided":
            safety_open, mdepth = True, frame or 0
            progress(f"prove: safety BMC cleared {mdepth} of {fp.safety_depth} cycles within the time limit "
                     f"({timeout:.0f} s; --timeout): the properties PDR did not prove stay undecided")
    if verdict == "failed":
        progress(f"prove: safety fails in cycle {frame}: replaying with yosys-smtbmc for the property and a VCD")
        r = fm.smtbmc(build, "formal/safety.smt2", depth=frame + 1, vcd="formal/cex_safety.vcd", solver=solver,
                      env=env, timeout=left(), log="formal/safety_bmc.log")
        secs["safety_replay"] = r.seconds
        bad = set(r.failed) or {"(unnamed: see formal/safety_bmc.log)"}
        for n in safety_names:
            st = "failed" if n in bad else "bounded"
            results.append(PropertyResult(n, "safety", describe(n), st, "bmc", frame + 1,
                                          r.step if st == "failed" else None,
                                          r.vcd if st == "failed" else None))
    else:
        # a property PDR proved alone (or a counter's own, proven on the local model) stays
        # proven when the others fall back to BMC: the BMC covers the whole safety model
        for n in safety_names:
            if method == "pdr" or n in how or (is_local(n) and n_local and local_ok):
                model = "rtl" if is_local(n) or not (abstracted or n in how) else how.get(n, "counters free")
                results.append(PropertyResult(n, "safety", describe(n), "proven", "pdr", 0, model=model))
            else:
                results.append(PropertyResult(n, "safety", describe(n), "undecided" if safety_open else "bounded",
                                              "bmc", mdepth))

    # live: the schedule, exactly (a deterministic model: ABC bmc3; a failure replayed for names)
    progress(f"prove: live, BMC to {fp.live_depth} cycles: {len(fp.schedule)} frame(s) at the scheduled cycles")
    verdict, frame, s = _abc(build, "formal/live.aig", f"bmc3 -F {fp.live_depth} -T {_secs(left())}")
    secs["live_bmc"] = round(s, 1)
    live_depth = fp.live_depth if verdict != "undecided" else frame or 0
    bad: set = set()
    r = None
    if verdict == "failed":
        r = fm.smtbmc(build, "formal/live.smt2", depth=frame + 1, vcd="formal/cex_live.vcd", solver=solver,
                      env=env, timeout=left(), log="formal/live_bmc.log")
        secs["live_replay"] = r.seconds
        bad = set(r.failed) or {live_names[0] if live_names else "(unnamed)"}
    for n in live_names:
        failed = n in bad
        st = "failed" if failed else "undecided" if verdict == "undecided" else "bounded"
        results.append(PropertyResult(n, "live", describe(n), st, "bmc", live_depth,
                                      r.step if failed else None, r.vcd if failed else None))

    # covers: the proof is not vacuous (ABC bmc3 on one model per cover: a counterexample to
    # "never reached" is the first cycle that reaches it)
    cov: tuple = ()
    covers_done = True
    if covers:
        # every cover is met by the second frame leaving (stalls on both ports come earlier)
        cdepth = fp.safety_depth
        progress(f"prove: covers, up to {cdepth} cycles (ABC bmc3)")
        t0 = time.perf_counter()
        reached: dict[str, int | None] = {}
        for n in covers:
            base = n.rsplit(".", 1)[-1]
            if not (build / "formal" / f"{base}.aig").is_file():
                raise ProveToolError(f"Yosys wrote no cover model for {n} (see formal/cover_yosys.log)")
            verdict, frame, _ = _abc(build, f"formal/{base}.aig", f"bmc3 -F {cdepth} -T {_secs(min(left(), 600))}")
            reached[n] = frame if verdict == "failed" else None
            covers_done = covers_done and verdict != "undecided"
        secs["covers"] = round(time.perf_counter() - t0, 1)
        cov = tuple((n, reached.get(n)) for n in covers)
    return Proof(tuple(results), cov, covers_done, fp.safety_depth, fp.live_depth, method,
                 f"datapath cut: the results entering the output buffer ({fp.out_stream}_data) are free values each "
                 f"cycle (Yosys cutpoint); every value upstream of them is unobservable and removed"
                 + ("; safety proven with every (* kofn_abstract *) counter free (an over-approximation), "
                    "the counters' own properties on the RTL as it is" if abstracted else ""),
                 solver, secs)


def _one_by_one(build: Path, fp, names: list[str], env: dict, left, secs: dict, per_prop: float) -> dict[str, str]:
    """PDR on each property alone, in each abstraction in turn until one proves it: the
    properties proven, with the abstraction that did (``{}`` short of the time limit)."""
    from ..codegen.formal import property_script
    from ..sim import formal as fm

    script, order = property_script(fp, names)
    (build / "formal" / "pp").mkdir(exist_ok=True)
    (build / "formal" / "properties.ys").write_text(script)
    t0 = time.perf_counter()
    try:
        fm.run_yosys(build, "formal/properties.ys", "formal/properties_yosys.log", env, timeout=left())
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        raise ProveToolError(str(e)) from None
    how: dict[str, str] = {}
    for name, what, path in order:
        if name in how:
            continue
        if left() <= 1.0:
            break
        verdict, _, _ = _abc(build, path, f"pdr -T {_secs(min(per_prop, left()))}")
        if verdict == "proven":
            how[name] = what
    secs["safety_pdr_one_by_one"] = round(time.perf_counter() - t0, 1)
    return how


def print_proof(proof: Proof, file=None) -> None:
    """The command's table: one row per property (on ``file``, by default the current stdout)."""
    file = sys.stdout if file is None else file
    print("| property | mode | status | how |\n|---|---|---|---|", file=file)
    for p in proof.properties:
        how = ("PDR (IC3): every reachable state" if p.method == "pdr" else
               f"BMC, {p.depth} cycles" + (" before the time limit" if p.status == "undecided" else ""))
        st = p.status + (f" in cycle {p.cycle} (counterexample {p.vcd})" if p.status == "failed" else "")
        print(f"| {p.name} | {p.mode} | {st} | {how} |", file=file)
    for n, s in proof.covers:
        what = ('reached in cycle %d' % s if s is not None else
                'NOT reached' if proof.covers_complete else 'not reached before the time limit')
        print(f"| cover {n} | safety | {what} | cover |", file=file)


def write_proof(build: Path, proof: Proof) -> None:
    """``formal/prove.json`` and the ``formal`` entry of ``report.json``."""
    from .report import Report, write_json_atomic

    write_json_atomic(build / "formal" / "prove.json", proof.to_json())
    if (build / "report.json").is_file():
        Report.load(build).with_formal(proof.to_json()).write(build)
