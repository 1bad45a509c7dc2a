"""The bank granularity's trade: accuracy over seeds beside the hardware it saves.

    python benchmarks/bank_trade.py accuracy [CONFIG ...] [--seeds 0,1,2] [--out bank_acc.json]
    python benchmarks/bank_trade.py hardware BUILD ... [--family xc7,ecp5] [--freq 100] [--accuracy bank_acc.json]

The whole trade, from a checkout (the flows take minutes, place and route tens of minutes):

    kofn flow examples/mnist_mlp.toml --out b/mnist && kofn flow examples/mnist_mlp_bank.toml --out b/mnist-bank
    python benchmarks/bank_trade.py accuracy --out b/bank_acc.json
    python benchmarks/bank_trade.py hardware b/mnist b/mnist-bank --family xc7,ecp5 --accuracy b/bank_acc.json

``accuracy`` trains every config (default: ``examples/mnist_mlp.toml`` and its banked twin
``examples/mnist_mlp_bank.toml``) once per seed, the flow's own path (``train_to_ir``: train,
export, the integer reference on the test split; the MNIST-10k protocol for ``mnist`` configs),
and prints the integer accuracy's mean, standard deviation and spread per config.

``hardware`` reads builds of ``kofn flow`` (running ``kofn synth BUILD --family ...`` where a
build has no ``synth.json`` yet) and prints, per build (with ``--accuracy``: beside the accuracy
of the config the build was made from, matched by model name), the first MAC layer's instance and the
whole design: LUT, FF, BRAM18 and DSP from Yosys ``synth_xilinx`` (xc7), and with ``ecp5`` the
LUT4, FF, MULT18X18D and post-route Fmax of nextpnr-ecp5.  The first layer's figures are the
Yosys per-instance counts of its module instances (``u_l0_*``: the core and its input buffer).
Place and route of the MNIST designs takes tens of minutes on two cores: run it in the background.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [ROOT / "examples" / "mnist_mlp.toml", ROOT / "examples" / "mnist_mlp_bank.toml"]


def accuracy(configs: list[Path], seeds: list[int], out: Path | None, threads: int) -> dict:
    from kofn.app.config import load_config
    from kofn.app.training import load_data, train_to_ir

    doc = {"seeds": seeds, "configs": {}}
    for path in configs:
        cfg = load_config(path)
        ds = load_data(cfg)
        accs, secs = [], []
        for seed in seeds:
            t0 = time.perf_counter()
            t = train_to_ir(replace(cfg, seed=seed), ds, lambda m: None, threads=threads)
            secs.append(time.perf_counter() - t0)
            accs.append(t.accuracy_int)
            print(f"{path.name} seed {seed}: integer accuracy {t.accuracy_int:.4f} ({secs[-1]:.0f} s)", flush=True)
        doc["configs"][path.name] = {
            "name": cfg.name,
            "layers": [layer.describe(i) for i, layer in enumerate(cfg.layers)],
            "accuracy_per_seed": accs, "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "min": min(accs), "max": max(accs),
            "train_seconds_median": statistics.median(secs)}
    print("\n| config | integer accuracy, mean ± std | min .. max | seeds |\n|---|---|---|---|")
    for name, r in doc["configs"].items():
        print(f"| {name} | {r['mean']:.4f} ± {r['std']:.4f} | {r['min']:.4f} .. {r['max']:.4f} | {len(seeds)} |")
    names = list(doc["configs"])
    if len(names) == 2:
        a, b = (doc["configs"][n]["mean"] for n in names)
        print(f"\n{names[1]} - {names[0]}: {100 * (b - a):+.2f} points")
    if out:
        out.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def _first_layer(instances: dict, keys: tuple[str, ...]) -> dict:
    """Summed cell counts of the first layer's instances (``u_l0`` and ``u_l0_*``)."""
    inst = {k: v for k, v in instances.items() if k == "u_l0" or k.startswith("u_l0_")}
    return {key: sum(v.get(key, 0) for v in inst.values()) for key in keys} | {"instances": sorted(inst)}


def hardware(builds: list[Path], family: str, freq: float | None, acc_file: Path | None = None) -> list[dict]:
    from kofn.app.cli import main as kofn

    accs = {}
    if acc_file:
        accs = {c["name"]: c for c in json.loads(acc_file.read_text())["configs"].values()}
    rows = []
    for b in builds:
        if not (b / "synth.json").exists():
            args = ["synth", str(b), "--family", family] + (["--freq", str(freq)] if freq else [])
            if kofn(args) not in (0, 1):  # 1: the clock was not met, the figures are still there
                sys.exit(f"kofn synth {b} failed")
        s = json.loads((b / "synth.json").read_text())
        rep = json.loads((b / "report.json").read_text())
        x, e = s.get("xc7"), s.get("ecp5")
        row = {"build": b.name, "name": rep.get("name"), "accuracy": accs.get(rep.get("name")),
               "banks": [l.get("banks", 1) for l in rep["layers"]]}
        if x:
            row["xc7"] = {k: x[k] for k in ("lut", "ff", "bram18", "dsp")}
            row["xc7_l0"] = _first_layer(x.get("instances", {}), ("lut", "ff", "bram18", "dsp"))
        if e:
            row["ecp5"] = {k: e[k] for k in ("lut4", "ff", "mult18", "fmax_mhz")}
            if e.get("instances"):  # per-instance figures, where kofn synth reports them
                row["ecp5_l0"] = _first_layer(e["instances"], ("lut4", "ff", "mult18"))
        rows.append(row)

    def f(d, ks):
        return " / ".join(f"{d[k]:,}" for k in ks) if d else "-"

    print("| build | integer accuracy (mean ± std, seeds) | l0 xc7 LUT / FF / BRAM18 / DSP | "
          "total xc7 LUT / FF / BRAM18 / DSP | l0 ECP5 LUT4 / FF | total ECP5 LUT4 / FF / MULT18 | Fmax MHz |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        a = r["accuracy"]
        acc = f"{a['mean']:.4f} ± {a['std']:.4f} ({len(a['accuracy_per_seed'])})" if a else "-"
        fmax = f"{r['ecp5']['fmax_mhz']:.1f}" if r.get("ecp5") else "-"
        print(f"| {r['build']} | {acc} | {f(r.get('xc7_l0'), ('lut', 'ff', 'bram18', 'dsp'))} | "
              f"{f(r.get('xc7'), ('lut', 'ff', 'bram18', 'dsp'))} | {f(r.get('ecp5_l0'), ('lut4', 'ff'))} | "
              f"{f(r.get('ecp5'), ('lut4', 'ff', 'mult18'))} | {fmax} |")
    if len(rows) == 2 and all("xc7_l0" in r for r in rows):
        a, b = rows[0]["xc7_l0"]["lut"], rows[1]["xc7_l0"]["lut"]
        print(f"\nfirst layer xc7 LUTs: {rows[0]['build']} {a:,} / {rows[1]['build']} {b:,} = {a / max(1, b):.2f}x")
    print(json.dumps(rows, indent=1))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("configs", nargs="*", type=Path, default=DEFAULT_CONFIGS)
    a.add_argument("--seeds", default="0,1,2")
    a.add_argument("--out", type=Path)
    a.add_argument("--threads", type=int, default=2, help="torch threads per training (default 2)")
    h = sub.add_parser("hardware")
    h.add_argument("builds", nargs="+", type=Path)
    h.add_argument("--family", default="xc7", help="kofn synth families for builds not yet synthesized")
    h.add_argument("--freq", type=float)
    h.add_argument("--accuracy", type=Path, help="the accuracy command's --out, printed beside each build")
    args = ap.parse_args()
    if args.cmd == "accuracy":
        accuracy(args.configs, [int(s) for s in args.seeds.split(",")], args.out, args.threads)
    else:
        hardware(args.builds, args.family, args.freq, args.accuracy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
