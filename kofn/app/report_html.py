"""``report.html``: one self-contained page (plots embedded as PNG data URIs, no scripts
or styles fetched from anywhere) next to ``report.json``.

A flow build shows accuracy (float against integer, and the simulated hardware's), the
bit-exactness checks, per-layer mask heatmaps, the mask confidence/diversity curves of
training, per-layer cycles and resources against Yosys (after ``kofn synth``), and ROM
bits against dense storage and CSR at the same sparsity.  An explore folder shows the
Pareto plot, the pick and every point.

The page sets ``data-kofn-ready`` on ``<body>`` once every image has decoded (and
``data-kofn-broken`` with the count of images that failed), so a headless browser can
check that it renders (``tests/test_report_html.py``).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..core.ir import Conv2dLayer, DenseLayer

if TYPE_CHECKING:
    from .report import Report

__all__ = ["write_flow_html", "write_explore_html", "mask_matrix"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;
color:#1b1f24;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem;
margin-top:2rem} .sub{color:#57606a;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem} th,td{border:1px solid #d0d7de;padding:.25rem .6rem;
text-align:right} th{background:#f6f8fa} td:first-child,th:first-child{text-align:left}
.ok{color:#1a7f37;font-weight:600} .bad{color:#cf222e;font-weight:600} img{max-width:100%;height:auto}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{border:1px solid #d0d7de;border-radius:6px;padding:.6rem 1rem;
min-width:140px} .card b{display:block;font-size:1.4rem} .note{color:#57606a;font-size:.85rem}
"""

_READY_JS = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  document.body.setAttribute('data-kofn-broken', String(broken));
  document.body.setAttribute('data-kofn-ready', String(imgs.length));
});
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class _Markup(str):
    """A table cell that is already HTML (everything else is escaped)."""


def _table(head: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:,.0f}"
        return v if isinstance(v, _Markup) else html.escape(str(v))

    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows]
    return "\n".join(out) + "</table>"


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style><script>{_READY_JS}</script></head>\n"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def mask_matrix(layer) -> np.ndarray:
    """``[rows, n]`` 0/1 matrix of the inputs each neuron or filter keeps (kernel-level
    convolutions: ``[rows, C_in]`` of kept kernels)."""
    idx = np.asarray(layer.indices)
    width = layer.in_channels if isinstance(layer, Conv2dLayer) and layer.granularity == "kernel" else layer.n
    m = np.zeros((idx.shape[0], width), dtype=np.uint8)
    np.put_along_axis(m, idx, 1, axis=1)
    return m


def _accuracy_section(r: dict) -> list[str]:
    acc = r.get("accuracy")
    if not acc:
        return []
    rows = [("float (training graph, quantization off)", acc.get("float")),
            ("integer (bit-exact reference)", acc.get("integer")),
            ("HLS C simulation, test images", acc.get("hls_on_test")),
            ("RTL simulation, test images", acc.get("rtl_on_test"))]
    rows = [x for x in rows if x[1] is not None]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(rows)), constrained_layout=True)
    ax.barh([x[0] for x in rows][::-1], [x[1] for x in rows][::-1], color="#4c78a8")
    lo = min(x[1] for x in rows)
    ax.set_xlim(max(0.0, lo - 0.05), 1.0)
    for i, (_, v) in enumerate(rows[::-1]):
        ax.text(v, i, f" {v:.4f}", va="center", fontsize=8)
    ax.set_xlabel(f"test accuracy ({acc.get('test_images', '?')} images of {r.get('dataset', '?')})")
    return ["<h2>Accuracy</h2>", _table(["model", "accuracy"], rows), _img(_png(fig), "accuracy")]


def _bitexact_section(r: dict) -> list[str]:
    rows = []
    for k, v in r.get("bitexact", {}).items():
        tag = _Markup('<span class="ok">bit-exact</span>' if v["mismatches"] == 0
                      else f'<span class="bad">{v["mismatches"]} mismatches</span>')
        rows.append((k.upper(), v["vectors"], v["mismatches"], tag))
    if not rows:
        return []
    return ["<h2>Bit-exactness against the integer reference</h2>",
            _table(["simulation", "vectors", "mismatching output codes", "verdict"], rows)]


def _mask_section(model) -> list[str]:
    if model is None:
        return []
    layers = [L for L in model.layers if isinstance(L, (DenseLayer, Conv2dLayer))]
    if not layers:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(layers), figsize=(min(4 * len(layers), 16), 3.6), constrained_layout=True,
                             squeeze=False)
    for ax, L in zip(axes[0], layers):
        m = mask_matrix(L)
        ax.imshow(m, aspect="auto", interpolation="nearest", cmap="Greys")
        kernel = isinstance(L, Conv2dLayer) and L.granularity == "kernel"
        ax.set_title(f"{L.name}: {L.rows} x {m.shape[1]}, k = {L.k}", fontsize=9)
        ax.set_xlabel("input channel (kernel kept)" if kernel else "input")
        ax.set_ylabel("filter" if isinstance(L, Conv2dLayer) else "neuron")
    return ["<h2>Masks</h2>",
            '<p class="note">Black: kept.  Every row keeps exactly k entries (the fixed stride of the ROMs).</p>',
            _img(_png(fig), "mask heatmaps")]


def _training_section(h, r: dict) -> list[str]:
    if not h:
        return []
    metrics = h.get("metrics") or []
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
    axes[0].plot(range(1, len(h["loss"]) + 1), h["loss"], color="#4c78a8")
    axes[0].set_title("training loss", fontsize=10)
    axes[0].set_xlabel("epoch")
    n_layers = max((len(e) for e in metrics), default=0)
    plotted = False
    for li in range(n_layers):
        pts = [(ep + 1, e[li]) for ep, e in enumerate(metrics) if li < len(e) and e[li]]
        if not pts:
            continue
        plotted = True
        axes[1].plot([p[0] for p in pts], [p[1]["confidence"] for p in pts], label=f"layer {li}")
        axes[2].plot([p[0] for p in pts], [p[1]["diversity"] for p in pts], label=f"layer {li}")
    for ax, name in ((axes[1], "mask confidence (normalised entropy, 0 = settled)"), (axes[2], "mask diversity")):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.02, 1.02)
        if plotted:
            ax.legend(fontsize=8)
    method = r.get("training", {}).get("method", "?")
    return ["<h2>Training</h2>",
            f'<p class="note">Method {html.escape(str(method))}, once per epoch (<code>kofn.pruning.metrics</code>).  '
            "Confidence: the normalised entropy of each neuron's selection distribution above the k-hot minimum, "
            "0 when it always keeps the same k inputs, 1 when it picks uniformly (lower is more confident).  "
            "Diversity: the entropy of the selection averaged over neurons, 0 when every neuron keeps the same "
            "inputs, 1 when the layer uses every input equally.  A deterministic mask (magnitude, PSP after its "
            "switch) has confidence 0.</p>", _img(_png(fig), "training curves")]


def _synth_layer(synth: dict, layer: str) -> dict | None:
    inst = synth.get("instances") or {}
    parts = [v for k, v in inst.items() if k in (f"u_{layer}", f"u_{layer}_mac", f"u_{layer}_buf", f"u_{layer}_ctrl")]
    if not parts:
        return None
    return {key: sum(p[key] for p in parts) for key in ("dsp", "bram18", "lut", "ff")}


def _hardware_section(r: dict) -> list[str]:
    lat, res = r["latency"], r["resources"]
    synth = res.get("synth") or {}
    cards = [("latency", f"{lat['estimated_cycles']:,} cycles"),
             ("measured (RTL)", f"{lat['measured_cycles']:,} cycles" if lat.get("measured_cycles") is not None else "-"),
             ("II", f"{lat['ii_cycles']:,} cycles"),
             (f"throughput @ {lat['clock_mhz']:g} MHz", f"{lat['throughput_per_s']:,.0f}/s")]
    for fam, t in (r.get("timing") or {}).items():
        if fam == "estimate":
            cards.append(("Fmax ecp5 (estimate)", f"{t['fmax_mhz']:.1f} MHz"))
        elif "fmax_mhz" in t:  # place and route ran: the clock the design reaches
            cards.append((f"Fmax {fam} (post-route)", f"{t['fmax_mhz']:.1f} MHz {'✓' if t['met'] else '✗'}"))
            cards.append((f"throughput @ {t['fmax_mhz']:.0f} MHz", f"{t['throughput_per_s_at_fmax']:,.0f}/s"))
    eff = r.get("efficiency")
    if eff:
        cards.append(("MAC efficiency", f"{eff['mac_efficiency']:.2f}"))
        cards.append(("multipliers", f"{eff['multipliers']} (limit II {eff['limit_ii']:,})"))
    out = ["<h2>Latency and resources</h2>", '<div class="cards">' + "".join(
        f'<div class="card">{html.escape(a)}<b>{html.escape(b)}</b></div>' for a, b in cards) + "</div>"]
    head = ["", "DSP", "BRAM18", "LUT", "FF"]
    rows = [("estimate (" + res.get("family", "xc7") + ")", res["dsp"], res["bram18"], res["lut"], res["ff"])]
    for fam, s in synth.items():
        rows.append((f"Yosys synth_xilinx {fam}", s["dsp"], s["bram18"], s["lut"], s["ff"]))
        est = res.get("by_family", {}).get(fam, res)
        rows.append((f"estimate error vs {fam}", *[_err(est[k], s[k]) for k in ("dsp", "bram18", "lut", "ff")]))
    out.append(_table(head, rows))
    out += _timing_rows(r.get("timing") or {})
    if not synth:
        out.append('<p class="note">No synthesis figures yet: run <code>kofn synth BUILD</code> (Yosys) to add them.</p>')
    fam0 = next(iter(synth), None)
    lrows = []
    for l, c, e in zip(r["layers"], lat["per_layer"], res["per_layer"]):
        s = _synth_layer(synth[fam0], l["name"]) if fam0 else None
        lrows.append((l["name"], l["kind"], c["cycles"], e["dsp"], s and s["dsp"], e["bram18"], s and s["bram18"],
                      e["lut"], s and s["lut"], e["ff"], s and s["ff"]))
    if res.get("top"):
        t = res["top"]
        s = (synth[fam0].get("instances") or {}).get("top") if fam0 else None
        if fam0 and lat.get("schedule") == "dataflow":  # the output buffer and m_axis side
            own = synth[fam0].get("instances") or {}
            parts = [own[k] for k in ("top", "u_out_buf", "u_out") if k in own]
            s = {key: sum(p[key] for p in parts) for key in ("dsp", "bram18", "lut", "ff")} if parts else None
        what = "output buffer, m_axis" if lat.get("schedule") == "dataflow" else "AXI-Stream, collector"
        lrows.append(("top", what, "", 0, s and s["dsp"], 0, s and s["bram18"], t["lut"],
                      s and s["lut"], t["ff"], s and s["ff"]))
    out.append(f"<p>Per layer: cycles (exact) and resources, estimate against Yosys"
               f"{' (' + fam0 + ')' if fam0 else ''}.</p>")
    out.append(_table(["layer", "kind", "cycles", "DSP est", "DSP syn", "BRAM18 est", "BRAM18 syn", "LUT est",
                       "LUT syn", "FF est", "FF syn"], lrows))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.8), constrained_layout=True)
    stages = lat.get("per_stage") or []
    if stages:  # dataflow: every stage's busy cycles per inference, the streams included
        names, cyc = [st["name"] for st in stages], [st["cycles"] for st in stages]
        ax.bar(names, cyc, color=["#4c78a8" if c < max(cyc) else "#e45756" for c in cyc])
        ax.axhline(lat["ii_cycles"], color="#444", lw=1, ls="--", label=f"II {lat['ii_cycles']:,}")
        ax.legend(fontsize=8, loc="upper right")
        ax.set_ylabel("busy cycles per inference")
        ax.set_title(f"dataflow stages (red: binding); {lat.get('stream_in', 1)} value(s) per input beat, "
                     f"{lat.get('stream_out', 1)} per output beat", fontsize=10)
        out.append(_img(_png(fig), "busy cycles per dataflow stage"))
    else:
        ax.bar([l["name"] for l in lat["per_layer"]], [l["cycles"] for l in lat["per_layer"]], color="#f58518")
        ax.set_ylabel("cycles per inference")
        ax.set_title("where the cycles go (sequential schedule)", fontsize=10)
        out.append(_img(_png(fig), "cycles per layer"))
    return out


def _timing_rows(timing: dict) -> list[str]:
    """``kofn synth``'s timing: nextpnr's post-route result, Yosys sta's logic-only path."""
    rows = []
    for fam, t in timing.items():
        if fam == "estimate":
            cp = t["critical"]
            rows.append(("ecp5 -6, kofn's model (before synthesis)", f"{t['fmax_mhz']:.1f}", "", "",
                         f"{t['period_ns']}", cp["instance"],
                         f"{cp['stage']}: {cp['levels']} LUT levels, {cp['carry']}-bit carry, fan-out {cp['fanout']}"))
        elif "fmax_mhz" in t:
            cp = t.get("critical_path") or {}
            rows.append((f"{fam} {t['device']} -{t['speed']} (nextpnr, post-route)", f"{t['fmax_mhz']:.1f}",
                         f"{t['clock_mhz']:g}", "met" if t["met"] else "FAILED", f"{cp.get('delay_ns', '-')} "
                         f"({cp.get('routing_ns', '-')} routing)", cp.get("module", "-"),
                         f"{cp.get('from', '-')} → {cp.get('to', '-')}"))
        elif t.get("ns"):
            rows.append((f"{fam} (Yosys sta, logic only, no routing)", f"≤ {t['mhz_logic_only']:.1f}", "", "",
                         f"{t['ns']}", t["module"], f"{t['source']} → {t['sink']}"))
    if not rows:
        return []
    return ["<p>Timing: Fmax in MHz against the constraint; the critical path's delay in ns, the design "
            "instance holding most of it, source and sink.</p>",
            _table(["timing", "Fmax MHz", "constraint MHz", "verdict", "path ns", "instance", "path"], rows)]


def _err(e, s) -> str:
    if e == s:
        return "exact"
    return f"{(e - s) / s * 100:+.1f} %" if s else "-"


def _memory_section(r: dict) -> list[str]:
    mem = r.get("memory", {})
    per = mem.get("per_layer") or []
    if not per:
        return []
    rows = [(p["name"], p["rom_bits"], p["csr_bits"], p["dense_bits"], f"{p['dense_bits'] / max(1, p['rom_bits']):.2f}x",
             f"{p['csr_bits'] / max(1, p['rom_bits']):.2f}x") for p in per]
    rows.append(("total", mem["rom_bits"], mem["csr_bits"], mem["dense_bits"],
                 f"{mem['dense_bits'] / max(1, mem['rom_bits']):.2f}x", f"{mem['csr_bits'] / max(1, mem['rom_bits']):.2f}x"))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3), constrained_layout=True)
    x = np.arange(len(per))
    for j, (key, label, col) in enumerate((("rom_bits", "kofn fixed stride", "#4c78a8"), ("csr_bits", "CSR", "#e45756"),
                                            ("dense_bits", "dense", "#bab0ac"))):
        ax.bar(x + (j - 1) * 0.27, [p[key] for p in per], 0.27, label=label, color=col)
    ax.set_xticks(x, [p["name"] for p in per])
    ax.set_ylabel("bits")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return ["<h2>Weight storage</h2>",
            '<p class="note">kofn stores exactly k indices and k weights per neuron (no row pointers; lane padding '
            "included).  CSR at the same sparsity adds a row pointer per neuron; dense stores every weight.  "
            "Biases are counted in all three.</p>",
            _table(["layer", "kofn ROM bits", "CSR bits", "dense bits", "dense / kofn", "CSR / kofn"], rows),
            _img(_png(fig), "storage bits")]


def write_flow_html(rep: "Report", build_dir: Path) -> Path:
    """Render ``build_dir/report.html`` from a flow :class:`kofn.app.report.Report` alone
    (its JSON figures, its IR for the masks, its training history for the curves)."""
    build = Path(build_dir)
    report = rep.to_json()
    body = [f"<h1>kofn report: {html.escape(report['name'])}</h1>",
            f'<p class="sub">Top module <code>{html.escape(report["top"])}</code>, kofn {html.escape(report["kofn_version"])}'
            f"{', dataset ' + html.escape(str(report['dataset'])) if report.get('dataset') else ''}.</p>"]
    for section in (_accuracy_section(report), _bitexact_section(report), _hardware_section(report),
                    _memory_section(report), _mask_section(rep.model), _training_section(rep.history, report)):
        body += section
    path = build / "report.html"
    tmp = path.with_name(".report.html.tmp")
    tmp.write_text(_page(f"kofn report: {report['name']}", body))
    tmp.replace(path)
    return path


def write_explore_html(doc: dict, out_dir: Path, pick_text: str) -> Path:
    """Render ``out_dir/report.html`` from ``explore.json``'s contents (``explore.png`` embedded);
    ``pick_text`` describes the pick (:func:`kofn.app.pareto.describe_pick`)."""
    out = Path(out_dir)
    png = out / "explore.png"
    body = [f"<h1>kofn explore: {html.escape(doc['name'])}</h1>",
            f'<p class="sub">{len(doc["points"])} designs, {len(doc["pareto"])} on the Pareto front '
            f"(accuracy × DSP × LUT × latency); resources estimated for {html.escape(doc['family'])}, cycles exact.</p>"]
    if png.exists():
        body += ["<h2>Pareto front</h2>",
                 _img("data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii"), "Pareto plot")]
    t = doc.get("targets") or {}
    body += ["<h2>Pick</h2>",
             f"<p>Targets: {html.escape(', '.join(f'{k} = {v}' for k, v in t.items()) or 'none')}; "
             f"objective: {html.escape(doc['objective'])}.</p>", f"<p><b>{html.escape(pick_text)}</b></p>"]
    sw = doc["sweep"]
    body += ["<h2>Sweep</h2>",
             f"<p>k/n {', '.join(sw['ratios'])}; weight bits {sw['weight_bits']}; activation bits {sw['act_bits']}; "
             f"lanes {sw['lanes']}; {sw['epochs']} epochs of {html.escape(sw['method'])}"
             f"{' from ' + html.escape(sw['from_build']) if sw.get('from_build') else ''}; {sw['seconds']} s with "
             f"{sw['jobs']} workers.</p>"]
    rows = [("★" if i == doc["pick"]["index"] else ("●" if p["pareto"] else ""), p["ratio"], p["weight_bits"],
             p["act_bits"], p["lanes"], p["accuracy"], p["dsp"], p["bram18"], p["lut"], p["ff"], p["latency_cycles"])
            for i, p in enumerate(doc["points"])]
    body.append(_table(["", "k/n", "w bits", "a bits", "P", "accuracy", "DSP", "BRAM18", "LUT", "FF", "cycles"], rows))
    body.append('<p class="note">★ picked, ● on the Pareto front.</p>')
    path = out / "report.html"
    path.write_text(_page(f"kofn explore: {doc['name']}", body))
    return path
