"""Clock frequency and cost of kofn builds: nextpnr-ecp5 post-route Fmax and Yosys's xc7 logic path.

    kofn flow --out build/default && kofn flow examples/cnn_digits.toml --out build/cnn
    python benchmarks/timing.py build/default build/cnn [--freq 150] [--skip-run]

For each build this runs ``kofn synth BUILD --family xc7,ecp5 --freq F`` (Yosys ``synth_xilinx``
with ``sta``, then Yosys ``synth_ecp5`` and nextpnr-ecp5 on an LFE5U-85F, speed 6, CABGA381)
and prints one table row from the build's ``synth.json``: post-route Fmax against the
constraint, the critical path's delay and instance, LUT4/FF/MULT18X18D, and the 7-series
logic-only path (routing excluded) with LUT/FF/DSP.  ``--skip-run`` only tabulates builds
already synthesized.  nextpnr's result depends on the placer seed (``--seed``, default 1): quote
it with the figure.  Place and route takes minutes per build on these machines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kofn.app.cli import main as kofn


def row(build: Path) -> str:
    s = json.loads((build / "synth.json").read_text())
    e, x = s.get("ecp5"), s.get("xc7")
    cells = [build.name]
    if e:
        cp = e.get("critical_path") or {}
        cells += [f"{e['fmax_mhz']:.1f}", f"{e['clock_mhz']:g}", "met" if e["met"] else "FAILED",
                  f"{cp.get('delay_ns', '-')} ({cp.get('routing_ns', '-')} routing)", cp.get("module", "-"),
                  f"{e['lut4']:,}", f"{e['ff']:,}", str(e["mult18"])]
    else:
        cells += ["-"] * 8
    if x:
        lp = x.get("logic_path") or {}
        cells += [str(lp.get("ns", "-")), lp.get("module", "-"), f"{x['lut']:,}", f"{x['ff']:,}", str(x["dsp"])]
    else:
        cells += ["-"] * 5
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", type=Path)
    ap.add_argument("--freq", type=float, default=None, help="ECP5 clock constraint, MHz (default: each build's hw.clock_mhz)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-run", action="store_true", help="tabulate existing synth.json files only")
    a = ap.parse_args(argv)
    for b in a.builds:
        if not a.skip_run:
            args = ["synth", str(b), "--family", "xc7,ecp5", "--seed", str(a.seed)]
            if a.freq:
                args += ["--freq", str(a.freq)]
            if kofn(args) == 2:
                return 2
    print("| build | ECP5 Fmax MHz | constraint | verdict | critical path ns | in | LUT4 | FF | MULT18 "
          "| xc7 logic-only ns | in | LUT | FF | DSP |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b in a.builds:
        print(row(b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
