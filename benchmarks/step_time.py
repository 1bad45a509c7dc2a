"""Benchmark: one training step of each pruning method against a dense step, side by side.

    python benchmarks/step_time.py [--dataset digits|mnist] [--ratio 1/8] [--batch 32,256]
                                   [--methods dpp,dtp,psp] [--rounds 7] [--steps 40]

The models are the `kofn compare` presets; the timing is `kofn compare`'s own
(:func:`kofn.app.compare.measure_step_times`): every round runs ``--steps`` steps of dense
and then of each method on the same batches, so machine noise hits all of them alike.
Prints each median step time and its ratio to dense, per batch size.
"""

from __future__ import annotations

import argparse

import torch

from kofn.app.compare import PRESETS, measure_step_times, parse_ratio
from kofn.app.config import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="digits", choices=sorted(PRESETS))
    ap.add_argument("--ratio", default="1/8")
    ap.add_argument("--batch", default="32")
    ap.add_argument("--methods", default="dpp,dtp,psp,srste,magnitude")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    preset = PRESETS[args.dataset]
    n_in = 64 if args.dataset == "digits" else 784
    ratio = parse_ratio(args.ratio)
    methods = [m for m in args.methods.split(",") if m and m != "dense"]
    todo = [("dense", None)] + [(m, ratio) for m in methods]
    print(f"{args.dataset} {n_in}-{'-'.join(map(str, preset.sizes))}, k/n = {args.ratio} ({preset.scope} layers), "
          f"{args.threads} threads, {args.rounds} rounds x {args.steps} steps, interleaved")
    for batch in (int(b) for b in args.batch.split(",")):
        t = measure_step_times(n_in, preset, todo, TrainConfig(), batch, args.rounds, args.steps)
        dense = t[("dense", "1/1")]
        print(f"batch {batch}:")
        for key, sec in t.items():
            print(f"  {key[0]:10s} median {sec * 1e3:8.3f} ms   x{sec / dense:5.2f} dense")


if __name__ == "__main__":
    main()
