"""``kofn flow``: train -> export -> codegen -> RTL and C simulation -> estimates -> report.

A typed pipeline; each stage takes the previous stages' results and returns its own:

    source_model(cfg, ds)            -> Source       (a trained or imported IR + its accuracy)
    plan_build(ir, cfg)              -> BuildPlan    (lanes, packed ROMs, exact schedule)
    make_vectors(plan, cfg, ...)     -> Vectors      (random + test inputs, reference outputs)
    generate(plan, vectors, out)     -> Design       (rtl/, rom/, hls/, vectors/ written)
    simulate(plan, design, ...)      -> Simulations  (lint, RTL and HLS results)
    assemble(...)                    -> Report       (frozen; every writer reads only this)
    write_outputs(report, ...)                       (report.json/.md/.html, the IP's files)

The build folder holds::

    config.toml            the configuration used
    model/                 model.json + model.npz (the IR), model.pt (torch weights), history.json
    rom/*.mem  rtl/*.sv  hls/*      generated IP
    vectors/inputs.npy, expected.npy, inputs.txt    test vectors and reference outputs
    sim/                   cocotb stimulus, results and log;  csim/  C-simulation binary and I/O
    report.json  report.md  report.html (self-contained, plots embedded)
    synth.json  synth/     after `kofn synth`
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..codegen import BuildPlan, Design, LayerPlan
from ..core import ir as ir_mod
from ..core.ir import Conv2dLayer, Model
from ..core.reference import run as reference_run
from .config import FlowConfig
from .progress import Progress
from .report import Accuracy, LatencyFigures, Report, SimCheck, resources_report
from .training import accuracy_of, integer_accuracy, load_data, train_to_ir

__all__ = ["run_flow", "preflight", "Preflight", "build_and_verify", "resimulate", "Progress", "Source", "Vectors", "Simulations",
           "source_model", "plan_build", "make_vectors", "generate", "simulate", "assemble", "write_outputs"]


@dataclass(frozen=True)
class Source:
    """The IR to build, where it came from, and what is known of it before hardware."""

    ir: Model
    accuracy: Accuracy | None
    x_test: np.ndarray  # quantized test inputs
    ref_test: np.ndarray | None  # the reference's outputs on them (None: compute them)
    dataset: str | None
    training: Mapping[str, Any] | None = None  # the report's summary of training
    history: Mapping[str, Any] | None = None  # per-epoch curves (model/history.json)
    source_model: str | None = None


@dataclass(frozen=True)
class Vectors:
    """Inputs for both simulations and the reference's outputs: ``n_random`` random vectors,
    then ``n_test`` test images; the RTL streams the first ``n_random + n_rtl_test``."""

    inputs: np.ndarray
    expected: np.ndarray
    n_random: int
    n_test: int
    n_rtl_test: int

    @property
    def n_rtl(self) -> int:
        return self.n_random + self.n_rtl_test


@dataclass(frozen=True)
class Simulations:
    """What the simulators said: Verilator's lint, the RTL run (``kofn.sim.rtl.RtlResult``)
    and the C simulation's outputs; ``None`` where a simulation was switched off."""

    lint: str | None
    rtl: Any
    hls_outputs: np.ndarray | None


@dataclass(frozen=True)
class Preflight:
    """What :func:`preflight` read and checked before any work: the dataset and, when the config
    names one, the ONNX model (a quantized one already as its IR; a float one as the weights
    training starts from)."""

    ds: Any
    imported: Model | None = None
    init: list | None = None


def preflight(cfg: FlowConfig, progress: Progress | None = None) -> Preflight:
    """Everything knowable from ``cfg`` and the files it names, checked before training or any
    output: the dataset's files (:class:`~kofn.core.errors.DataError`), the ONNX model's
    readability, operators, finite weights and shapes against the dataset and the config
    (:class:`~kofn.app.onnx_import.OnnxImportError`).  The config's own keys were checked when it
    was loaded."""
    progress = progress or Progress()
    if cfg.layers:
        cfg.check_buildable()
    with progress.stage("data"):
        ds = load_data(cfg)
        progress(f"{ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test images, {ds.n_features} features")
    if not cfg.model:
        return Preflight(ds)
    from ..codegen.build import stream_limits
    from .config import check_beats
    from .onnx_import import OnnxImportError, float_init, onnx_to_ir
    from .qonnx_import import read_model

    try:
        net = read_model(cfg.model)
        model_ir = onnx_to_ir(net, cfg.name) if net.quantized else None
        if model_ir is not None:  # a residual graph imports, but the hardware builds chains only: say so now
            from ..codegen.plan import check_buildable

            check_buildable(model_ir)
    except OnnxImportError as e:
        raise OnnxImportError(str(e) if str(e).startswith(str(cfg.model)) else f"{cfg.model}: {e}") from None
    except ValueError as e:  # the IR refuses what the graph holds (a code outside its format, ...)
        raise OnnxImportError(f"{cfg.model}: {e}") from None
    if net.quantized:
        shape = tuple(model_ir.input_shape)
        if (len(shape) == 3 and shape != cfg.data.image_shape) or (len(shape) == 1 and model_ir.n_inputs != ds.n_features):
            raise OnnxImportError(f"{cfg.model}: the model takes {shape}, the {ds.name} images are "
                                  f"{cfg.data.image_shape} ({ds.n_features} features)")
        if cfg.layers and len(cfg.layers) != len(model_ir.layers):
            raise OnnxImportError(f"{cfg.model}: the model has {len(model_ir.layers)} layers, the config "
                                  f"{len(cfg.layers)} [[layers]]")
        n_out = model_ir.layers[-1].rows
        if n_out != cfg.data.n_classes:
            raise OnnxImportError(f"{cfg.model}: the model has {n_out} outputs, {ds.name} has {cfg.data.n_classes} "
                                  "classes")
        check_beats(cfg.hw, *stream_limits(model_ir))  # on the model's own formats and banks
        return Preflight(ds, imported=model_ir)
    if not cfg.layers:
        raise OnnxImportError(f"{cfg.model}: a float model: give [[layers]] with k, granularity and formats for its "
                              "layers")
    cfg.check_streams(cfg.data.n_classes)  # a float model takes the config's formats
    init = float_init(net, cfg.layers, cfg.data.image_shape if cfg.is_image_model else (ds.n_features,))
    return Preflight(ds, init=init)


def run_flow(cfg: FlowConfig, out_dir: Path, progress: Progress | None = None,
             config_text: str | None = None, pre: Preflight | None = None) -> Report:
    """Run the whole flow for ``cfg`` into ``out_dir`` (written in place: the ``kofn flow``
    command passes a temporary folder that replaces ``--out`` on success); returns the report
    (also written).  ``pre``: :func:`preflight`'s result when the caller already checked."""
    progress = progress or Progress()
    pre = pre or preflight(cfg, progress)
    out = Path(out_dir).resolve()  # the simulator runs inside it; keep every path absolute
    out.mkdir(parents=True, exist_ok=True)
    if config_text is not None:
        (out / "config.toml").write_text(config_text)
    src = source_model(cfg, pre, out, progress)
    return build_and_verify(src, cfg, out, pre.ds.y_test, progress)


def source_model(cfg: FlowConfig, pre: Preflight, out: Path, progress: Progress) -> Source:
    """Train ``cfg``'s model (from a float ONNX model's weights when ``cfg.model`` names one),
    or take a quantized k-of-n ONNX model as it is; the IR is saved into ``out/model``."""
    ds = pre.ds
    if pre.imported is not None:
        progress(f"{cfg.model}: a quantized k-of-n ONNX model; straight to codegen (no training)")
        return _imported(pre.imported, cfg, ds, out, progress)
    if pre.init is not None:
        progress(f"{cfg.model}: float ONNX model, {len(pre.init)} weighted layers; fine-tuning with k-of-n QAT")
    with progress.stage("train"):
        t = train_to_ir(cfg, ds, progress, init=pre.init)
    with progress.stage("export"):
        import torch

        ir_mod.save(t.ir, out / "model")
        torch.save(t.net.state_dict(), out / "model" / "model.pt")
        history = t.history.as_dict()
        (out / "model" / "history.json").write_text(json.dumps(history) + "\n")
        progress(f"accuracy on {ds.name} test split: float {t.accuracy_float:.4f}, integer {t.accuracy_int:.4f}")
    h = t.history
    training = {"method": cfg.train.method, "seconds": round(h.seconds, 3), "step_ms_median": round(h.step_seconds * 1e3, 3),
                "epochs": cfg.train.epochs, "device": h.device, "final_loss": h.loss[-1], "mask_metrics": h.metrics[-1] if h.metrics else []}
    return Source(t.ir, Accuracy(t.accuracy_float, t.accuracy_int, int(len(ds.y_test))), t.x_test, t.ref_test,
                  ds.name, training, history)


def _imported(model_ir: Model, cfg: FlowConfig, ds, out: Path, progress: Progress) -> Source:
    with progress.stage("export"):
        ir_mod.save(model_ir, out / "model")
        x_test, ref_test, acc_int = integer_accuracy(model_ir, ds)
        progress(f"accuracy on {ds.name} test split: integer {acc_int:.4f}")
    return Source(model_ir, Accuracy(None, acc_int, int(len(ds.y_test))), x_test, ref_test, ds.name,
                  source_model=cfg.model)


def plan_build(model_ir: Model, cfg: FlowConfig) -> BuildPlan:
    """``model_ir`` laid out with the config's lanes (its ``[[layers]]`` ``lanes``, when the
    config has layers for it), top name, part and clock."""
    from ..codegen import plan_build as plan

    hw = cfg.hw
    lanes = [layer.lanes for layer in cfg.layers] if cfg.layers else None
    return plan(model_ir, lanes, top=hw.top, part=hw.part, clock_mhz=hw.clock_mhz, schedule=hw.schedule,
                stream_in=hw.stream_in, stream_out=hw.stream_out, target_ii=hw.target_ii, max_dsp=hw.max_dsp)


def make_vectors(plan: BuildPlan, cfg: FlowConfig, x_test: np.ndarray, ref_test: np.ndarray | None = None) -> Vectors:
    """Random inputs over the input format, then the test split; ``ref_test``: the reference's
    outputs on ``x_test`` when the caller has them (not computed twice)."""
    from ..core.testing import random_inputs

    n_test = len(x_test) if cfg.sim.test_vectors < 0 else min(cfg.sim.test_vectors, len(x_test))
    n_rand = cfg.sim.random_vectors
    x = np.concatenate([random_inputs(plan.model, n_rand, seed=cfg.sim.seed), x_test[:n_test]]).astype(np.int64)
    if ref_test is None:
        expected = reference_run(plan.model, x)
    else:
        expected = np.concatenate([reference_run(plan.model, x[:n_rand]), ref_test[:n_test]])
    n_rtl_test = n_test if cfg.sim.rtl_test_vectors < 0 else min(cfg.sim.rtl_test_vectors, n_test)
    return Vectors(x, expected, n_rand, n_test, n_rtl_test)


def generate(plan: BuildPlan, vectors: Vectors, out: Path) -> Design:
    """Render ``plan`` and write ``rtl/``, ``rom/``, ``hls/`` and ``vectors/`` into ``out``."""
    from ..codegen import render_build, write_design
    from ..sim.hls_csim import write_vectors_txt

    design = render_build(plan)
    write_design(design, out)
    (out / "vectors").mkdir(exist_ok=True)
    np.save(out / "vectors" / "inputs.npy", vectors.inputs)
    np.save(out / "vectors" / "expected.npy", vectors.expected)
    write_vectors_txt(vectors.inputs, out / "vectors" / "inputs.txt")
    return design


def simulate(plan: BuildPlan, design: Design, vectors: Vectors, cfg: FlowConfig, out: Path,
             progress: Progress) -> Simulations:
    """Lint and build both simulators in parallel, then run the C simulation and the RTL
    simulation (random stalls, plus stall-free timing vectors for latency and II)."""
    from ..codegen import axis_args
    from ..sim.hls_csim import build_csim, run_csim
    from ..sim.rtl import build_rtl, lint, simulate_rtl

    top, model = plan.top, plan.model
    sources = [out / s for s in design.sources]
    with progress.stage("build (Verilator + g++, in parallel)"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            f_lint = pool.submit(lint, sources, top) if cfg.sim.rtl else None
            f_rtl = (pool.submit(build_rtl, sources, top, out / "sim_build", out / "sim_build.log", **axis_args(plan))
                     if cfg.sim.rtl else None)
            f_hls = pool.submit(build_csim, out / "hls", top, out / "csim") if cfg.sim.hls else None
            lint_msg = f_lint.result() if f_lint else None
            if f_rtl:
                f_rtl.result()
            csim_bin = f_hls.result() if f_hls else None
    if lint_msg:
        progress(f"WARNING: verilator -Wall is not clean:\n{lint_msg}")
    hls_out = None
    if cfg.sim.hls:
        x = vectors.inputs
        with progress.stage(f"HLS C simulation ({len(x)} vectors)"):
            hls_out = run_csim(csim_bin, x, out / "csim").outputs
            progress(f"HLS C simulation: {int((hls_out != vectors.expected).sum())} mismatching output codes")
    rtl = None
    if cfg.sim.rtl:
        n = vectors.n_rtl
        with progress.stage(f"RTL simulation ({n} vectors, stall probability {cfg.sim.stall_prob})"):
            rtl = simulate_rtl(out, top, vectors.inputs[:n], vectors.expected[:n], **axis_args(plan),
                               build_dir=out / "sim_build", stall_prob=cfg.sim.stall_prob,
                               timing_vectors=cfg.sim.timing_vectors, seed=cfg.sim.seed, progress=progress,
                               watchdog_cycles=watchdog_cycles(plan))
            lat = plan.latency
            progress(f"RTL simulation: {rtl.mismatches} mismatching output codes; latency {rtl.latency_cycles} "
                     f"cycles (estimated {lat.total_cycles}), II {rtl.ii_cycles} (estimated {lat.ii_cycles})")
    return Simulations(None if lint_msg is None else (lint_msg or "clean"), rtl, hls_out)


def watchdog_cycles(plan: BuildPlan) -> int:
    """Cycles without a possible handshake after which the RTL simulation calls the design hung:
    a working design answers within its latency (stalls on the testbench's side only delay it
    by the stalled cycles), so four latencies and IIs are a safe bound."""
    lat = plan.latency
    return int(max(10_000, 4 * (lat.total_cycles + lat.ii_cycles)))


def layer_figures(p: LayerPlan) -> dict:
    """A layer's line in ``report.json``'s ``layers``."""
    L = p.layer
    d = {"name": L.name, "kind": L.kind}
    if not p.has_core:
        return {**d, "in_shape": list(L.in_shape), "out_shape": list(L.out_shape)}
    d.update(n=L.n, k=L.k, rows=L.rows, lanes=p.lanes, steps=p.steps, acc_width=L.accumulator.width, banks=L.banks)
    if isinstance(L, Conv2dLayer):
        d.update(granularity=L.granularity, kernel=L.kernel, stride=L.stride, pad=L.pad,
                 in_shape=list(L.in_shape), out_shape=list(L.out_shape), weights_per_filter=L.k_eff)
    return d


def assemble(src: Source, plan: BuildPlan, vectors: Vectors, sims: Simulations, y_test: np.ndarray | None,
             seconds: Mapping[str, float]) -> Report:
    """The build's :class:`Report` from every stage's result."""
    from ..codegen import memory_bits, resources

    lat, rtl = plan.latency, sims.rtl
    bitexact = {}
    acc = src.accuracy
    n_rand = vectors.n_random
    if sims.hls_outputs is not None:
        bitexact["hls"] = SimCheck(int(len(vectors.inputs)), int((sims.hls_outputs != vectors.expected).sum()))
        if y_test is not None and vectors.n_test:
            acc = _replace(acc, hls_on_test=accuracy_of(sims.hls_outputs[n_rand:], y_test[:vectors.n_test]))
    if rtl is not None:
        bitexact["rtl"] = SimCheck(rtl.vectors, rtl.mismatches, rtl.tlast_errors, rtl.sim_cycles, rtl_cycles=rtl.sim_cycles,
                                   rtl_seconds=round(rtl.rtl_seconds, 4), rtl_run_seconds=round(rtl.run_seconds, 3))
        if y_test is not None and vectors.n_rtl_test:
            acc = _replace(acc, rtl_on_test=accuracy_of(rtl.outputs[n_rand:], y_test[:vectors.n_rtl_test]))
    latency = LatencyFigures(
        estimated_cycles=lat.total_cycles, ii_cycles=lat.ii_cycles,
        per_layer=tuple({"name": l.name, "cycles": l.cycles} for l in lat.layers),
        throughput_per_s=round(lat.throughput(plan.clock_mhz), 1), clock_mhz=plan.clock_mhz,
        measured_cycles=rtl.latency_cycles if rtl is not None else None,
        measured_ii_cycles=rtl.ii_cycles if rtl is not None else None,
        schedule=plan.schedule, stream_in=plan.stream_in, stream_out=plan.stream_out,
        per_stage=tuple({"name": n, "cycles": c} for n, c in lat.stages))
    return Report(
        kofn_version=__version__, name=plan.model.name, top=plan.top,
        layers=tuple(layer_figures(p) for p in plan.layers), latency=latency,
        memory=memory_bits(plan.layers, plan.schedule),
        resources=resources_report(resources(plan.model, plan.layers, "xc7", plan.schedule, plan.stream_in,
                                             plan.stream_out), "xc7"),
        bitexact=bitexact, dataset=src.dataset, source_model=src.source_model, accuracy=acc,
        training=src.training, lint=sims.lint, seconds=dict(seconds), efficiency=plan.efficiency,
        timing=_timing_estimate(plan), model=plan.model, history=src.history)


def _timing_estimate(plan: BuildPlan) -> dict | None:
    """``timing.estimate`` of report.json: the Fmax model's ECP5 prediction, before any P&R."""
    est = plan.fmax_estimate
    if est is None:
        return None
    return {"estimate": {**est.as_dict(), "throughput_per_s_at_fmax": round(est.fmax_mhz * 1e6 / plan.latency.ii_cycles, 1)}}


def _replace(acc: Accuracy | None, **kw) -> Accuracy | None:
    return dataclasses.replace(acc, **kw) if acc is not None else None


def write_outputs(report: Report, plan: BuildPlan, design: Design, out: Path, source: str) -> None:
    """``report.json``, ``report.md``, ``report.html`` and the IP's vendor files."""
    from .ip import ip_files
    from .report_html import write_flow_html

    (out / "ip").mkdir(exist_ok=True)
    for rel, text in ip_files(report, design, plan.part, source).items():
        (out / rel).write_text(text)
    report.write(out)
    write_flow_html(report, out)


def build_and_verify(src: Source, cfg: FlowConfig, out_dir: Path, y_test: np.ndarray | None,
                     progress: Progress | None = None) -> Report:
    """Codegen, simulate and estimate ``src.ir``; writes and returns the report."""
    progress = progress or Progress()
    out = Path(out_dir).resolve()  # the simulator runs inside it; keep every path absolute
    with progress.stage("codegen"):
        plan = plan_build(src.ir, cfg)
        vectors = make_vectors(plan, cfg, src.x_test, src.ref_test)
        design = generate(plan, vectors, out)
        if plan.folding is not None:
            progress(plan.folding.describe())
        eff = plan.efficiency
        progress(f"{plan.schedule} schedule: II {eff['ii']:,} cycles on {eff['multipliers']} multipliers, "
                 f"MAC efficiency {eff['mac_efficiency']:.2f}; {plan.stream_in} value(s) per input beat, "
                 f"{plan.stream_out} per output beat")
        progress(f"{len(design.files)} files; P = {plan.lanes}; "
                 f"{len(vectors.inputs)} vectors ({vectors.n_random} random + {vectors.n_test} test)"
                 + (f", RTL streams {vectors.n_rtl} of them" if vectors.n_rtl < len(vectors.inputs) else ""))
    sims = simulate(plan, design, vectors, cfg, out, progress)
    report = assemble(src, plan, vectors, sims, y_test, progress.times)
    write_outputs(report, plan, design, out, cfg.source)
    progress(f"wrote {out / 'report.json'}, report.md and report.html")
    return report


def resimulate(build_dir: Path, progress: Progress | None = None, *, source: Path | None = None) -> Report:
    """Regenerate and re-simulate a build folder from its saved IR and config (no training),
    in place.  ``source``: the build to read (checked as untrusted input, see
    :func:`kofn.app.build_dir.open_build`) when ``build_dir`` is a fresh copy of it being
    written (``kofn sim`` works on a copy that replaces the build only on success)."""
    from .build_dir import load_vectors, open_build

    build_dir = Path(build_dir).resolve()
    b = open_build(source or build_dir, need_config=True)
    cfg, old = b.config, b.report
    x_test = load_vectors(b)[cfg.sim.random_vectors:]
    acc = _replace(old.accuracy, rtl_on_test=None) if old is not None else None
    src = Source(b.model, acc, x_test, None, old.dataset if old else None,
                 training=old.training if old else None, history=old.history if old else None)
    return build_and_verify(src, cfg, build_dir, None, progress)
