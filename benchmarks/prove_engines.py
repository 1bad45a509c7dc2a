"""Which formal engine closes the safety model of a build, and how fast (issue 26's open gap).

Run ``kofn prove BUILD`` once (it writes ``BUILD/formal/safety.aig``), then::

    python benchmarks/prove_engines.py BUILD [--seconds 120]

Each engine gets the same wall-clock budget on the same AIGER model, one after another (so the
figures are side by side on the same machine state):

* ``pdr``: ABC's IC3/PDR on all properties together (what ``kofn prove`` runs first);
* ``pdr -a``: PDR property by property (how many close on their own);
* ``bmc3``: ABC's BMC (what ``kofn prove`` falls back to): the depth reached in the budget;
* ``&bmcs -g``: ABC's newer BMC with Glucose: the depth reached.

It prints one line per engine: verdict, PDR frame or BMC depth reached, properties proved,
seconds.  Needs Debian's ``yosys`` (for ``yosys-abc``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

from kofn.app.prove import ProveToolError, _abc

ENGINES = {
    "pdr": "pdr -T {t}",
    "pdr -a": "pdr -a -T {t}",
    "bmc3": "bmc3 -F 100000 -T {t}",
    "&bmcs -g": "&get; &bmcs -g -T {t}",
}


def run_engine(aig: Path, engine: str, seconds: int) -> dict:
    """One engine on ``aig`` through ``kofn prove``'s own ABC call (same verdicts): verdict, PDR
    frame or BMC depth reached, properties proved, wall seconds."""
    t0 = time.perf_counter()
    try:
        verdict, _, secs = _abc(aig.parent, aig.name, ENGINES[engine].format(t=seconds))
    except ProveToolError:  # &bmcs cut short by -T says only "No output failed in N frames"
        verdict, secs = "undecided", time.perf_counter() - t0
    log = (aig.parent / (aig.name.removesuffix(".aig") + f"_{ENGINES[engine].split()[0]}.log")).read_text()
    reached = re.findall(r"(?:No output asserted in|No output failed in|timeout \(\d+ seconds\) in frame) (\d+)", log)
    proved = re.search(r"Proved = (\d+)", log)
    return {"engine": engine, "seconds": round(secs, 1), "verdict": verdict,
            "reached": int(reached[-1]) if reached else None, "proved": int(proved.group(1)) if proved else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", type=Path, help="a build folder that `kofn prove` has run on")
    ap.add_argument("--seconds", type=int, default=120, help="wall-clock budget per engine (default 120)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of: " + ", ".join(ENGINES))
    a = ap.parse_args(argv)
    aig = a.build / "formal" / "safety.aig"
    if not aig.is_file():
        print(f"error: {aig}: missing (run `kofn prove {a.build}` first)", file=sys.stderr)
        return 2
    if shutil.which("yosys-abc") is None:
        print("error: yosys-abc not found (apt-get install yosys)", file=sys.stderr)
        return 2
    names = [e.strip() for e in a.engines.split(",") if e.strip()]
    bad = [e for e in names if e not in ENGINES]
    if bad:
        print(f"error: unknown engine {bad[0]!r}; choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    print("| engine | verdict | frame / depth reached | properties proved | seconds |\n|---|---|---|---|---|")
    for e in names:
        r = run_engine(aig, e, a.seconds)
        print(f"| `{e}` | {r['verdict']} | {r['reached'] if r['reached'] is not None else '-'} | "
              f"{r['proved'] if r['proved'] is not None else '-'} | {r['seconds']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
