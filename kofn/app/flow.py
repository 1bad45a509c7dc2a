"""``kofn flow``: train -> export -> codegen -> RTL and C simulation -> estimates -> report.

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
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import __version__
from ..core import ir as ir_mod
from .config import FlowConfig, load_config
from ..core.fixed import quantize
from ..core.reference import run as reference_run

__all__ = ["run_flow", "build_and_verify", "resimulate", "Progress", "build_model", "train_model", "resources_report"]


class Progress:
    """Stage-by-stage progress lines on stderr, with elapsed seconds."""

    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.times: dict[str, float] = {}

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[kofn {time.perf_counter() - self.t0:6.1f}s] {msg}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self(f"{name} ...")
        t = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - t, 3)
        self(f"{name} done in {self.times[name]:.1f}s")


def _load_data(cfg: FlowConfig):
    from .data import load_digits, load_mnist

    if cfg.data.dataset == "digits":
        return load_digits(cfg.data.test_fraction, seed=cfg.seed)
    return load_mnist(cfg.data.path)


def _accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float((outputs.argmax(axis=1) == labels).mean())


def run_flow(cfg: FlowConfig, out_dir: Path, progress: Progress | None = None, config_text: str | None = None) -> dict:
    """Run the whole flow for ``cfg`` into ``out_dir``; returns the report (also written)."""
    import torch

    progress = progress or Progress()
    out = Path(out_dir).resolve()  # the simulator runs inside it; keep every path absolute
    out.mkdir(parents=True, exist_ok=True)
    if config_text is not None:
        (out / "config.toml").write_text(config_text)

    with progress.stage("data"):
        ds = _load_data(cfg)
        progress(f"{ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test images, {ds.n_features} features")

    init = None
    if cfg.model:
        from .onnx_import import float_init, onnx_to_ir, read_onnx

        net = read_onnx(cfg.model)
        if net.quantized:
            progress(f"{cfg.model}: a quantized k-of-n ONNX model; straight to codegen (no training)")
            return _build_imported(onnx_to_ir(net, cfg.name), cfg, out, ds, progress)
        if not cfg.layers:
            raise ValueError(f"{cfg.model} is a float model: give [[layers]] with k, granularity and formats for its layers")
        image_shape = cfg.data.image_shape if cfg.is_image_model else (ds.n_features,)
        init = float_init(net, cfg.layers, image_shape)
        progress(f"{cfg.model}: float ONNX model, {len(init)} weighted layers; fine-tuning with k-of-n QAT")

    with progress.stage("train"):
        model, hist, acc_float = train_model(cfg, ds, progress, init=init)

    with progress.stage("export"):
        model_ir = model.export(cfg.name)
        ir_mod.save(model_ir, out / "model")
        torch.save(model.state_dict(), out / "model" / "model.pt")
        (out / "model" / "history.json").write_text(json.dumps(hist.as_dict()) + "\n")
        x_test, ref_test, acc_int = _integer_accuracy(model_ir, ds)
        progress(f"accuracy on {ds.name} test split: float {acc_float:.4f}, integer {acc_int:.4f}")

    extra = {
        "dataset": ds.name,
        "accuracy": {"float": acc_float, "integer": acc_int, "test_images": int(len(ds.y_test))},
        "training": {"method": cfg.train.method, "seconds": round(hist.seconds, 3),
                     "step_ms_median": round(hist.step_seconds * 1e3, 3),
                     "epochs": cfg.train.epochs, "final_loss": hist.loss[-1],
                     "mask_metrics": hist.metrics[-1] if hist.metrics else []},
    }
    return build_and_verify(model_ir, cfg, out, x_test, ds.y_test, progress, extra, ref_test)


def build_model(cfg: FlowConfig, n_features: int, init=None):
    """The untrained KofnMLP or KofnCNN that ``cfg`` describes (``init``: float weights
    and biases per weighted layer to start from, or ``None``)."""
    from ..pruning import ConvSpec, KofnCNN, KofnMLP, LayerSpec, PoolSpec

    t = cfg.train
    if cfg.is_image_model:
        specs = [
            PoolSpec() if l.type == "maxpool"
            else ConvSpec(l.out_channels, l.kernel, l.k, l.weight, l.bias, l.output, l.stride, l.pad,
                          l.relu, l.granularity, l.bn) if l.type == "conv"
            else LayerSpec(l.out_features, l.k, l.weight, l.bias, l.output, l.relu, l.granularity, l.block)
            for l in cfg.layers
        ]
        return KofnCNN(cfg.data.image_shape, cfg.input, specs, method=t.method, train_cfg=t, seed=cfg.seed, init=init)
    specs = [LayerSpec(l.out_features, l.k, l.weight, l.bias, l.output, l.relu, l.granularity, l.block)
             for l in cfg.layers]
    return KofnMLP(n_features, cfg.input, specs, method=t.method, train_cfg=t, seed=cfg.seed, init=init)


def train_model(cfg: FlowConfig, ds, progress, init=None, threads: int = 2):
    """Build and train ``cfg``'s model on ``ds``: ``(model, history, float test accuracy)``.
    The model is left with quantization on (what export and the hardware compute)."""
    import torch

    from ..pruning import accuracy, train

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
    progress(f"method {cfg.train.method}: " + ", ".join(_describe_layer(i, l) for i, l in enumerate(cfg.layers)))
    model = build_model(cfg, ds.n_features, init)
    hist = train(model, ds.x_train, ds.y_train, cfg.train, seed=cfg.seed, progress=progress)
    model.set_quantize(False)
    acc_float = accuracy(model, ds.x_test, ds.y_test)
    model.set_quantize(True)
    return model, hist, acc_float


def _integer_accuracy(model_ir, ds) -> tuple[np.ndarray, np.ndarray, float]:
    """The quantized test images, the reference's outputs on them, and its accuracy."""
    x_test = quantize(ds.x_test, model_ir.input_fmt)
    ref_test = reference_run(model_ir, x_test)
    return x_test, ref_test, _accuracy(ref_test, ds.y_test)


def _build_imported(model_ir, cfg: FlowConfig, out: Path, ds, progress: Progress) -> dict:
    """A quantized model from ONNX: save its IR, measure its accuracy, build and verify."""
    if len(model_ir.input_shape) == 3 and tuple(model_ir.input_shape) != cfg.data.image_shape or (
        len(model_ir.input_shape) == 1 and model_ir.n_inputs != ds.n_features
    ):
        raise ValueError(f"the ONNX model takes {model_ir.input_shape}, the {ds.name} images are {cfg.data.image_shape}")
    if cfg.layers and len(cfg.layers) != len(model_ir.layers):
        raise ValueError(f"the ONNX model has {len(model_ir.layers)} layers, the config {len(cfg.layers)} [[layers]]")
    with progress.stage("export"):
        ir_mod.save(model_ir, out / "model")
        x_test, ref_test, acc_int = _integer_accuracy(model_ir, ds)
        progress(f"accuracy on {ds.name} test split: integer {acc_int:.4f}")
    extra = {"dataset": ds.name, "source_model": cfg.model,
             "accuracy": {"float": None, "integer": acc_int, "test_images": int(len(ds.y_test))}}
    return build_and_verify(model_ir, cfg, out, x_test, ds.y_test, progress, extra, ref_test)


def _describe_layer(i: int, l) -> str:
    if l.type == "maxpool":
        return f"l{i} maxpool 2x2"
    what = {"weight": "n", "kernel": "kernels", "feature_map": "filters" if l.type == "conv" else "neurons",
            "block": f"{l.block}"}[l.granularity]
    head = f"l{i} conv {l.out_channels}@{l.kernel}x{l.kernel}" if l.type == "conv" else f"l{i} dense {l.out_features}"
    return f"{head} {l.k}-of-{what}"


def _vectors(model_ir, cfg: FlowConfig, x_test: np.ndarray) -> tuple[np.ndarray, int, int]:
    from ..core.testing import random_inputs

    n_test = len(x_test) if cfg.sim.test_vectors < 0 else min(cfg.sim.test_vectors, len(x_test))
    rnd = random_inputs(model_ir, cfg.sim.random_vectors, seed=cfg.sim.seed)
    return np.concatenate([rnd, x_test[:n_test]]).astype(np.int64), cfg.sim.random_vectors, n_test


def build_and_verify(
    model_ir,
    cfg: FlowConfig,
    out_dir: Path,
    x_test: np.ndarray,
    y_test: np.ndarray | None,
    progress: Progress | None = None,
    extra: dict | None = None,
    ref_test: np.ndarray | None = None,
) -> dict:
    """Codegen, simulate and estimate ``model_ir``; writes and returns the report.

    ``ref_test``: the reference's outputs on ``x_test`` when the caller already has them
    (they are not computed twice)."""
    from ..codegen import memory_bits, plan_build, render_build, resources, write_design
    from ..codegen.render import tdata_width
    from ..sim.hls_csim import build_csim, run_csim, write_vectors_txt
    from ..sim.rtl import build_rtl, lint, simulate_rtl

    progress = progress or Progress()
    out = Path(out_dir).resolve()  # the simulator runs inside it; keep every path absolute
    top = cfg.hw.top
    with progress.stage("codegen"):
        build = plan_build(model_ir, [l.lanes for l in cfg.layers] if cfg.layers else None,
                           top=top, part=cfg.hw.part, clock_mhz=cfg.hw.clock_mhz)
        plans, lat = build.layers, build.latency
        design = render_build(build)
        write_design(design, out)
        res = resources(model_ir, plans)
        x, n_rand, n_test = _vectors(model_ir, cfg, x_test)
        if ref_test is None:
            expected = reference_run(model_ir, x)
        else:
            expected = np.concatenate([reference_run(model_ir, x[:n_rand]), ref_test[:n_test]])
        n_rtl_test = n_test if cfg.sim.rtl_test_vectors < 0 else min(cfg.sim.rtl_test_vectors, n_test)
        x_rtl, expected_rtl = x[: n_rand + n_rtl_test], expected[: n_rand + n_rtl_test]
        (out / "vectors").mkdir(exist_ok=True)
        np.save(out / "vectors" / "inputs.npy", x)
        np.save(out / "vectors" / "expected.npy", expected)
        write_vectors_txt(x, out / "vectors" / "inputs.txt")
        progress(
            f"{len(design.files)} files; P = {[p.lanes for p in plans]}; "
            f"{len(x)} vectors ({n_rand} random + {n_test} test)"
            + (f", RTL streams {len(x_rtl)} of them" if len(x_rtl) < len(x) else "")
        )
    rtl_sources = [out / s for s in design.sources]

    report: dict = {
        "kofn_version": __version__,
        "name": model_ir.name,
        "top": top,
        **(extra or {}),
        "layers": [_layer_report(p) for p in plans],
        "bitexact": {},
        "latency": {
            "estimated_cycles": lat.total_cycles,
            "measured_cycles": None,
            "ii_cycles": lat.ii_cycles,
            "measured_ii_cycles": None,
            "per_layer": [{"name": l.name, "cycles": l.cycles} for l in lat.layers],
            "throughput_per_s": round(lat.throughput(cfg.hw.clock_mhz), 1),
            "clock_mhz": cfg.hw.clock_mhz,
        },
        "memory": memory_bits(plans),
        "resources": resources_report(res, "xc7"),
    }

    with progress.stage("build (Verilator + g++, in parallel)"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            f_lint = pool.submit(lint, rtl_sources, top) if cfg.sim.rtl else None
            f_rtl = (
                pool.submit(build_rtl, rtl_sources, top, out / "sim_build", out / "sim_build.log")
                if cfg.sim.rtl
                else None
            )
            f_hls = pool.submit(build_csim, out / "hls", top, out / "csim") if cfg.sim.hls else None
            lint_msg = f_lint.result() if f_lint else None
            if f_rtl:
                f_rtl.result()
            csim_bin = f_hls.result() if f_hls else None
        if lint_msg is not None:
            report["lint"] = {"verilator_wall": "clean" if not lint_msg else lint_msg}
            if lint_msg:
                progress(f"WARNING: verilator -Wall is not clean:\n{lint_msg}")

    if cfg.sim.hls:
        with progress.stage(f"HLS C simulation ({len(x)} vectors)"):
            cs = run_csim(csim_bin, x, out / "csim")
            mism = int((cs.outputs != expected).sum())
            report["bitexact"]["hls"] = {"vectors": int(len(x)), "mismatches": mism}
            progress(f"HLS C simulation: {mism} mismatching output codes")
            if y_test is not None and n_test and "accuracy" in report:
                report["accuracy"]["hls_on_test"] = _accuracy(cs.outputs[n_rand:], y_test[:n_test])
    if cfg.sim.rtl:
        with progress.stage(f"RTL simulation ({len(x_rtl)} vectors, stall probability {cfg.sim.stall_prob})"):
            r = simulate_rtl(
                out, top, x_rtl, expected_rtl,
                in_tdata_w=tdata_width(model_ir.input_fmt),
                out_signed=model_ir.output_fmt.signed,
                build_dir=out / "sim_build",
                stall_prob=cfg.sim.stall_prob,
                timing_vectors=cfg.sim.timing_vectors,
                seed=cfg.sim.seed,
                progress=progress,
            )
            report["bitexact"]["rtl"] = {"vectors": r.vectors, "mismatches": r.mismatches,
                                         "tlast_errors": r.tlast_errors, "sim_cycles": r.sim_cycles}
            report["latency"]["measured_cycles"] = r.latency_cycles
            report["latency"]["measured_ii_cycles"] = r.ii_cycles
            progress(
                f"RTL simulation: {r.mismatches} mismatching output codes; latency {r.latency_cycles} "
                f"cycles (estimated {lat.total_cycles}), II {r.ii_cycles} (estimated {lat.ii_cycles})"
            )
    if y_test is not None and cfg.sim.rtl:
        # hardware accuracy: the RTL's own outputs on the simulated test images
        n_rand = cfg.sim.random_vectors
        n_t = len(x_rtl) - n_rand
        report["accuracy"]["rtl_on_test"] = _accuracy(r.outputs[n_rand:], y_test[:n_t]) if n_t else None
    report["seconds"] = progress.times
    from ..codegen.render import render_ip

    ip_files = render_ip(model_ir, design, report, cfg.hw.part, cfg.hw.clock_mhz, source=cfg.source)
    (out / "ip").mkdir(exist_ok=True)
    for rel, text in ip_files.items():
        (out / rel).write_text(text)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(report))
    from .report_html import write_flow_html

    write_flow_html(report, out)
    progress(f"wrote {out / 'report.json'}, report.md and report.html")
    return report


def resources_report(res, family: str) -> dict:
    """The ``resources`` entry of report.json for an estimate (:class:`kofn.codegen.Resources`)."""
    return {"family": family, "dsp": res.dsp, "bram18": res.bram18, "ramb18": res.ramb18, "ramb36": res.ramb36,
            "lut": res.lut, "ff": res.ff, "per_layer": [dataclasses.asdict(l) for l in res.layers],
            "top": dataclasses.asdict(res.top), "model": "calibrated against Yosys synth_xilinx (see README)"}


def _layer_report(p) -> dict:
    L = p.layer
    d = {"name": L.name, "kind": L.kind}
    if L.kind == "maxpool":
        return {**d, "in_shape": list(L.in_shape), "out_shape": list(L.out_shape)}
    d.update(n=L.n, k=L.k, rows=L.rows, lanes=p.lanes, steps=p.steps, acc_width=L.accumulator.width)
    if L.kind == "conv":
        d.update(granularity=L.granularity, kernel=L.kernel, stride=L.stride, pad=L.pad,
                 in_shape=list(L.in_shape), out_shape=list(L.out_shape), weights_per_filter=L.k_eff)
    return d


def resimulate(build_dir: Path, progress: Progress | None = None) -> dict:
    """Regenerate and re-simulate a build folder from its saved IR and config (no training)."""
    build_dir = Path(build_dir).resolve()
    cfg_path = build_dir / "config.toml"
    cfg = load_config(cfg_path) if cfg_path.exists() else load_config(None)
    model_ir = ir_mod.load(build_dir / "model")
    old = json.loads((build_dir / "report.json").read_text()) if (build_dir / "report.json").exists() else {}
    x_saved = np.load(build_dir / "vectors" / "inputs.npy")
    x_test = x_saved[cfg.sim.random_vectors:]
    extra = {k: old[k] for k in ("dataset", "accuracy", "training") if k in old}
    if "accuracy" in extra:
        extra["accuracy"] = {k: v for k, v in extra["accuracy"].items() if k != "rtl_on_test"}
    return build_and_verify(model_ir, cfg, build_dir, x_test, None, progress, extra)


def render_markdown(r: dict) -> str:
    """A human-readable summary of a report."""
    lines = [f"# kofn report: {r['name']}", "", f"Top module `{r['top']}`, kofn {r['kofn_version']}.", ""]
    acc = r.get("accuracy")
    if acc:
        lines += ["## Accuracy", "", "| float | integer |", "|---|---|",
                  f"| {'-' if acc['float'] is None else format(acc['float'], '.4f')} | {acc['integer']:.4f} |", ""]
    lines += ["## Bit-exactness", "", "| simulation | vectors | mismatches |", "|---|---|---|"]
    for k, v in r["bitexact"].items():
        lines.append(f"| {k} | {v['vectors']} | {v['mismatches']} |")
    lat = r["latency"]
    lines += ["", "## Latency", "", "| | estimated | measured |", "|---|---|---|",
              f"| cycles (first input beat to last output beat) | {lat['estimated_cycles']} | {lat['measured_cycles']} |",
              f"| initiation interval | {lat['ii_cycles']} | {lat['measured_ii_cycles']} |", "",
              f"Throughput at {lat['clock_mhz']} MHz: {lat['throughput_per_s']:.0f} inferences/s.", "",
              "| layer | kind | n | k | rows | lanes P | steps S | cycles |", "|---|---|---|---|---|---|---|---|"]
    for l, c in zip(r["layers"], lat["per_layer"]):
        if l.get("kind") == "maxpool":
            lines.append(f"| {l['name']} | maxpool {'x'.join(map(str, l['in_shape']))} | | | | | | {c['cycles']} |")
            continue
        kind = l.get("kind", "dense")
        if kind == "conv":
            kind = f"conv {l['kernel']}x{l['kernel']}/{l['stride']}, {l['granularity']}"
        lines.append(f"| {l['name']} | {kind} | {l['n']} | {l['k']} | {l['rows']} | {l['lanes']} | {l['steps']} | {c['cycles']} |")
    res, mem = r["resources"], r["memory"]
    lines += ["", f"## Resources (estimate, {res.get('family', 'xc7')})", "", "| DSP | BRAM18 | LUT | FF |", "|---|---|---|---|",
              f"| {res['dsp']} | {res['bram18']} | {res['lut']} | {res['ff']} |", "",
              f"ROM bits: {mem['rom_bits']} (the same layers stored dense: {mem['dense_bits']}, "
              f"{mem['dense_bits'] / max(1, mem['rom_bits']):.2f}x)."
              + (f" Line buffers: {mem['line_buffer_bits']} bits; window registers: {mem['window_bits']} bits."
                 if mem.get("line_buffer_bits") else ""), ""]
    return "\n".join(lines)
