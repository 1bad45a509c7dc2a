"""``kofn compare``: every pruning method side by side under the same k-of-n budget.

Same model, data, seeds, epochs, batch size and fixed-point formats for every method;
only the method changes.  For each method, ratio k/n and seed it trains, exports to the
integer IR and measures the *integer* model's test accuracy with the bit-exact
reference (what the hardware computes).  ``dense`` (k = n) is always trained too: it is
the accuracy ceiling and the step-time baseline.  ``step_time_ratio_vs_dense`` comes
from a separate pass after training (:func:`measure_step_times`) that interleaves
every model's steps with dense's on the same batches, so that machine load during the
long trainings does not skew it; ``train_seconds`` is each training's own wall time.

Presets (``--dataset``):

* ``digits``: 64-32-10 on scikit-learn's bundled 8x8 digits (80/20 split), the ratio
  applied to every layer;
* ``mnist``: 784-300-100-10 (LeNet-300-100) under the MNIST-10k protocol, the ratio
  applied to the first layer, the others dense.

k = max(1, floor(n * ratio + 1/2)) inputs per neuron (1/64 of 784 gives k = 12).

``--granularities weight,bank`` trains every pruned method at each granularity: ``bank`` keeps
k/P of each of a layer's P input banks (P: the largest divisor of both k and n up to 8, the
default lanes of a bank layer; :mod:`kofn.pruning.groups`), the pattern whose lanes each read
one bank.  Rows and plot lines are per (method, granularity).
Every training is a task (:mod:`kofn.app.sweep`: an embedded Dask ``LocalCluster`` by default,
``--scheduler tcp://HOST:PORT`` for an existing cluster, ``--scheduler processes`` for a plain
process pool), one thread each; finished trainings are cached (``--out``'s ``points/``, and
``.OUT.kofn-points`` beside it during a run or after an interrupted one) and reused by a rerun
when their inputs are unchanged.

Outputs in ``--out``: ``compare.json``, ``compare.md`` and ``compare.png`` (accuracy
against k/n per method, and the first layer's mask confidence and diversity per epoch), and
``points/<tag>.json`` (each training's row, the cache).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import UsageError
from ..core.fixed import FixedFormat
from ..core.layers import DenseSpec
from .config import METHODS, FlowConfig, TrainConfig
from .sweep import TaskRunner, parse_scheduler
from .sweep_cache import TRAIN_MODULES, PointCache, cache_key, data_digest, environment, plain
from .sweep_progress import Tally

__all__ = ["Preset", "PRESETS", "parse_ratio", "k_for", "run_compare", "plot_compare"]

HIDDEN = dict(weight=FixedFormat(8, 2), bias=FixedFormat(16, 6), output=FixedFormat(8, 3, signed=False))
LOGITS = dict(weight=FixedFormat(8, 2), bias=FixedFormat(16, 6), output=FixedFormat(16, 8))
INPUT = FixedFormat(8, 1, signed=False)


@dataclass(frozen=True)
class Preset:
    sizes: tuple[int, ...]  # out_features per layer; the last is the number of classes
    scope: str  # "all": the ratio applies to every layer; "first": to layer 0 only
    epochs: int
    batch_size: int


PRESETS = {
    "digits": Preset((32, 10), "all", epochs=60, batch_size=32),
    "mnist": Preset((300, 100, 10), "first", epochs=30, batch_size=64),
}


def parse_ratio(text: str) -> Fraction:
    """``"1/8"`` (or ``"0.125"``) as a fraction in (0, 1]."""
    try:
        r = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--ratios: {text!r} is not a fraction like 1/8") from None
    if not 0 < r <= 1:
        raise UsageError(f"--ratios: {text!r} must be in (0, 1]")
    return r


def k_for(n: int, ratio: Fraction) -> int:
    """Inputs kept of ``n`` at ``ratio``: ``max(1, floor(n * ratio + 1/2))``."""
    return max(1, math.floor(n * ratio + Fraction(1, 2)))


GRANULARITIES = ("weight", "bank")  # what compare trains a dense MLP's pruned layers at


def _specs(n_in: int, preset: Preset, ratio: Fraction | None, granularity: str = "weight") -> list[DenseSpec]:
    specs, n = [], n_in
    for i, out in enumerate(preset.sizes):
        last = i == len(preset.sizes) - 1
        pruned = ratio is not None and (preset.scope == "all" or i == 0)
        k = k_for(n, ratio) if pruned else n
        gran = granularity if pruned else "weight"
        specs.append(DenseSpec(out, k, relu=not last, granularity=gran, **(LOGITS if last else HIDDEN)))
        n = out
    return specs


def _one_run(method, ratio, seed, ds, preset, train_cfg, log, granularity="weight", threads=2):
    from ..codegen import memory_bits, plan_layers
    from .training import train_to_ir

    specs = _specs(ds.n_features, preset, None if method == "dense" else ratio, granularity)
    cfg = FlowConfig(layers=tuple(specs), name=method, seed=seed, input=INPUT,
                     train=dataclasses.replace(train_cfg, method=method))
    t0 = time.perf_counter()
    t = train_to_ir(cfg, ds, log, threads=threads)  # the flow's own path: train, export, integer reference
    wall = time.perf_counter() - t0
    hist, ir, acc_float, acc_int = t.history, t.ir, t.accuracy_float, t.accuracy_int
    metrics = hist.metrics[-1][0] if hist.metrics and hist.metrics[-1][0] else None
    return {
        "method": method,
        "ratio": _ratio_text(None if method == "dense" else ratio),
        "granularity": "weight" if method == "dense" else granularity,
        "seed": seed,
        "k": [l.k for l in ir.layers],
        "n": [l.n for l in ir.layers],
        "accuracy": acc_int,
        "accuracy_float": acc_float,
        "train_seconds": round(hist.seconds, 3),
        "wall_seconds": round(wall, 3),
        "step_ms_median": round(hist.step_seconds * 1e3, 4),
        "banks": [getattr(l, "banks", 1) for l in ir.layers],
        **memory_bits(plan_layers(ir)),  # ROM images at the default lanes (a bank layer's: its banks)
        "mask": metrics,
        "history": {
            "loss": hist.loss,
            **{key: [m[0][key] if m and m[0] else None for m in hist.metrics]
               for key in ("confidence", "diversity", "mutual_information")},
        },
    }


#: The modules whose code computes a compare row (the cache key's code digest).
COMPARE_MODULES = (*TRAIN_MODULES, "kofn.app.compare", "kofn.codegen")


def _compare_task(ds, item) -> dict:
    """Task: one (method, ratio, seed, granularity) training on the dataset ``ds``; returns its
    row (plain JSON data)."""
    method, ratio, seed, preset, train_cfg, gran = item
    row = _one_run(method, ratio, seed, ds, preset, train_cfg, lambda m: None, gran, threads=1)
    return json.loads(json.dumps(row))


def _run_tag(method: str, ratio: Fraction | None, gran: str, seed: int) -> str:
    return f"{method}_r{_ratio_text(None if method == 'dense' else ratio)}_{gran}_s{seed}".replace("/", "-")


def run_compare(
    dataset: str,
    ratios: Sequence[str],
    methods: Sequence[str],
    out_dir: Path,
    epochs: int | None = None,
    seeds: Sequence[int] = (0,),
    mnist_path: str | None = None,
    train_cfg: TrainConfig | None = None,
    progress: Callable[[str], None] = print,
    granularities: Sequence[str] = ("weight",),
    workers: int | None = None,
    scheduler: str | None = None,
    cache: PointCache | None = None,
) -> dict:
    """Train every (method, ratio, granularity, seed), write ``compare.json/.md/.png`` into ``out_dir``.

    Every training is a task on ``scheduler`` (:func:`kofn.app.sweep.parse_scheduler`; default
    an embedded Dask ``LocalCluster`` of ``workers`` processes); ``cache``
    (:class:`~kofn.app.sweep_cache.PointCache` of the final output folder) supplies the runs a previous
    run finished and keeps new ones as they finish.  The step-time pass always runs here."""
    import torch

    from .data import load_digits, load_mnist

    if dataset not in PRESETS:
        raise UsageError(f"--dataset: {dataset!r}: expected one of {', '.join(PRESETS)}")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UsageError(f"--methods: unknown method(s) {', '.join(bad)}; expected among {', '.join(METHODS)}")
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad or not granularities:
        raise UsageError(f"--granularities: {', '.join(bad) or '(none)'}: expected among {', '.join(GRANULARITIES)}")
    fracs = [parse_ratio(r) for r in ratios]
    sched = parse_scheduler(scheduler)
    cache = cache or PointCache(None)
    preset = PRESETS[dataset]
    t = train_cfg or TrainConfig()
    t = dataclasses.replace(t, epochs=epochs or preset.epochs, batch_size=preset.batch_size)
    if dataset == "digits":
        ds = load_digits(0.2, seed=0)
    else:
        if not mnist_path:
            raise UsageError("--data: --dataset mnist needs --data PATH (a folder of MNIST IDX files)")
        ds = load_mnist(mnist_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    todo = [("dense", None, "weight")] + [(m, r, g) for r in fracs for g in granularities for m in methods
                                          if m != "dense"]
    total = len(todo) * len(seeds)
    progress(
        f"compare on {ds.name} ({len(ds.y_train)} train / {len(ds.y_test)} test), "
        f"{'-'.join(str(s) for s in (ds.n_features,) + preset.sizes)}, ratio scope {preset.scope}, "
        f"{t.epochs} epochs x batch {t.batch_size}, granularities {', '.join(granularities)}, seeds {list(seeds)}: "
        f"{total} trainings"
    )
    data_sha = data_digest(ds)
    env = environment(COMPARE_MODULES)
    order, keys, rows, tasks, labels = [], {}, {}, [], {}
    for seed in seeds:
        for method, ratio, gran in todo:
            tag = _run_tag(method, ratio, gran, seed)
            order.append(tag)
            labels[tag] = (f"{method}" + (f" k/n={ratio}" if ratio else "")
                           + (f" {gran}" if len(granularities) > 1 and method != "dense" else "") + f" seed {seed}")
            inputs = {"kind": "compare-run", "method": method, "ratio": _ratio_text(ratio), "granularity": gran,
                      "seed": seed, "preset": plain(preset), "train": plain(t), "data": data_sha, "env": env}
            keys[tag] = (cache_key(inputs), inputs)
            hit = cache.lookup(tag, keys[tag][0])
            if hit is not None:
                rows[tag] = hit.result
            else:
                tasks.append((tag, (method, ratio, seed, preset, t, gran)))
    if rows:
        progress(f"{len(rows)} of {total} trainings cached, {len(tasks)} to run")
    with TaskRunner(sched, workers, progress) as runner:
        if tasks:
            runner.start(len(tasks))
            progress(f"training {len(tasks)} model{'s' if len(tasks) != 1 else ''} on {runner.describe()}")
        tally = Tally(total, runner.workers)
        for tag in order:
            if tag in rows:
                progress(tally.cached(f"{labels[tag]}: integer accuracy {rows[tag]['accuracy']:.4f}"))
        tally.start()
        for tag, row in runner.run(_compare_task, ds, tasks):
            rows[tag] = row
            cache.record(tag, keys[tag][0], row, {}, keys[tag][1])
            progress(tally.finished(f"{labels[tag]}: integer accuracy {row['accuracy']:.4f}, step "
                                    f"{row['step_ms_median']:.3f} ms", row["wall_seconds"]))
    runs = [rows[tag] for tag in order]
    for tag in order:
        PointCache.write(out, tag, keys[tag][0], rows[tag], {}, keys[tag][1])
    progress("step times: every model's training step interleaved with dense's ...")
    timing = measure_step_times(ds.n_features, preset, todo, t, batch=t.batch_size)
    for r in runs:
        key = (r["method"], r["ratio"], r["granularity"])
        r["step_ms_interleaved"] = round(timing[key] * 1e3, 4)
        r["step_time_ratio_vs_dense"] = round(timing[key] / timing[("dense", "1/1", "weight")], 3)
    results = _aggregate(runs)
    doc = {
        "dataset": ds.name,
        "model": [ds.n_features, *preset.sizes],
        "scope": preset.scope,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "seeds": list(seeds),
        "granularities": list(granularities),
        "train": dataclasses.asdict(t),
        "results": results,
        "runs": runs,
    }
    (out / "compare.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "compare.md").write_text(render_table(doc))
    plot_compare(doc, out / "compare.png")
    progress(f"wrote {out / 'compare.json'}, compare.md, compare.png")
    cache.discard()  # every run is in out now
    return doc


def _ratio_text(ratio: Fraction | None) -> str:
    return "1/1" if ratio is None else f"{ratio.numerator}/{ratio.denominator}"


def measure_step_times(
    n_in: int,
    preset: Preset,
    todo: Sequence[tuple[str, Fraction | None, str]],
    train_cfg: TrainConfig,
    batch: int,
    rounds: int = 5,
    steps: int = 20,
    seed: int = 0,
) -> dict[tuple[str, str, str], float]:
    """Median seconds of one training step (forward, backward, Adam) of each
    ``(method, ratio, granularity)`` model, measured interleaved: every round runs ``steps`` steps of
    each model in turn on the same batches, so load on the machine hits all alike.
    Models are fresh, at mid-schedule (``progress = 0.5``)."""
    import torch

    from ..pruning import KofnNet
    from ..pruning.trainer import make_optimizer, train_step

    torch.manual_seed(seed)
    steppers = {}
    for method, ratio, gran in todo:
        model = KofnNet((n_in,), INPUT, _specs(n_in, preset, None if method == "dense" else ratio, gran),
                        method=method, train_cfg=train_cfg, seed=seed)
        model.set_total_steps(rounds * steps)
        model.set_progress(0.5)
        model.train()
        opt = make_optimizer(model, train_cfg)
        steppers[(method, _ratio_text(ratio), gran)] = lambda x, y, model=model, opt=opt: train_step(model, opt, x, y)
    xs = torch.rand(steps, batch, n_in)
    ys = torch.randint(0, preset.sizes[-1], (steps, batch))
    times: dict[tuple[str, str, str], list[float]] = {key: [] for key in steppers}
    for step in steppers.values():  # warm-up
        step(xs[0], ys[0])
    for _ in range(rounds):
        for key, step in steppers.items():
            for i in range(steps):
                t0 = time.perf_counter()
                step(xs[i], ys[i])
                times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(v) for key, v in times.items()}


def _aggregate(runs: list[dict]) -> list[dict]:
    keys = []
    for r in runs:
        if (r["method"], r["ratio"], r["granularity"]) not in keys:
            keys.append((r["method"], r["ratio"], r["granularity"]))
    rows = []
    for method, ratio, gran in keys:
        rs = [r for r in runs if (r["method"], r["ratio"], r["granularity"]) == (method, ratio, gran)]
        accs = [r["accuracy"] for r in rs]
        mask = [r["mask"] for r in rs if r["mask"]]
        rows.append(
            {
                "method": method,
                "ratio": ratio,
                "granularity": gran,
                "k": rs[0]["k"],
                "banks": rs[0]["banks"],
                "accuracy": statistics.fmean(accs),
                "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "accuracy_per_seed": accs,
                "accuracy_float": statistics.fmean(r["accuracy_float"] for r in rs),
                "train_seconds": round(statistics.fmean(r["train_seconds"] for r in rs), 3),
                "step_ms_median": round(statistics.median(r["step_ms_median"] for r in rs), 4),
                "step_time_ratio_vs_dense": round(statistics.median(r["step_time_ratio_vs_dense"] for r in rs), 3),
                "rom_bits": rs[0]["rom_bits"],
                "dense_bits": rs[0]["dense_bits"],
                "confidence": statistics.fmean(m["confidence"] for m in mask) if mask else None,
                "diversity": statistics.fmean(m["diversity"] for m in mask) if mask else None,
                "mutual_information": statistics.fmean(m["mutual_information"] for m in mask) if mask else None,
            }
        )
    return rows


def render_table(doc: dict) -> str:
    """The results as a Markdown table (accuracy is the integer model's, mean over seeds)."""
    lines = [
        f"# kofn compare: {doc['dataset']}, {'-'.join(map(str, doc['model']))}, ratio on {doc['scope']} layer(s), "
        f"{doc['epochs']} epochs, seeds {doc['seeds']}",
        "",
        "| method | k/n | granularity | k per layer | test acc (integer) | ± std | float acc | train s | step / dense "
        "| ROM bits | confidence | diversity | MI (nats) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    f = lambda v, p=3: "–" if v is None else f"{v:.{p}f}"  # noqa: E731
    for r in doc["results"]:
        lines.append(
            f"| {r['method']} | {r['ratio']} | {_gran_text(r)} | {'/'.join(map(str, r['k']))} | {r['accuracy']:.4f} | "
            f"{r['accuracy_std']:.4f} | {r['accuracy_float']:.4f} | {r['train_seconds']:.1f} | "
            f"{r['step_time_ratio_vs_dense']:.2f} | {r['rom_bits']:,} | {f(r['confidence'])} | "
            f"{f(r['diversity'])} | {f(r['mutual_information'])} |"
        )
    return "\n".join(lines) + "\n"


def _gran_text(r: dict) -> str:
    if r.get("granularity") != "bank":
        return r.get("granularity", "weight")
    return "bank P=" + "/".join(str(b) for b in r["banks"])


def _line(r: dict) -> str:
    """A plot line's label: the method, and the granularity when it is not ``weight``."""
    g = r.get("granularity", "weight")
    return r["method"] if g == "weight" else f"{r['method']} ({g})"


def plot_compare(doc: dict, path: Path) -> None:
    """Accuracy against k/n per method, and the first layer's mask confidence and
    diversity per epoch (the smallest ratio), as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    methods = [m for m in dict.fromkeys(_line(r) for r in doc["results"]) if m != "dense"]
    for m in methods:
        rows = sorted(((float(Fraction(r["ratio"])), r) for r in doc["results"] if _line(r) == m),
                      key=lambda x: x[0])
        xs = [x for x, _ in rows]
        ys = [r["accuracy"] for _, r in rows]
        es = [r["accuracy_std"] for _, r in rows]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=m)
    dense = [r for r in doc["results"] if r["method"] == "dense"]
    if dense:
        ax.axhline(dense[0]["accuracy"], color="k", ls="--", lw=1, label="dense")
    ax.set_xscale("log", base=2)
    ticks = sorted({Fraction(r["ratio"]) for r in doc["results"] if r["method"] != "dense"})
    ax.set_xticks([float(t) for t in ticks], [f"{t.numerator}/{t.denominator}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("k/n (first layer)" if doc["scope"] == "first" else "k/n (every layer)")
    ax.set_ylabel("test accuracy, integer model")
    ax.set_title(f"{doc['dataset']}: accuracy vs k/n")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ratios = sorted({Fraction(r["ratio"]) for r in doc["runs"] if r["method"] != "dense"})
    smallest = f"{ratios[0].numerator}/{ratios[0].denominator}" if ratios else None
    for ax, key, label in ((axes[1], "confidence", "mask confidence (0 = certain)"),
                           (axes[2], "diversity", "mask diversity")):
        for m in methods:
            run = next((r for r in doc["runs"] if _line(r) == m and r["ratio"] == smallest), None)
            if run and any(v is not None for v in run["history"][key]):
                ax.plot(range(1, len(run["history"][key]) + 1), run["history"][key], label=m)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"layer 0, k/n = {smallest}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
