"""The build report: one frozen :class:`Report`, the only thing the writers read.

``report.json`` is :meth:`Report.to_json`, ``report.md`` is :func:`render_markdown`,
``report.html`` (:mod:`kofn.app.report_html`) and the IP's README read the same object.
:meth:`Report.load` reads a build folder back (with its IR and training history, for the
HTML page's mask heatmaps and curves); :meth:`Report.with_synth` is how ``kofn synth``
adds its figures, never by editing a dict in place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core import ir as ir_mod
from ..core.ir import Model
from .outdir import write_atomic

__all__ = ["Accuracy", "SimCheck", "LatencyFigures", "Report", "resources_report", "render_markdown", "write_json_atomic"]


@dataclass(frozen=True)
class Accuracy:
    """Test-split accuracy: the float model (``None`` for an imported quantized model), the
    integer reference, and the simulated hardware's own outputs where they ran."""

    float: float | None
    integer: float
    test_images: int
    hls_on_test: float | None = None
    rtl_on_test: float | None = None

    def to_json(self) -> dict:
        d = {"float": self.float, "integer": self.integer, "test_images": self.test_images}
        d.update({k: v for k, v in (("hls_on_test", self.hls_on_test), ("rtl_on_test", self.rtl_on_test))
                  if v is not None})
        return d


@dataclass(frozen=True)
class SimCheck:
    """One simulation against the reference: vectors streamed and mismatching output codes."""

    vectors: int
    mismatches: int
    tlast_errors: int | None = None  # RTL only
    sim_cycles: int | None = None  # RTL only
    # RTL only: the simulation phase (build excluded): cycles simulated, the simulator's wall seconds
    # for them (time 0 to the bench's done) and for its whole process (start-up and cocotb included)
    rtl_cycles: int | None = None
    rtl_seconds: float | None = None
    rtl_run_seconds: float | None = None

    def to_json(self) -> dict:
        d = {"vectors": self.vectors, "mismatches": self.mismatches}
        if self.tlast_errors is not None:
            d.update(tlast_errors=self.tlast_errors, sim_cycles=self.sim_cycles)
        if self.rtl_cycles is not None:
            d.update(rtl_cycles=self.rtl_cycles, rtl_seconds=self.rtl_seconds, rtl_run_seconds=self.rtl_run_seconds,
                     rtl_cycles_per_s=round(self.rtl_cycles / self.rtl_seconds) if self.rtl_seconds else None)
        return d


@dataclass(frozen=True)
class LatencyFigures:
    """Estimated (exact, analytical) and measured (RTL simulation) cycles."""

    estimated_cycles: int
    ii_cycles: int
    per_layer: tuple[Mapping[str, Any], ...]
    throughput_per_s: float
    clock_mhz: float
    measured_cycles: int | None = None
    measured_ii_cycles: int | float | None = None
    schedule: str = "sequential"
    stream_in: int = 1  # values per s_axis beat
    stream_out: int = 1  # values per m_axis beat
    per_stage: tuple[Mapping[str, Any], ...] = ()  # dataflow: busy cycles per inference, streams included

    def to_json(self) -> dict:
        return {"estimated_cycles": self.estimated_cycles, "measured_cycles": self.measured_cycles,
                "ii_cycles": self.ii_cycles, "measured_ii_cycles": self.measured_ii_cycles,
                "per_layer": [dict(p) for p in self.per_layer], "throughput_per_s": self.throughput_per_s,
                "clock_mhz": self.clock_mhz, "schedule": self.schedule, "stream_in": self.stream_in,
                "stream_out": self.stream_out, "per_stage": [dict(p) for p in self.per_stage]}


@dataclass(frozen=True)
class Report:
    """Everything a build proved and estimated.  ``memory`` and ``resources`` are the
    estimator's figures as JSON-ready mappings (``resources`` gains ``synth`` and
    ``by_family`` after ``kofn synth``); ``model`` and ``history`` ride along for the
    HTML page and are not part of ``report.json``."""

    kofn_version: str
    name: str
    top: str
    layers: tuple[Mapping[str, Any], ...]
    latency: LatencyFigures
    memory: Mapping[str, Any]
    resources: Mapping[str, Any]
    bitexact: Mapping[str, SimCheck] = field(default_factory=dict)
    dataset: str | None = None
    source_model: str | None = None
    accuracy: Accuracy | None = None
    training: Mapping[str, Any] | None = None
    lint: str | None = None  # "clean" or Verilator's warnings; None when the RTL was not linted
    seconds: Mapping[str, float] = field(default_factory=dict)
    efficiency: Mapping[str, Any] | None = None  # macs, multipliers, ii, mac_efficiency, limit_ii
    timing: Mapping[str, Any] | None = None  # kofn synth: per family, Fmax (ecp5) or logic-only path (xc7)
    formal: Mapping[str, Any] | None = None  # kofn prove: per property, how it was checked and the outcome
    model: Model | None = field(default=None, compare=False, repr=False)
    history: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        d: dict[str, Any] = {"kofn_version": self.kofn_version, "name": self.name, "top": self.top}
        if self.dataset is not None:
            d["dataset"] = self.dataset
        if self.source_model is not None:
            d["source_model"] = self.source_model
        if self.accuracy is not None:
            d["accuracy"] = self.accuracy.to_json()
        if self.training is not None:
            d["training"] = dict(self.training)
        d.update(layers=[dict(l) for l in self.layers], bitexact={k: v.to_json() for k, v in self.bitexact.items()},
                 latency=self.latency.to_json(), memory=dict(self.memory), resources=dict(self.resources))
        if self.efficiency is not None:
            d["efficiency"] = dict(self.efficiency)
        if self.timing is not None:
            d["timing"] = dict(self.timing)
        if self.formal is not None:
            d["formal"] = dict(self.formal)
        if self.lint is not None:
            d["lint"] = {"verilator_wall": self.lint}
        d["seconds"] = dict(self.seconds)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], model: Model | None = None, history: Mapping | None = None) -> "Report":
        acc = d.get("accuracy")
        lat = dict(d["latency"])
        return cls(
            kofn_version=d["kofn_version"], name=d["name"], top=d["top"], layers=tuple(d["layers"]),
            latency=LatencyFigures(**{**lat, "per_layer": tuple(lat["per_layer"]),
                                      "per_stage": tuple(lat.get("per_stage", ()))}),
            efficiency=d.get("efficiency"), timing=d.get("timing"), formal=d.get("formal"),
            memory=d["memory"], resources=d["resources"],
            bitexact={k: SimCheck(**{f: x for f, x in v.items() if f != "rtl_cycles_per_s"})
                      for k, v in d.get("bitexact", {}).items()},
            dataset=d.get("dataset"), source_model=d.get("source_model"),
            accuracy=Accuracy(**acc) if acc else None, training=d.get("training"),
            lint=(d.get("lint") or {}).get("verilator_wall"), seconds=d.get("seconds", {}),
            model=model, history=history,
        )

    @classmethod
    def load(cls, build_dir: str | Path) -> "Report":
        """Read ``build_dir/report.json``, with the build's IR and training history when present."""
        build = Path(build_dir)
        doc = json.loads((build / "report.json").read_text())
        missing = [k for k in ("kofn_version", "name", "top", "layers", "latency", "memory", "resources") if k not in doc]
        if missing:
            raise ValueError(f"{build / 'report.json'} is not a kofn flow report (it lacks {', '.join(missing)})")
        model = ir_mod.load(build / "model") if (build / "model" / "model.json").exists() else None
        hp = build / "model" / "history.json"
        return cls.from_json(doc, model, json.loads(hp.read_text()) if hp.exists() else None)

    def with_synth(self, synth: Mapping[str, Mapping], by_family: Mapping[str, Mapping]) -> "Report":
        """This report with ``kofn synth``'s Yosys counts (``synth``, per family, without the raw
        cell lists) and the estimate per family (``by_family``) added to ``resources``."""
        res = dict(self.resources)
        res["synth"] = {**res.get("synth", {}), **{f: {k: v for k, v in s.items() if k != "cells"}
                                                   for f, s in synth.items()}}
        res["by_family"] = {**res.get("by_family", {}), **by_family}
        return dataclasses.replace(self, resources=res)

    def with_timing(self, timing: Mapping[str, Mapping]) -> "Report":
        """This report with ``kofn synth``'s timing per family merged into ``timing``: for ``ecp5``
        the post-route result (:class:`kofn.codegen.pnr.PnrResult`) plus the throughput at the
        achieved Fmax; for ``xc7`` Yosys ``sta``'s logic-only path (no routing)."""
        merged = dict(self.timing or {})
        for fam, t in timing.items():
            t = dict(t)
            if "fmax_mhz" in t:
                t["throughput_per_s_at_fmax"] = round(t["fmax_mhz"] * 1e6 / self.latency.ii_cycles, 1)
                t["throughput_per_s_at_clock"] = self.latency.throughput_per_s
            merged[fam] = t
        return dataclasses.replace(self, timing=merged)

    def with_formal(self, formal: Mapping[str, Any]) -> "Report":
        """This report with ``kofn prove``'s result (:meth:`kofn.app.prove.Proof.to_json`)."""
        return dataclasses.replace(self, formal=dict(formal))

    def write(self, build_dir: str | Path) -> None:
        """``report.json`` and ``report.md`` into ``build_dir``, each replaced atomically."""
        build = Path(build_dir)
        write_json_atomic(build / "report.json", self.to_json())
        write_atomic(build / "report.md", render_markdown(self.to_json()))




def write_json_atomic(path: Path, doc: Any) -> None:
    """``json.dumps(doc, indent=2)`` into ``path`` through a temporary file and a rename."""
    write_atomic(Path(path), json.dumps(doc, indent=2) + "\n")


def resources_report(res, family: str) -> dict:
    """The ``resources`` entry of report.json for an estimate (:class:`kofn.codegen.Resources`)."""
    return {"family": family, "dsp": res.dsp, "bram18": res.bram18, "ramb18": res.ramb18, "ramb36": res.ramb36,
            "lut": res.lut, "ff": res.ff, "per_layer": [dataclasses.asdict(l) for l in res.layers],
            "top": dataclasses.asdict(res.top), "model": "calibrated against Yosys synth_xilinx (see README)"}


def render_markdown(r: Mapping[str, Any]) -> str:
    """A human-readable summary of a report (its JSON form)."""
    lines = [f"# kofn report: {r['name']}", "", f"Top module `{r['top']}`, kofn {r['kofn_version']}.", ""]
    acc = r.get("accuracy")
    if acc:
        lines += ["## Accuracy", "", "| float | integer |", "|---|---|",
                  f"| {'-' if acc['float'] is None else format(acc['float'], '.4f')} | {acc['integer']:.4f} |", ""]
    lines += ["## Bit-exactness", "", "| simulation | vectors | mismatches |", "|---|---|---|"]
    for k, v in r["bitexact"].items():
        lines.append(f"| {k} | {v['vectors']} | {v['mismatches']} |")
    rtl = r["bitexact"].get("rtl", {})
    if rtl.get("rtl_seconds"):
        lines += ["", f"RTL simulation: {rtl['rtl_cycles']:,} cycles in {rtl['rtl_seconds']:.3f} s "
                      f"({rtl['rtl_cycles'] / rtl['rtl_seconds'] / 1e6:.2f} M cycles/s; the simulator process took "
                      f"{rtl['rtl_run_seconds']:.2f} s with its start-up)."]
    lat = r["latency"]
    lines += ["", "## Latency", "", "| | estimated | measured |", "|---|---|---|",
              f"| cycles (first input beat to last output beat) | {lat['estimated_cycles']} | {lat['measured_cycles']} |",
              f"| initiation interval | {lat['ii_cycles']} | {lat['measured_ii_cycles']} |", "",
              f"Throughput at {lat['clock_mhz']} MHz: {lat['throughput_per_s']:.0f} inferences/s "
              f"({lat.get('schedule', 'sequential')} schedule, {lat.get('stream_in', 1)} value(s) per input beat, "
              f"{lat.get('stream_out', 1)} per output beat).", ""]
    eff = r.get("efficiency")
    if eff:
        lines += [f"MAC efficiency {eff['mac_efficiency']:.2f}: {eff['macs']:,} kept MACs per inference on "
                  f"{eff['multipliers']} multipliers at II {eff['ii']:,} (the multipliers' limit: II {eff['limit_ii']:,}).", ""]
    for fam, t in (r.get("timing") or {}).items():
        if fam == "estimate":
            cp = t["critical"]
            lines += [f"Fmax estimate (kofn's model, before synthesis; ECP5-85 speed 6 after place and route): "
                      f"{t['fmax_mhz']:.1f} MHz, slowest path `{cp['instance']}` {cp['stage']} "
                      f"({cp['levels']} LUT levels, {cp['carry']}-bit carry, fan-out {cp['fanout']}); "
                      f"{t['throughput_per_s_at_fmax']:,.0f} inferences/s at that clock.", ""]
        elif "fmax_mhz" in t:
            cp = t.get("critical_path") or {}
            lines += [f"Timing ({fam} {t['device']} speed {t['speed']}, nextpnr post-route): {t['verdict']}; "
                      f"{t['throughput_per_s_at_fmax']:,.0f} inferences/s at that clock. Critical path "
                      f"{cp.get('delay_ns', '-')} ns ({cp.get('routing_ns', '-')} ns routing) in `{cp.get('module', '-')}`, "
                      f"{cp.get('from', '-')} to {cp.get('to', '-')}. LUT4 {t['lut4']:,}, FF {t['ff']:,}, "
                      f"MULT18X18D {t['mult18']}, DP16KD {t['dp16kd']}.", ""]
        elif t.get("ns"):
            lines += [f"Timing ({fam}, Yosys sta): longest logic-only path {t['ns']} ns "
                      f"(at most {t['mhz_logic_only']} MHz, routing excluded) in `{t['module']}`.", ""]
    if lat.get("per_stage"):
        lines += ["| stage | busy cycles per inference |", "|---|---|"]
        lines += [f"| {st['name']} | {st['cycles']:,} |" for st in lat["per_stage"]]
        lines.append("")
    lines += ["| layer | kind | n | k | rows | lanes P | steps S | cycles |", "|---|---|---|---|---|---|---|---|"]
    for l, c in zip(r["layers"], lat["per_layer"]):
        lines.append(_markdown_layer_row(l, c["cycles"]))
    res, mem = r["resources"], r["memory"]
    lines += ["", f"## Resources (estimate, {res.get('family', 'xc7')})", "", "| DSP | BRAM18 | LUT | FF |",
              "|---|---|---|---|", f"| {res['dsp']} | {res['bram18']} | {res['lut']} | {res['ff']} |", "",
              f"ROM bits: {mem['rom_bits']} (the same layers stored dense: {mem['dense_bits']}, "
              f"{mem['dense_bits'] / max(1, mem['rom_bits']):.2f}x)."
              + (f" Line buffers: {mem['line_buffer_bits']} bits; window registers: {mem['window_bits']} bits."
                 if mem.get("line_buffer_bits") else ""), ""]
    return "\n".join(lines)


def _markdown_layer_row(l: Mapping[str, Any], cycles: int) -> str:
    if "n" not in l:  # a layer without a MAC core (pooling)
        return f"| {l['name']} | {l['kind']} {'x'.join(map(str, l['in_shape']))} | | | | | | {cycles} |"
    kind = l["kind"]
    if "kernel" in l:
        kind = f"{kind} {l['kernel']}x{l['kernel']}/{l['stride']}, {l['granularity']}"
    if l.get("banks", 1) > 1:
        kind = f"{kind}, {l['banks']} banks"
    return f"| {l['name']} | {kind} | {l['n']} | {l['k']} | {l['rows']} | {l['lanes']} | {l['steps']} | {cycles} |"
