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

The front, the pick for the targets and the plot are :mod:`kofn.app.pareto` (pure functions
of the points).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import KofnError
from .compare import k_for
from .sweep import TaskRunner, parse_scheduler
from .sweep_cache import TRAIN_MODULES, PointCache, arrays_digest, cache_key, data_digest, environment, plain
from .pareto import OBJECTIVES, Targets, describe_pick, pareto_front, pick, plot_pareto
from .sweep_progress import Tally
from ..core.fixed import accumulator_frac
from ..core.ir import Conv2dLayer, DenseLayer

# OBJECTIVES, Targets, pareto_front, pick, describe_pick and plot_pareto live in
# kofn.app.pareto (the choice among the points); they are re-exported here.
__all__ = ["Targets", "sweep_configs", "pareto_front", "pick", "run_explore", "plot_pareto", "describe_pick",
           "OBJECTIVES", "hardware_points", "plan_lanes", "point_key", "point_tag"]


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
    :func:`kofn.app.sweep_cache.environment`."""
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


def run_explore(cfg, out_dir: Path, ratios: Sequence[Fraction], weight_bits: Sequence[int],
                act_bits: Sequence[int], lanes: Sequence[int], epochs: int | None = None,
                jobs: int | None = None, targets: Targets = Targets(), objective: str = "accuracy",
                family: str = "xc7", from_build: Path | None = None,
                progress: Callable[[str], None] = print, scheduler: str | None = None,
                cache: PointCache | None = None, synth: bool = False) -> dict:
    """Run the sweep into ``out_dir``; returns (and writes) ``explore.json``.

    Every training is a task on ``scheduler`` (:func:`kofn.app.sweep.parse_scheduler`: the
    default an embedded Dask ``LocalCluster`` of ``jobs`` workers); ``cache`` (a
    :class:`~kofn.app.sweep_cache.PointCache` for the final output folder) supplies the points a
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
