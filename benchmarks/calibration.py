"""The calibration corpus and the fitting of kofn's LUT/FF coefficients to Yosys.

Each entry is a small random model (``kofn.core.testing``) with chosen sizes, k, lanes and
formats, spread over what the estimator must get right: mux widths, ROM shapes (LUT ROM and
block RAM), DSP and LUT multipliers, signed/unsigned operands, convolutions and pools.
``benchmarks/calibrate.py`` (the command line) synthesizes all of them, prints the error
distribution and, with ``--fit``, fits ``codegen/coefficients.py`` (:func:`samples`,
:func:`fit`); the test suite does the same when ``yosys`` is installed (pytest puts
``benchmarks/`` on the path, see ``pyproject.toml``).

This is development tooling, not part of the installed ``kofn`` package: the estimator
(``kofn.codegen.estimate``) only reads the fitted coefficients.  It needs scipy (``nnls``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from kofn.core.fixed import FixedFormat as F

__all__ = ["CorpusDesign", "CORPUS", "design_model", "design_build", "estimate", "build_design", "run_corpus",
           "YOSYS_CACHE", "synth_key", "save_cache", "samples",
           "fit", "predict"]


@dataclass(frozen=True)
class CorpusDesign:
    name: str
    kind: str  # "mlp" or "cnn"
    shape: tuple  # mlp: sizes; cnn: input shape HWC
    spec: tuple  # mlp: ks; cnn: random_cnn layer spec
    lanes: tuple
    kwargs: tuple = ()  # (key, FixedFormat) pairs for random_model / random_cnn
    schedule: str = "sequential"  # the RTL it is built as ("dataflow" designs are named *_df)


def _d(name, sizes, ks, lanes, **kw):
    return CorpusDesign(name, "mlp", tuple(sizes), tuple(ks), tuple(lanes), tuple(sorted(kw.items())))


def _c(name, shape, spec, lanes, **kw):
    return CorpusDesign(name, "cnn", tuple(shape), tuple(spec), tuple(lanes), tuple(sorted(kw.items())))


CORPUS: tuple[CorpusDesign, ...] = (
    _d("m16_k4_p1", [16, 8], [4], [1]),
    _d("m16_k4_p4", [16, 8], [4], [4]),
    _d("m32_k8_p2", [32, 16, 4], [8, 4], [2, 2]),
    _d("m32_k8_p8", [32, 16, 4], [8, 4], [8, 4]),
    _d("m64_k16_p8", [64, 32, 10], [16, 8], [8, 8]),
    _d("m64_k4_p4", [64, 32, 10], [4, 4], [4, 4]),
    _d("m48_k12_p3", [48, 24, 6], [12, 6], [3, 3]),
    _d("m100_k10_p5", [100, 20, 5], [10, 5], [5, 5]),
    _d("m128_k8_p4", [128, 16, 4], [8, 4], [4, 2]),
    _d("m24_k24_p6", [24, 12, 3], [24, 12], [6, 6]),  # dense rows
    _d("m40_k5_p5_w4", [40, 20, 5], [5, 5], [5, 5], weight_fmt=F(4, 1)),  # 4-bit weights: LUT multipliers
    _d("m40_k5_p5_w12", [40, 20, 5], [5, 5], [5, 5], weight_fmt=F(12, 3), bias_fmt=F(16, 6)),
    _d("m32_k8_p4_a4", [32, 16, 4], [8, 4], [4, 4], input_fmt=F(4, 1, False), hidden_fmt=F(4, 2, False)),
    _d("m32_k8_p4_signed", [32, 16, 4], [8, 4], [4, 4], input_fmt=F(8, 2), hidden_fmt=F(8, 3)),
    _d("m256_k32_p8", [256, 32, 4], [32, 8], [8, 4]),  # a deep ROM: block RAM
    _d("m64_k16_p1", [64, 64, 8], [16, 16], [1, 1]),  # tall narrow ROMs
    _d("m20_k5_p2_o16", [20, 12, 5], [5, 4], [2, 4], output_fmt=F(16, 8)),
    _d("m3l", [33, 16, 9, 4], [8, 6, 9], [8, 3, 5], weight_fmt=F(10, 3), bias_fmt=F(14, 6), output_fmt=F(8, 6)),
    # products under 9 bits: LUT multipliers, no DSP
    _d("m32_k8_p4_w3a4", [32, 16, 4], [8, 4], [4, 4], weight_fmt=F(3, 1), bias_fmt=F(8, 4),
       input_fmt=F(4, 1, False), hidden_fmt=F(4, 2, False), output_fmt=F(8, 4)),
    _d("m24_k6_p3_w4a4s", [24, 12, 5], [6, 4], [3, 2], weight_fmt=F(4, 2), bias_fmt=F(8, 4),
       input_fmt=F(4, 2), hidden_fmt=F(4, 2), output_fmt=F(8, 4)),
    _c("c8_w_pool", (8, 8, 1), (("conv", 4, 3, 1, 1, "weight", 5), ("pool",), ("dense", 10, 16)), (5, None, 8)),
    _c("c8_kernel", (8, 8, 2), (("conv", 4, 3, 1, 1, "weight", 5), ("pool",), ("conv", 6, 3, 1, 0, "kernel", 2),
                                ("dense", 10, 8)), (2, None, 9, 4)),
    _c("c6_stride", (8, 7, 3), (("conv", 3, 3, 2, 0, "weight", 4), ("conv", 5, 2, 1, 0, "kernel", 2),
                                ("dense", 6, 5)), (3, 7, 2)),
    _c("c10_5x5", (10, 10, 1), (("conv", 4, 5, 1, 2, "kernel", 1), ("pool",), ("dense", 8, 20)), (25, None, 4)),
    # bank granularity: lane p's multiplexer spans bank p (n/P inputs) only
    _d("m96_k12_p4_bank", [96, 24, 6], [12, 6], [4, 3], banks=(4, 3)),
    _d("m256_k32_p8_bank", [256, 32, 4], [32, 8], [8, 4], banks=(8, 4)),  # the twin of m256_k32_p8
)
#: Fifteen of them again as dataflow hardware (ping-pong buffers, conv frame RAMs: every
#: MLP shape class and every CNN), plus one whose convolution frame buffer is large enough
#: for block RAM.
DF_TWINS = ("m16_k4_p1", "m32_k8_p8", "m64_k16_p8", "m48_k12_p3", "m100_k10_p5", "m40_k5_p5_w4", "m20_k5_p2_o16",
            "m24_k6_p3_w4a4s", "m3l", "c8_w_pool", "c8_kernel", "c6_stride", "c10_5x5", "m96_k12_p4_bank",
            "m256_k32_p8_bank")
CORPUS = CORPUS + tuple(replace(d, name=f"{d.name}_df", schedule="dataflow") for d in CORPUS if d.name in DF_TWINS) + (
    # kernel level with two whole kernels per step (P = 2*K*K): each lane's tap is a constant
    replace(_c("c6_kk2_df", (6, 6, 3), (("conv", 6, 3, 1, 1, "weight", 12), ("conv", 8, 3, 1, 1, "kernel", 3),
                                        ("pool",), ("dense", 10, 12)), (4, 18, None, 2)), schedule="dataflow"),
    replace(_c("c16_frame_df", (16, 16, 4), (("conv", 4, 3, 1, 1, "kernel", 2), ("pool",), ("dense", 10, 16)),
               (9, None, 4)), schedule="dataflow"),
    # banks of 512 values: the bank memories in block RAM
    replace(_d("m1024_k16_p2_bank_df", [1024, 8, 4], [16, 4], [2, 2], banks=(2, 2)), schedule="dataflow"),
    # a banked weight-level convolution (18-value window in 3 banks) and a banked dense head
    replace(_c("c8_bank_df", (8, 8, 2), (("conv", 4, 3, 1, 1, "bank", 6, 3), ("pool",), ("dense", 10, 16, 4)),
               (3, None, 4)), schedule="dataflow"),
)


def design_model(d: CorpusDesign, seed: int = 0):
    """``(model, plans)`` of ``d`` (random weights from ``seed``)."""
    from kofn.codegen.plan import plan_layers
    from kofn.core.testing import random_cnn, random_model

    kw = dict(d.kwargs)
    m = random_model(list(d.shape), list(d.spec), seed=seed, **kw) if d.kind == "mlp" else \
        random_cnn(d.shape, list(d.spec), seed=seed, **kw)
    return m, plan_layers(m, list(d.lanes))


def design_build(d: CorpusDesign, seed: int = 0):
    """``d`` laid out as a :class:`kofn.codegen.BuildPlan` (its schedule, automatic stream widths)."""
    from kofn.codegen import plan_build

    m, plans = design_model(d, seed)
    return plan_build(m, [p.lanes or None for p in plans], schedule=d.schedule)


def estimate(d: CorpusDesign, family: str, seed: int = 0):
    """kofn's :class:`kofn.codegen.Resources` estimate of ``d``."""
    from kofn.codegen.estimate import resources

    b = design_build(d, seed)
    return resources(b.model, b.layers, family, b.schedule, b.stream_in, b.stream_out)


def build_design(d: CorpusDesign, out: Path, seed: int = 0):
    """Render ``d`` into ``out``; returns ``(model, plans, design)``."""
    from kofn.codegen import render_build, write_design

    b = design_build(d, seed)
    design = render_build(b)
    write_design(design, out)
    return b.model, b.layers, design


#: Yosys's outputs for the corpus, keyed by what Yosys reads (see :func:`synth_key`): the test
#: suite and ``calibrate.py`` reuse an entry instead of running Yosys again on the same bytes.
YOSYS_CACHE = Path(__file__).resolve().parent / "results" / "yosys_corpus.json"


@lru_cache(maxsize=1)
def yosys_version() -> str:
    """``yosys -V`` (part of every cache key: another Yosys may map differently)."""
    import subprocess

    return subprocess.run(["yosys", "-V"], capture_output=True, text=True, check=True).stdout.strip()


#: An ``ifdef FORMAL`` block of the RTL (``kofn prove``'s properties, lemmas and their ports):
#: synthesis never defines FORMAL, so Yosys never reads it.
_FORMAL_BLOCK = re.compile(r"^`ifdef FORMAL\n.*?^`endif\n", re.DOTALL | re.MULTILINE)


def synthesis_text(text: str) -> str:
    """``text`` (an RTL file) as synthesis reads it: without its ``ifdef FORMAL`` blocks."""
    return _FORMAL_BLOCK.sub("", text)


def synth_key(design, family: str) -> str:
    """SHA-256 of everything the corpus's Yosys run depends on: Yosys's version, the script, and
    the text of every RTL and ROM file of ``design`` (a :class:`kofn.codegen.Design`) as synthesis
    reads it (:func:`synthesis_text`: a change to ``kofn prove``'s blocks keeps the cache)."""
    from kofn.codegen.synth import synth_script

    h = hashlib.sha256()
    for part in (yosys_version(), synth_script(design.sources, design.top, family, timing=False)):
        h.update(part.encode() + b"\0")
    for rel in sorted(f for f in design.files if f.startswith(("rtl/", "rom/"))):
        h.update(rel.encode() + b"\0" + synthesis_text(design.files[rel]).encode() + b"\0")
    return h.hexdigest()


def _raw_outputs(out: Path, family: str) -> dict:
    """What :func:`kofn.codegen.synth.read_synth_outputs` reads of a Yosys run, minus what it
    ignores: each module's cell counts (``stat -json``) and the ``cell TYPE NAME`` lines of the
    instance dump."""
    from kofn.codegen.synth import load_stat_json

    doc = load_stat_json((out / "synth" / f"stat_{family}.json").read_text())
    stat = {"modules": {m: {"num_cells_by_type": v["num_cells_by_type"]} for m, v in doc["modules"].items()}}
    if "num_cells_by_type" in doc.get("design", {}):
        stat["design"] = {"num_cells_by_type": doc["design"]["num_cells_by_type"]}
    dump = [ln.strip() for ln in (out / "synth" / f"instances_{family}.txt").read_text().splitlines()
            if ln.strip().startswith("cell ") and len(ln.split()) == 3]
    return {"stat": stat, "dump": dump}


def _restore_outputs(out: Path, family: str, raw: dict) -> None:
    (out / "synth").mkdir(exist_ok=True)
    (out / "synth" / f"stat_{family}.json").write_text(json.dumps(raw["stat"]))
    (out / "synth" / f"instances_{family}.txt").write_text("\n".join(raw["dump"]) + "\n")


@lru_cache(maxsize=1)
def _cache_entries(path: str) -> dict:
    p = Path(path)
    return json.loads(p.read_text())["entries"] if p.exists() else {}


def _one(args) -> dict:
    d, out, family, cache = args
    from kofn.codegen.synth import read_synth_outputs, synthesize

    _, _, design = build_design(d, out)
    est = estimate(d, family)
    key = synth_key(design, family)
    raw = _cache_entries(str(cache)).get(key) if cache else None
    cached = raw is not None
    try:
        if cached:  # Yosys's own outputs for these exact bytes; parsed by today's code
            _restore_outputs(out, family, raw)
            syn = read_synth_outputs(out, design.top, family)
        else:
            syn = synthesize(out, design.sources, design.top, family, timing=False)
            raw = _raw_outputs(out, family)
    except RuntimeError as e:  # recorded, not fatal: one design must not sink the corpus
        return {"name": d.name, "family": family, "error": str(e).splitlines()[0], "seconds": None,
                "estimate": {"dsp": est.dsp, "bram18": est.bram18, "lut": est.lut, "ff": est.ff}}
    return {"name": d.name, "family": family, "key": key, "cached": cached, "yosys": raw,
            "estimate": {"dsp": est.dsp, "bram18": est.bram18, "lut": est.lut, "ff": est.ff},
            "synth": {k: getattr(syn, k) for k in ("dsp", "bram18", "lut", "ff", "lutram", "carry")},
            "per_layer": {"estimate": {l.name: {"lut": l.lut, "ff": l.ff} for l in est.layers},
                          "synth": syn.instances},
            "seconds": syn.seconds}


def run_corpus(workdir: Path, families=("xc7",), jobs: int = 2, designs=CORPUS, progress=None,
               cache: Path | None = None) -> list[dict]:
    """Synthesize every design for every family, ``jobs`` at a time; one dict per (design, family).
    ``cache``: a :data:`YOSYS_CACHE`-style file; a design whose :func:`synth_key` it holds is not
    synthesized again (``"cached": True`` in its dict), the others are."""
    tasks = [(d, Path(workdir) / f"{d.name}_{f}", f, cache) for f in families for d in designs]
    out = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for r in pool.map(_one, tasks):
            out.append(r)
            if progress:
                what = r.get("error") or f"{r['synth']} " + ("from the cache" if r["cached"] else f"in {r['seconds']:.0f} s")
                progress(f"{len(out)}/{len(tasks)} {r['name']} ({r['family']}): {what}")
    return out


def save_cache(results: list[dict], path: Path = YOSYS_CACHE) -> int:
    """Write the Yosys outputs of ``results`` (:func:`run_corpus`) as the cache at ``path``: only
    today's entries, so keys of RTL that no longer exists go.  Returns the number of entries."""
    entries = {r["key"]: r["yosys"] for r in sorted(results, key=lambda r: (r["name"], r["family"])) if "key" in r}
    doc = {"about": "Yosys outputs (cell counts per module, instance cells) of the calibration corpus, keyed by "
                    "calibration.synth_key: Yosys's version, the script and every RTL and ROM file's text. "
                    "Written by: python benchmarks/calibrate.py --save-cache",
           "yosys": yosys_version(), "entries": entries}
    path.write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    _cache_entries.cache_clear()
    return len(entries)


def samples(results: list[dict]) -> list[tuple[str, str, str, dict, dict]]:
    """``(design, family, component, features, synthesized cells)`` for every module
    instance of the synthesized results (``run_corpus`` output): the MAC core
    (``u_<layer>`` or ``u_<layer>_mac``), a convolution front end (``u_<layer>``), a
    pool (``u_<layer>``) and the top's own logic."""
    from kofn.codegen.estimate import df_instances, features

    by_name = {d.name: d for d in CORPUS}
    out = []
    for r in results:
        inst = (r.get("per_layer") or {}).get("synth")
        if not inst or r["name"] not in by_name:
            continue
        fam = r["family"]
        d = by_name[r["name"]]
        if d.schedule == "dataflow":
            b = design_build(d)
            for _, name, comp, f in df_instances(b.model, b.layers, fam, b.stream_in, b.stream_out):
                if name in inst:  # kofn synth before the dump named parameterless modules lacks u_*_ctrl
                    out.append((r["name"], fam, comp, f, inst[name]))
            continue
        m, plans = design_model(d)
        for p in plans:
            f = features(p, fam)
            name = p.layer.name
            if p.kind == "conv":
                out.append((r["name"], fam, "conv", {"lut": f["conv_lut"], "ff": f["conv_ff"]}, inst[f"u_{name}"]))
                out.append((r["name"], fam, "core", {"lut": f["core_lut"], "ff": f["core_ff"]}, inst[f"u_{name}_mac"]))
            elif p.kind == "maxpool":
                out.append((r["name"], fam, "pool", {"lut": f["pool_lut"], "ff": f["pool_ff"]}, inst[f"u_{name}"]))
            else:
                out.append((r["name"], fam, "core", {"lut": f["core_lut"], "ff": f["core_ff"]}, inst[f"u_{name}"]))
        f = features(None, fam, m)
        out.append((r["name"], fam, "top", {"lut": f["top_lut"], "ff": f["top_ff"]}, inst["top"]))
    return out


def fit(smp, family: str, exclude: str | Collection[str] = ()) -> dict[str, dict[str, float]]:
    """Non-negative least squares, relative error per module instance, of every
    component's LUT and FF coefficients for ``family`` (``exclude``: a design's name, or
    several, to leave out of the fit)."""
    import numpy as np
    from scipy.optimize import nnls

    left_out = {exclude} if isinstance(exclude, str) else set(exclude or ())
    coef: dict[str, dict[str, float]] = {}
    for comp in sorted({s[2] for s in smp}):
        for res in ("lut", "ff"):
            rows = [s for s in smp if s[1] == family and s[2] == comp and s[0] not in left_out]
            if not rows:
                continue
            names = list(rows[0][3][res])
            x = np.array([[s[3][res][n] for n in names] for s in rows], dtype=float)
            y = np.array([s[4][res] for s in rows], dtype=float)
            w = 1.0 / np.sqrt(np.maximum(y, 8.0))
            c, _ = nnls(x * w[:, None], y * w)
            coef[f"{comp}_{res}"] = {n: round(float(v), 4) for n, v in zip(names, c)}
    return coef


def predict(d: CorpusDesign, family: str, coef: dict[str, dict[str, float]]) -> dict[str, int]:
    """LUT and FF of ``d`` for ``family`` under explicit coefficients ``coef``
    (``{component_resource: {feature: weight}}``: one family's entry of
    ``kofn.codegen.coefficients.COEFFICIENTS``, or what :func:`fit` returns).

    The estimator's arithmetic (``kofn.codegen.estimate.resources``): each block's
    :func:`~kofn.codegen.estimate.features` weighted by the coefficients (1.0 for a
    feature without one), rounded per block (every layer, then the top's own logic) and
    summed; but with ``coef`` instead of the installed coefficients."""
    from kofn.codegen.estimate import df_instances, features

    if d.schedule == "dataflow":  # rounded per instance, as the estimator does
        b = design_build(d)
        blocks = [{f"{comp}_lut": f["lut"], f"{comp}_ff": f["ff"]}
                  for _, _, comp, f in df_instances(b.model, b.layers, family, b.stream_in, b.stream_out)]
    else:
        m, plans = design_model(d)
        blocks = [features(p, family) for p in plans] + [features(None, family, m)]
    out = {"lut": 0, "ff": 0}
    for feats in blocks:
        block = {"lut": 0.0, "ff": 0.0}
        for comp, f in feats.items():
            c = coef.get(comp, {})
            block[comp.rsplit("_", 1)[1]] += sum(c.get(name, 1.0) * v for name, v in f.items())
        for key in out:
            out[key] += round(block[key])
    return out
