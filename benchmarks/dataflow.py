"""MAC efficiency and II of every example, dataflow against the sequential schedule.

    python benchmarks/dataflow.py                  # the default flow and examples/*.toml
    python benchmarks/dataflow.py CONFIG.toml ...  # other configs

MAC efficiency = kept MACs per inference / (multipliers x II), multipliers = the MAC lanes
summed over layers (kofn.codegen.BuildPlan.efficiency).  Cycles do not depend on the weights'
values, only on the layers' shapes, k and lanes, so each config's layers are instantiated with
random weights (kofn.core.testing): no training, seconds per config.  Each config is planned as
written (its lanes, "auto" folded to its hw.target_ii or hw.max_dsp) under both schedules, then
the sequential schedule again with the lanes the config had before automatic folding
(``--hand-lanes``, the figures issue 13 started from).  The II and latency are the exact
schedule that RTL simulation reproduces (tests/sim/test_rtl.py, ``kofn flow``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kofn.app.config import load_config
from kofn.codegen import plan_build
from kofn.core.testing import random_cnn, random_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [REPO / "kofn" / "default.toml", *sorted((REPO / "examples").glob("*.toml"))]

#: Hand-set lanes of the configs before automatic folding (main at 8b6c4f1), for the baseline column.
HAND_LANES = {"digits_mlp": [8, 8], "cnn_digits": [9, None, 9, None, 8],
              "lenet5_mnist": [25, None, 25, None, 10, 10]}


def random_ir(cfg):
    """A model with the config's layer shapes and formats, random weights."""
    kw = dict(input_fmt=cfg.input)
    if not cfg.is_image_model:
        return random_model([cfg.input_shape[0]] + [l.out_features for l in cfg.layers], [l.k for l in cfg.layers],
                            **kw)
    spec = []
    for l in cfg.layers:
        if l.type == "maxpool":
            spec.append(("pool",))
        elif l.type == "conv":
            spec.append(("conv", l.out_channels, l.kernel, l.stride, l.pad, l.granularity, l.k))
        else:
            spec.append(("dense", l.out_features, l.k))
    return random_cnn(cfg.input_shape, spec, **kw)


def row(cfg, ir, lanes, schedule, label):
    hw = cfg.hw
    b = plan_build(ir, lanes, schedule=schedule, target_ii=hw.target_ii, max_dsp=hw.max_dsp,
                   stream_in=hw.stream_in if schedule == "dataflow" else 1,
                   stream_out=hw.stream_out if schedule == "dataflow" else 1)
    e = b.efficiency
    return (f"| {cfg.name} | {label} | {schedule} | {b.lanes} | {e['multipliers']} | {b.latency.total_cycles:,} | "
            f"{e['ii']:,} | {e['limit_ii']:,} | {e['mac_efficiency']:.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", type=Path)
    args = ap.parse_args()
    print("| design | lanes from | schedule | P per layer | multipliers | latency | II | limit II | MAC efficiency |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.configs or DEFAULT_CONFIGS:
        cfg = load_config(path)
        ir = random_ir(cfg)
        lanes = [getattr(l, "lanes", None) for l in cfg.layers]
        for schedule in ("dataflow", "sequential"):
            print(row(cfg, ir, lanes, schedule, "config"))
        if cfg.name in HAND_LANES:
            print(row(cfg, ir, HAND_LANES[cfg.name], "sequential", "before (hand-set)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
