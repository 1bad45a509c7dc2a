"""``kofn explore``: sweep k/n, lanes P and bit widths; Pareto front and target picking.

Every candidate is a variation of one flow config:

* ``ratio`` k/n, applied to every pruned layer (``k = max(1, round(n * ratio))`` of the
  layer's group: inputs, kernels or filters);
* ``weight_bits``: every layer's weight width (integer bits kept from the config);
* ``act_bits``: every hidden activation width (the layers' outputs but the last; integer
  bits kept);
* ``lanes`` P, the same for every layer (capped at the layer's weights per row).

Ratio and widths change the trained model, so each (ratio, weight_bits, act_bits) is a
short training run (``epochs``), or a fine-tuning run from a trained build's float
weights (``from_build``).  Each training is a task (:mod:`kofn.app.sweep`): on an embedded
Dask ``LocalCluster`` (one worker process per core), on an existing cluster
(``--scheduler tcp://HOST:PORT``) or on a plain process pool (``--scheduler processes``).
A task gets the config and the dataset's arrays and returns the trained IR as data; the
client writes it.  Finished trainings are cached (``OUT/points``, ``OUT/models`` and, while
a run is going on or after it was interrupted, ``OUT_PARENT/.OUT.kofn-points``), keyed by a
hash of everything that went into them: a rerun trains only what changed.  Lanes only change
the hardware: every trained model is planned at every P (here, in the client, no training
needed), and each point gets the integer model's test accuracy (the bit-exact reference,
what the hardware computes), exact cycles and the resource estimate.

Outputs in the explore folder: ``explore.json`` (every point, the Pareto front on
accuracy x DSP x LUT x latency, the pick), ``explore.png`` (the front), ``report.html``,
``models/<tag>/`` (each trained IR) and ``points/<tag>.json`` (each training's cache entry).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import KofnError
from .compare import k_for
from .sweep import (TRAIN_MODULES, PointCache, Tally, TaskRunner, arrays_digest, cache_key, data_digest,
                    environment, parse_scheduler, plain)
from ..core.fixed import accumulator_frac
from ..core.ir import Conv2dLayer, DenseLayer

__all__ = ["Targets", "sweep_configs", "pareto_front", "pick", "run_explore", "plot_pareto"]

#: Pareto objectives: (key, +1 to maximise / -1 to minimise).
OBJECTIVES = (("accuracy", +1), ("dsp", -1), ("lut", -1), ("latency_cycles", -1))


@dataclass(frozen=True)
class Targets:
    """Constraints a picked design must meet (``None``: no constraint)."""

    max_dsp: int | None = None
    max_lut: int | None = None
    max_ff: int | None = None
    max_bram18: int | None = None
    max_latency: int | None = None  # cycles, first input beat to last output beat
    min_accuracy: float | None = None
    min_fmax: float | None = None  # MHz, the Fmax model's ECP5 estimate (kofn.codegen.fmax)

    def checks(self) -> list[tuple[str, str, float]]:
        """``(name, point key, limit)`` of every set constraint; max_* are upper bounds."""
        keys = {"max_dsp": "dsp", "max_lut": "lut", "max_ff": "ff", "max_bram18": "bram18",
                "max_latency": "latency_cycles", "min_accuracy": "accuracy", "min_fmax": "fmax_mhz"}
        return [(f.name, keys[f.name], getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None]

    def violations(self, point: dict) -> list[str]:
        out = []
        for name, key, limit in self.checks():
            v = point.get(key)
            if v is None:  # no figure (the Fmax model covers the dataflow schedule only)
                out.append(name)
            elif (name.startswith("max") and v > limit) or (name.startswith("min") and v < limit):
                out.append(name)
        return out


def sweep_configs(cfg, ratios: Sequence[Fraction], weight_bits: Sequence[int], act_bits: Sequence[int]):
    """``[(params, FlowConfig)]``, one per training run.  Layers of ``cfg`` that keep their
    whole group (k = n, e.g. a dense first convolution) stay unpruned."""
    out = []
    for r in ratios:
        for wb in weight_bits:
            for ab in act_bits:
                layers = []
                shape = cfg.data.image_shape if cfg.is_image_model else (cfg.data.n_features,)
                old_shape = shape
                fmt_in = cfg.input
                for i, l in enumerate(cfg.layers):
                    last = i == len(cfg.layers) - 1
                    if not l.weighted:
                        new = l
                    else:
                        n = l.group_size(shape)
                        k = l.k if l.k == l.group_size(old_shape) else min(n, k_for(n, r))
                        w = _resize(l.weight, wb)
                        o = l.output if last else _resize(l.output, ab)
                        acc_frac = accumulator_frac(fmt_in, w)  # bias and output may not have more
                        new = dataclasses.replace(l, k=min(k, n), weight=w, bias=_cap_frac(l.bias, acc_frac),
                                                  output=_cap_frac(o, acc_frac), lanes=None)
                        fmt_in = new.output
                    old_shape = l.validate(f"layers[{i}]", old_shape, last)
                    shape = new.validate(f"layers[{i}]", shape, last)
                    layers.append(new)
                c = dataclasses.replace(cfg, layers=tuple(layers))
                c.validate()
                out.append(({"ratio": str(r), "weight_bits": wb, "act_bits": ab}, c))
    return out


def _resize(f, width: int):
    """``f`` at ``width`` bits, integer bits kept (fraction bits change)."""
    return dataclasses.replace(f, width=width, int_bits=min(f.int_bits, width))


def _cap_frac(f, frac: int):
    """``f`` with at most ``frac`` fraction bits (same width, more integer bits)."""
    return f if f.frac <= frac else dataclasses.replace(f, int_bits=f.width - frac)


def _train_point(common, item) -> dict:
    """Task: train one sweep point and measure its integer model.  ``common``: ``(dataset,
    initial weights or None)``; ``item``: ``(params, FlowConfig)``.  Returns the point's row and
    its IR as file contents (``model.json``, ``model.npz``): the client writes them, the worker
    needs no shared folder."""
    import tempfile

    from ..core import ir as ir_mod
    from .training import train_to_ir

    ds, init = common
    params, cfg = item
    t0 = time.perf_counter()
    t = train_to_ir(cfg, ds, lambda m: None, init=init, threads=1)
    with tempfile.TemporaryDirectory(prefix="kofn-ir-") as d:
        ir_mod.save(t.ir, d)
        files = {name: (Path(d) / name).read_bytes() for name in IR_FILES}
    row = {**params, "tag": point_tag(params), "accuracy_float": t.accuracy_float, "accuracy": t.accuracy_int,
           "train_seconds": round(time.perf_counter() - t0, 2),
           "mask_metrics": t.history.metrics[-1] if t.history.metrics else []}
    return {"result": json.loads(json.dumps(row)), "files": files}


#: The IR's files (:func:`kofn.core.ir.save`).
IR_FILES = ("model.json", "model.npz")
#: The modules whose code computes a trained point (the cache key's code digest).
EXPLORE_MODULES = (*TRAIN_MODULES, "kofn.app.explore")


def point_tag(params: dict) -> str:
    """A sweep point's folder and file name: ``r1-4_w8_a8``."""
    return "r{ratio}_w{weight_bits}_a{act_bits}".format(**params).replace("/", "-")


def point_key(cfg, data: str, init: str | None) -> tuple[str, dict]:
    """The cache key of training ``cfg`` (one sweep point), and what it hashes: the whole config
    but its source path and sim settings, the dataset's and initial weights' digests, and
    :func:`kofn.app.sweep.environment`."""
    inputs = {"kind": "explore-train", "config": plain(dataclasses.replace(cfg, source="")),
              "data": data, "init": init, "env": environment(EXPLORE_MODULES)}
    inputs["config"].pop("sim", None)
    return cache_key(inputs), inputs


def _init_from_state(state: dict):
    """Float weights and biases of a trained build (``model.pt``), one pair per weighted layer."""
    weights = [k for k in state if k.endswith("parametrizations.weight.original")]
    out = []
    for wk in weights:
        prefix = wk[: -len("parametrizations.weight.original")]
        out.append((state[wk].numpy(), state[prefix + "bias"].numpy()))
    return out


class SynthError(KofnError):
    """Yosys is missing on a worker or failed on a design (``kofn explore --synth``)."""

    what = "synth"


#: The modules whose code computes a synthesis point (with :data:`EXPLORE_MODULES`).
SYNTH_MODULES = (*TRAIN_MODULES, "kofn.app.explore", "kofn.codegen", "kofn.hw_templates")


def _synth_point(_common, item) -> dict:
    """Task: render one design (a trained IR at P lanes) and synthesize it with Yosys on the
    worker, in a private temporary folder.  ``item``: ``(IR files, P, family, schedule)``.
    Returns the Yosys figures (:class:`kofn.codegen.synth.SynthResult`, as a dict)."""
    import tempfile

    from ..codegen import plan_build, render_build, write_design
    from ..codegen.synth import YosysNotFound, synthesize
    from ..core import ir as ir_mod

    files, p, family, schedule = item
    with tempfile.TemporaryDirectory(prefix="kofn-synth-") as d:
        for name, data in files.items():
            (Path(d) / "model" / name).parent.mkdir(exist_ok=True)
            (Path(d) / "model" / name).write_bytes(data)
        model_ir = ir_mod.load(Path(d) / "model")
        build = plan_build(model_ir, plan_lanes(model_ir, p), schedule=schedule)
        design = render_build(build)
        write_design(design, d)
        try:
            r = synthesize(d, design.sources, design.top, family)
        except YosysNotFound as e:
            raise SynthError(f"on worker {socket.gethostname()}: {e}") from None
        except RuntimeError as e:
            raise SynthError(f"P = {p}, {family}: {' '.join(str(e).split())[:400]}") from None
    doc = r.as_dict()
    doc.pop("instances", None)
    return json.loads(json.dumps(doc))


def _yosys_version() -> str | None:
    import shutil
    import subprocess

    y = shutil.which("yosys")
    if y is None:
        return None
    try:
        return subprocess.run([y, "-V"], capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def plan_lanes(model_ir, p: int) -> list[int | None]:
    """Per-layer lanes of a sweep point at P = ``p``: capped at the layer's weights per row; a
    bank layer keeps its banks."""
    from ..codegen.packing import entries_per_row

    return [(L.banks if L.banks > 1 else min(p, entries_per_row(L)))
            if isinstance(L, (DenseLayer, Conv2dLayer)) else None for L in model_ir.layers]


def hardware_points(model_ir, lanes: Sequence[int], family: str = "xc7", schedule: str = "dataflow") -> list[dict]:
    """Exact cycles and estimated resources of ``model_ir`` at every P in ``lanes`` (a bank
    layer keeps its own P: its banks, fixed by training)."""
    from ..codegen import plan_build, resources

    out = []
    for p in lanes:
        b = plan_build(model_ir, plan_lanes(model_ir, p), schedule=schedule)
        lat = b.latency
        res = resources(model_ir, b.layers, family, b.schedule, b.stream_in, b.stream_out)
        fx = b.fmax_estimate
        out.append({"lanes": p, "latency_cycles": lat.total_cycles, "ii_cycles": lat.ii_cycles,
                    "dsp": res.dsp, "bram18": res.bram18, "lut": res.lut, "ff": res.ff,
                    "fmax_mhz": round(fx.fmax_mhz, 1) if fx else None})
    return out


def pareto_front(points: Sequence[dict], objectives=OBJECTIVES) -> list[int]:
    """Indices of the points no other point dominates (at least as good in every objective,
    better in one)."""
    def better_eq(a, b):
        return all(s * a[k] >= s * b[k] for k, s in objectives)

    def strictly(a, b):
        return any(s * a[k] > s * b[k] for k, s in objectives)

    return [i for i, a in enumerate(points)
            if not any(better_eq(b, a) and strictly(b, a) for j, b in enumerate(points) if j != i)]


def _order(objective: str):
    sign = dict(OBJECTIVES).get(objective, -1)
    # the objective first, then accuracy (higher), then LUT, latency, DSP (lower)
    return lambda p: (-sign * p[objective], -p["accuracy"], p["lut"], p["latency_cycles"], p["dsp"])


def pick(points: Sequence[dict], targets: Targets, objective: str = "accuracy") -> dict:
    """The best point meeting ``targets`` under ``objective``, and which constraint binds.

    ``binding``: the constraints that exclude every better point (by ``objective``) of the
    sweep: relaxing one of them (alone) would give a better design; empty when the pick is
    the sweep's best anyway.  With no feasible point, the nearest one (fewest violated
    constraints, then best objective) is returned with ``feasible`` false."""
    order = _order(objective)
    ranked = sorted(range(len(points)), key=lambda i: order(points[i]))
    feasible = [i for i in ranked if not targets.violations(points[i])]
    if not feasible:
        near = min(ranked, key=lambda i: (len(targets.violations(points[i])), ranked.index(i)))
        return {"feasible": False, "index": near, "point": points[near],
                "violated": targets.violations(points[near]), "binding": targets.violations(points[near])}
    best = feasible[0]
    better = ranked[: ranked.index(best)]
    counts: dict[str, int] = {}
    alone: set[str] = set()
    for i in better:
        v = targets.violations(points[i])
        for name in v:
            counts[name] = counts.get(name, 0) + 1
        if len(v) == 1:
            alone.add(v[0])
    binding = sorted(alone or counts, key=lambda n: -counts.get(n, 0))
    return {"feasible": True, "index": best, "point": points[best], "violated": [], "binding": binding,
            "better_excluded": len(better)}


def plot_pareto(points: Sequence[dict], front: Sequence[int], path: Path, chosen: int | None = None,
                title: str = "") -> None:
    """Two panels: accuracy against LUTs and against latency; marker area grows with DSPs,
    the Pareto front is outlined and the picked design starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    acc = [p["accuracy"] for p in points]
    dsp = [p["dsp"] for p in points]
    size = [20 + 6 * d for d in dsp]
    on = set(front)
    for ax, key, label in ((axes[0], "lut", "LUTs (estimate)"), (axes[1], "latency_cycles", "latency (cycles, exact)")):
        xs = [p[key] for p in points]
        sc = ax.scatter(xs, acc, s=size, c=[p["lanes"] for p in points], cmap="viridis", alpha=0.55,
                        edgecolors=["crimson" if i in on else "none" for i in range(len(points))], linewidths=1.6)
        fx = sorted((points[i][key], points[i]["accuracy"]) for i in front)
        best, stair = -1.0, []
        for x, a in fx:  # the front as seen in this projection: accuracy's running maximum
            if a > best:
                best = a
                stair.append((x, a))
        if stair:
            ax.step([x for x, _ in stair], [a for _, a in stair], where="post", color="crimson", lw=1, alpha=0.7,
                    label="Pareto front (4 objectives)")
        if chosen is not None:
            ax.scatter([points[chosen][key]], [points[chosen]["accuracy"]], marker="*", s=260, c="gold",
                       edgecolors="black", zorder=5, label="picked")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: ""))
        ax.set_xlabel(label)
        ax.set_ylabel("integer test accuracy")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.colorbar(sc, ax=axes, label="lanes P (marker area: DSPs)")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_explore(cfg, out_dir: Path, ratios: Sequence[Fraction], weight_bits: Sequence[int],
                act_bits: Sequence[int], lanes: Sequence[int], epochs: int | None = None,
                jobs: int | None = None, targets: Targets = Targets(), objective: str = "accuracy",
                family: str = "xc7", from_build: Path | None = None,
                progress: Callable[[str], None] = print, scheduler: str | None = None,
                cache: PointCache | None = None, synth: bool = False) -> dict:
    """Run the sweep into ``out_dir``; returns (and writes) ``explore.json``.

    Every training is a task on ``scheduler`` (:func:`kofn.app.sweep.parse_scheduler`: the
    default an embedded Dask ``LocalCluster`` of ``jobs`` workers); ``cache`` (a
    :class:`~kofn.app.sweep.PointCache` for the final output folder) supplies the points a
    previous run finished and keeps the new ones as they finish.  ``synth``: also synthesize
    every Pareto-front design with Yosys (``family``), one task each, into ``doc["synth"]``."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sched = parse_scheduler(scheduler)
    cache = cache or PointCache(None)
    init = None
    if from_build is not None:
        import torch

        pt = Path(from_build) / "model" / "model.pt"
        if not pt.exists():
            raise ValueError(f"{pt} not found: --from takes a `kofn flow` build folder")
        init = _init_from_state({k: v for k, v in torch.load(pt, map_location="cpu").items()})
    if epochs is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    runs = sweep_configs(cfg, ratios, weight_bits, act_bits)
    from .training import load_data

    ds = load_data(cfg)  # here, once: the workers get the arrays, not the files
    data_sha = data_digest(ds)
    init_sha = arrays_digest(*(a for pair in init for a in pair)) if init is not None else None
    t0 = time.perf_counter()
    rows: dict[str, dict] = {}
    files: dict[str, dict[str, bytes]] = {}
    keys: dict[str, tuple[str, dict]] = {}
    todo = []
    for params, c in runs:
        tag = point_tag(params)
        keys[tag] = point_key(c, data_sha, init_sha)
        hit = cache.lookup(tag, keys[tag][0])
        if hit is not None and set(hit.files) == set(IR_FILES):
            rows[tag], files[tag] = hit.result, hit.files
        else:
            todo.append((tag, (params, c)))
    progress(f"explore {cfg.name}: {len(runs)} training runs ({len(ratios)} ratios x {len(weight_bits)} weight "
             f"widths x {len(act_bits)} activation widths, {cfg.train.epochs} epochs"
             f"{' from ' + str(from_build) if from_build else ''}), {len(rows)} cached, {len(todo)} to train; "
             f"{len(lanes)} lane counts each")
    with TaskRunner(sched, jobs, progress) as runner:
        if todo:
            runner.start(len(todo) + (len(runs) * len(lanes) if synth else 0))  # workers: at most one per task
            progress(f"training {len(todo)} point{'s' if len(todo) != 1 else ''} on {runner.describe()}")
        tally = Tally(len(runs), runner.workers)
        for tag in rows:
            progress(tally.cached(_describe_training(rows[tag])))
        tally.start()
        for tag, res in runner.run(_train_point, (ds, init), todo):
            rows[tag], files[tag] = res["result"], res["files"]
            cache.record(tag, keys[tag][0], res["result"], res["files"], keys[tag][1])
            progress(tally.finished(_describe_training(res["result"]), res["result"]["train_seconds"]))
        from ..core import ir as ir_mod

        trained = sorted(rows.values(), key=lambda r: (Fraction(r["ratio"]), r["weight_bits"], r["act_bits"]))
        points = []
        for r in trained:
            tag = r["tag"]
            PointCache.write(out, tag, keys[tag][0], r, files[tag], keys[tag][1])  # out/points, out/models
            model_ir = ir_mod.load(out / "models" / tag)
            for hw in hardware_points(model_ir, lanes, family, cfg.hw.schedule):
                points.append({k: r[k] for k in ("tag", "ratio", "weight_bits", "act_bits", "accuracy",
                                                 "accuracy_float")} | hw)
        front = pareto_front(points)
        choice = pick(points, targets, objective)
        for i, p in enumerate(points):
            p["pareto"] = i in front
        synth_rows = (_synthesize_front(runner, points, front, files, keys, family, cfg.hw.schedule, cache, out,
                                        progress) if synth else None)
        workers = runner.workers
    plot_pareto(points, front, out / "explore.png", choice["index"],
                title=f"{cfg.name}: {len(points)} designs, {len(front)} on the Pareto front ({family})")
    doc = {
        "name": cfg.name, "family": family, "objective": objective,
        "sweep": {"ratios": [str(r) for r in ratios], "weight_bits": list(weight_bits), "act_bits": list(act_bits),
                  "lanes": list(lanes), "epochs": cfg.train.epochs, "method": cfg.train.method,
                  "from_build": str(from_build) if from_build else None, "jobs": workers,
                  "scheduler": sched.describe(), "trained": len(todo), "cached": len(runs) - len(todo),
                  "seconds": round(time.perf_counter() - t0, 1)},
        "targets": {k: v for k, v in dataclasses.asdict(targets).items() if v is not None},
        "points": points,
        "pareto": front,
        "pick": choice,
        "trainings": trained,
    }
    if synth_rows is not None:
        doc["synth"] = synth_rows
    (out / "explore.json").write_text(json.dumps(doc, indent=2) + "\n")
    from .report_html import write_explore_html

    write_explore_html(doc, out, describe_pick(doc))
    cache.discard()  # every point is in out now
    return doc


def _synthesize_front(runner: TaskRunner, points: list[dict], front: list[int], files: dict, keys: dict,
                      family: str, schedule: str, cache: PointCache, out: Path, progress) -> list[dict]:
    """Yosys on every Pareto-front design, as tasks on ``runner``; cached like the trainings
    (key: the training's key, P, family, schedule, the codegen code and the client's Yosys
    version).  One row per front point: the estimate and Yosys's figures."""
    env = environment(SYNTH_MODULES)
    yosys = _yosys_version()
    todo, rows, skeys = [], {}, {}
    for i in front:
        p = points[i]
        tag = f"synth-{p['tag']}-P{p['lanes']}-{family}"
        inputs = {"kind": "explore-synth", "training": keys[p["tag"]][0], "lanes": p["lanes"], "family": family,
                  "schedule": schedule, "yosys": yosys, "env": env}
        skeys[tag] = (cache_key(inputs), inputs)
        hit = cache.lookup(tag, skeys[tag][0])
        if hit is not None:
            rows[tag] = hit.result
        else:
            todo.append((tag, (files[p["tag"]], p["lanes"], family, schedule)))
    progress(f"synthesis: {len(front)} Pareto-front designs with Yosys ({family}), {len(rows)} cached, "
             f"{len(todo)} to run" + (f" on {_describe_start(runner, len(todo))}" if todo else ""))
    tally = Tally(len(front), runner.workers)
    for tag in rows:
        progress(tally.cached(f"synth {tag[6:]}"))
    tally.start()
    for tag, res in runner.run(_synth_point, None, todo):
        rows[tag] = res
        cache.record(tag, skeys[tag][0], res, {}, skeys[tag][1])
        progress(tally.finished(f"synth {tag[6:]}: {res['lut']} LUT, {res['ff']} FF, {res['dsp']} DSP, "
                                f"{res['bram18']} BRAM18", res["seconds"]))
    out_rows = []
    for i in front:
        p = points[i]
        tag = f"synth-{p['tag']}-P{p['lanes']}-{family}"
        PointCache.write(out, tag, skeys[tag][0], rows[tag], {}, skeys[tag][1])
        y = rows[tag]
        out_rows.append({"index": i, "tag": p["tag"], "lanes": p["lanes"], "family": family,
                         "estimate": {k: p[k] for k in ("lut", "ff", "dsp", "bram18")},
                         "yosys": {k: y[k] for k in ("lut", "ff", "dsp", "bram18", "carry", "lutram")},
                         "logic_path": y.get("logic_path"), "seconds": y["seconds"]})
    return out_rows


def _describe_start(runner: TaskRunner, n: int) -> str:
    runner.start(n)
    return runner.describe()


def _describe_training(r: dict) -> str:
    return (f"k/n {r['ratio']}, weights {r['weight_bits']} b, activations {r['act_bits']} b: integer accuracy "
            f"{r['accuracy']:.4f}")


def describe_pick(doc: dict) -> str:
    """One paragraph: the picked design, its figures and what binds."""
    c = doc["pick"]
    p = c["point"]
    what = (f"k/n {p['ratio']}, {p['weight_bits']}-bit weights, {p['act_bits']}-bit activations, P = {p['lanes']}: "
            f"accuracy {p['accuracy']:.4f}, {p['dsp']} DSP, {p['lut']} LUT, {p['ff']} FF, {p['bram18']} BRAM18, "
            f"{p['latency_cycles']} cycles" + (f", Fmax {p['fmax_mhz']} MHz (ECP5 estimate)" if p.get("fmax_mhz") else ""))
    if not c["feasible"]:
        return f"no design meets the targets; nearest: {what} (violates {', '.join(c['violated'])})"
    if not c["binding"]:
        return f"picked {what}; no constraint binds (it is the sweep's best by {doc['objective']})"
    return (f"picked {what}; binding: {', '.join(c['binding'])} ({c['better_excluded']} designs better by "
            f"{doc['objective']} are excluded)")
