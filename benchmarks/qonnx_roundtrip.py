"""Brevitas -> QONNX -> kofn round trip: mismatching output codes against qonnx's executor,
RTL (Verilator) and HLS (C simulation), for a Brevitas MLP and CNN.

    python benchmarks/qonnx_roundtrip.py [--out DIR] [--epochs 15]

Each model (tests/qonnx_models.py: power-of-two scales, a fixed k-of-n mask, a few epochs of
QAT on the digits set) is exported with Brevitas's ``export_qonnx`` and built by ``kofn flow``
with every test image plus 300 random vectors; the table compares every output code."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from qonnx_models import build, qonnx_outputs  # noqa: E402

from kofn.app.cli import main as kofn  # noqa: E402
from kofn.app.export import nchw_inputs  # noqa: E402
from kofn.core import ir as ir_mod  # noqa: E402


def one(kind: str, out: Path, epochs: int) -> dict:
    d = out / kind
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path, masks = build(kind, d, epochs)
    t_export = time.perf_counter() - t0
    (d / "c.toml").write_text(f'name = "brevitas_{kind}"\nmodel = "{path}"\n[sim]\nrandom_vectors = 300\n'
                              "test_vectors = 359\n")
    t0 = time.perf_counter()
    if kofn(["flow", str(d / "c.toml"), "--out", str(d / "build"), "--quiet"]) != 0:
        raise SystemExit(f"kofn flow failed for {kind}")
    t_flow = time.perf_counter() - t0
    r = json.loads((d / "build" / "report.json").read_text())
    m = ir_mod.load(d / "build" / "model")
    x = np.load(d / "build" / "vectors" / "inputs.npy")
    ref = np.load(d / "build" / "vectors" / "expected.npy")
    y = qonnx_outputs(path, nchw_inputs(m, x)) * 2.0 ** m.output_fmt.frac
    exact = bool(np.all(y == np.round(y)))
    return {
        "model": kind,
        "layers": " / ".join(f"{L.kind} k={L.k}/{L.n}" if L.weighted else L.kind for L in m.layers),
        "rounding": sorted({L.rounding for L in m.layers if L.weighted}),
        "vectors": int(len(x)), "codes": int(ref.size),
        "vs_qonnx": int((y.astype(np.int64) != ref).sum()) if exact else "not codes",
        "rtl": r["bitexact"]["rtl"]["mismatches"], "hls": r["bitexact"]["hls"]["mismatches"],
        "accuracy": r["accuracy"]["integer"], "latency": r["latency"]["cycles"] if "cycles" in r["latency"] else
        r["latency"].get("measured_cycles"), "ii": r["latency"].get("measured_ii_cycles"),
        "export_s": round(t_export, 1), "flow_s": round(t_flow, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="qonnx-roundtrip", type=Path)
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    rows = [one(k, args.out.resolve(), args.epochs) for k in ("mlp", "cnn")]
    print("| model | layers | rounding | vectors (codes) | vs qonnx executor | RTL | HLS | integer accuracy | "
          "latency / II cycles | Brevitas train+export s | kofn flow s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['layers']} | {', '.join(r['rounding'])} | {r['vectors']} ({r['codes']}) | "
              f"{r['vs_qonnx']} | {r['rtl']} | {r['hls']} | {r['accuracy']:.4f} | {r['latency']} / {r['ii']} | "
              f"{r['export_s']} | {r['flow_s']} |")
    (args.out / "roundtrip.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
