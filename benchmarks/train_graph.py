"""Train a config's model (a chain or a residual graph) and report its accuracy, without
building hardware: ``python benchmarks/train_graph.py CONFIG [--epochs N] [--out DIR]``.

Prints the float and integer (reference) test accuracy, the weights kept and the time; with
``--out`` saves the IR (``model.json`` + ``model.npz``) there.  For graph configs this is the
flow up to the IR while the hardware generator builds chains only."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from kofn.app.config import load_config
from kofn.app.training import load_data, train_to_ir
from kofn.core import ir as ir_mod


def kept_fraction(model) -> tuple[int, int]:
    """(weights kept, weights of the unpruned layers): per weighted layer rows * k_eff of rows * n."""
    kept = total = 0
    for L in model.layers:
        if getattr(L, "weighted", False):
            kept += L.rows * (L.k_eff if hasattr(L, "k_eff") else L.k)
            total += L.rows * L.n
    return kept, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--method", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cfg = load_config(a.config)
    tr = cfg.train
    if a.epochs is not None:
        tr = dataclasses.replace(tr, epochs=a.epochs)
    if a.method is not None:
        tr = dataclasses.replace(tr, method=a.method)
    cfg = dataclasses.replace(cfg, train=tr)
    ds = load_data(cfg)
    t0 = time.perf_counter()
    t = train_to_ir(cfg, ds, lambda m: print(m, flush=True), threads=a.threads)
    kept, total = kept_fraction(t.ir)
    res = {"config": a.config, "method": cfg.train.method, "epochs": cfg.train.epochs,
           "accuracy_float": t.accuracy_float, "accuracy_int": t.accuracy_int, "test_images": int(len(ds.y_test)),
           "kept": kept, "weights": total, "kept_fraction": round(kept / total, 4),
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(res))
    if a.out:
        ir_mod.save(t.ir, Path(a.out))


if __name__ == "__main__":
    main()
