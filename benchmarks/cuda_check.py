"""CPU vs CUDA training of one flow config, same seed (issue 17: ``[train] device``).

    python benchmarks/cuda_check.py [CONFIG] [--epochs N] [--no-repeat]

Trains the config (default: kofn's embedded default flow) with ``device = "cpu"``, then
with ``device = "cuda"`` (twice, to see whether CUDA training repeats itself), and prints
one table: training wall time and step time per device, integer and float test accuracy,
whether each CUDA IR is identical to the CPU IR (if not, how many weight codes, indices
and bias codes differ per layer), and whether each IR is bit-exact against its own
integer reference (``kofn.core.reference`` run on the IR, compared code for code with the
trained torch model in float64 eval mode, on the CPU and on the GPU).

Both devices draw the same random numbers (CPU generators); a CUDA IR may still differ
from the CPU IR through float reduction order (a weight near a rounding or mask boundary
flips and training diverges from there), which is expected; a bit-exactness failure is not.
Exit status: 0 when every run is bit-exact against its own reference (CUDA missing: the
CPU half runs and a line says so), 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np


def _codes_vs_reference(t, x: np.ndarray, device: str) -> int | None:
    """Output codes where the trained model (a float64 eval copy on ``device``) and the
    integer reference of its IR disagree.  ``None`` when the eval masks recomputed on
    ``device`` are not the ones exported (exact ties among mask scores broken differently
    by the CUDA topk): that copy is then not the exported model."""
    import copy

    import torch

    from kofn.core.fixed import quantize
    from kofn.core.reference import run

    m = t.ir
    xq = quantize(x, m.input_fmt)
    ref = run(m, xq)
    exported = t.net.hard_masks()
    net = copy.deepcopy(t.net).double().eval().to(device)
    if any(a is not None and not torch.equal(a, b.cpu()) for a, b in zip(exported, net.hard_masks())):
        return None
    with torch.no_grad():
        y = net(torch.from_numpy(xq * m.input_fmt.scale).to(device)).cpu().numpy() * 2.0 ** m.output_fmt.frac
    if not np.all(y == np.round(y)):
        return int(y.size)
    return int((y.astype(np.int64) != ref).sum())


def _layer_diffs(a, b) -> list[str]:
    """Per weighted layer: ``name w<codes>/i<indices>/b<bias>`` differing (shapes differ: ``shape``)."""
    out = []
    for la, lb in zip(a.layers, b.layers):
        if not hasattr(la, "weights"):
            continue
        if la.weights.shape != lb.weights.shape or la.indices.shape != lb.indices.shape:
            out.append(f"{la.name} shape")
            continue
        w = int((la.weights != lb.weights).sum())
        i = int((la.indices != lb.indices).sum())
        b_ = int((la.bias != lb.bias).sum())
        out.append(f"{la.name} w{w}/i{i}/b{b_}")
    return out


def _same_ir(a, b) -> bool:
    import tempfile
    from pathlib import Path

    from kofn.core import ir as ir_mod

    with tempfile.TemporaryDirectory() as d:
        ir_mod.save(a, Path(d) / "a")
        ir_mod.save(b, Path(d) / "b")
        return all((Path(d) / "a" / f).read_bytes() == (Path(d) / "b" / f).read_bytes()
                   for f in ("model.json", "model.npz"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", help="flow config (default: kofn's embedded default)")
    ap.add_argument("--epochs", type=int, help="override [train] epochs")
    ap.add_argument("--no-repeat", action="store_true", help="train on CUDA once, not twice")
    args = ap.parse_args(argv)

    import torch

    from kofn.app.config import load_config
    from kofn.app.training import load_data, train_to_ir

    cfg = load_config(args.config)
    if args.epochs:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=args.epochs))
    ds = load_data(cfg)
    print(f"{cfg.name} ({cfg.source}): method {cfg.train.method}, {cfg.train.epochs} epochs, seed {cfg.seed}, "
          f"torch {torch.__version__}", flush=True)

    cuda = torch.cuda.is_available()
    plan = ["cpu"] + (["cuda"] + ([] if args.no_repeat else ["cuda"]) if cuda else [])
    runs = []
    for device in plan:
        c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device))
        t0 = time.perf_counter()
        t = train_to_ir(c, ds, lambda m: None)
        wall = time.perf_counter() - t0
        bad = {d: _codes_vs_reference(t, ds.x_test, d) for d in (["cpu", "cuda"] if cuda else ["cpu"])}
        runs.append((device, t, wall, bad))
        print(f"  trained on {t.history.device} in {wall:.1f} s", flush=True)

    cpu_ir = runs[0][1].ir
    head = f"{'run':<8} {'device':<28} {'wall s':>7} {'train s':>8} {'step ms':>8} {'acc int':>8} {'acc float':>9} " \
           f"{'ref mismatches':>15}  IR vs CPU"
    print()
    print(head)
    print("-" * len(head))
    ok = True
    for n, (device, t, wall, bad) in enumerate(runs):
        h = t.history
        mism = " ".join(f"{d}:{'tie' if v is None else v}" for d, v in bad.items())
        ok &= bad["cpu"] == 0 and all(v == 0 for v in bad.values() if v is not None)
        if n == 0:
            vs = "(the CPU run)"
        elif _same_ir(t.ir, cpu_ir):
            vs = "identical"
        else:
            vs = "differs: " + ", ".join(_layer_diffs(t.ir, cpu_ir))
        print(f"{device + ('#' + str(n) if n > 1 else ''):<8} {h.device[:28]:<28} {wall:>7.1f} {h.seconds:>8.1f} "
              f"{h.step_seconds * 1e3:>8.3f} {t.accuracy_int:>8.4f} {t.accuracy_float:>9.4f} {mism:>15}  {vs}")
    if len(runs) == 3:
        same = _same_ir(runs[1][1].ir, runs[2][1].ir)
        print(f"CUDA run to run: {'identical IRs' if same else 'IRs differ: ' + ', '.join(_layer_diffs(runs[1][1].ir, runs[2][1].ir))}")
    print("(w/i/b: weight codes / indices / bias codes that differ; ref mismatches: test-split output codes where "
          "the trained model, evaluated in float64 on that device, disagrees with the integer reference of its own "
          "IR; tie: masks recomputed on that device broke an exact tie differently, so no comparison)")
    if not cuda:
        print("CUDA is not available on this machine (torch.cuda.is_available() is False): only the CPU half ran.")
    print("bit-exact against own reference:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
