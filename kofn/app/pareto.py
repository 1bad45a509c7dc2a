"""The choice among a sweep's designs (``kofn explore``): the Pareto front on accuracy x DSP x
LUT x latency, the design picked for the targets and the constraint that binds, and the plot.

Pure functions of the points (dicts with ``accuracy``, ``dsp``, ``lut``, ``ff``, ``bram18``,
``latency_cycles``, ``lanes`` and, on dataflow builds, ``fmax_mhz``), which
:func:`kofn.app.explore.run_explore` computes; nothing here trains or plans.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["OBJECTIVES", "Targets", "pareto_front", "pick", "describe_pick", "plot_pareto"]

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
