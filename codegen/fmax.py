"""Pre-synthesis clock frequency: kofn's Fmax model, fitted to nextpnr-ecp5.

Each dataflow stage lists its register-to-register paths before anything is synthesized
(``Handler.df_paths``: :class:`~kofn.codegen.cells.StagePath`, with LUT ``levels``, the
longest ``carry`` chain in bits and the ``fanout`` of the widest driver, by the rules in each
handler's docstring).  A path's delay, in ns, is

    delay = base + level * levels + carry * carry_bits / 8 + fanout * log2(fanout)

and the design's clock period is the slowest path's delay plus ``size * log2(LUTs / 1000)``
(routing stretches as the design grows; LUTs: the resource estimate's).  The five coefficients
are fitted (non-negative, on the relative error of the period) to nextpnr-ecp5's post-route
Fmax on an LFE5U-85F, speed 6, by ``benchmarks/calibrate_fmax.py``, which also measures the
model's error on designs held out of the fit; they live in
:mod:`kofn.codegen.fmax_coefficients`.  The model covers the dataflow schedule (pipelined
cores) on ECP5; other schedules and families get no prediction (``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .cells import StagePath, vecbuf_write_path
from .fmax_coefficients import COEFFICIENTS
from .kinds import handler

__all__ = ["StagePath", "DesignPaths", "FmaxEstimate", "design_paths", "path_delay", "stage_delays", "predict_period",
           "estimate_fmax", "fit", "COEFFICIENTS"]

PARAMS = ("base", "level", "carry", "fanout", "size")


@dataclass(frozen=True)
class DesignPaths:
    paths: tuple[StagePath, ...]
    lut: int  # the resource estimate's LUTs (the size term)


@dataclass(frozen=True)
class FmaxEstimate:
    fmax_mhz: float
    period_ns: float
    critical: StagePath  # the slowest path the model sees
    stages: tuple[tuple[StagePath, float], ...]  # every path with its delay, ns

    def as_dict(self) -> dict:
        """report.json's ``timing.estimate``: the Fmax, the period and the slowest path (its
        delay, size term included, is the period)."""
        return {"fmax_mhz": round(self.fmax_mhz, 1), "period_ns": round(self.period_ns, 3),
                "critical": self.critical.as_dict(), "family": "ecp5",
                "model": "kofn.codegen.fmax (fitted to nextpnr-ecp5, LFE5U-85F speed 6)"}


def design_paths(model, plans, schedule: str = "dataflow", stream_in: int = 1, stream_out: int = 1) -> DesignPaths | None:
    """Every stage's paths of a build (``None`` unless the schedule is dataflow)."""
    if schedule != "dataflow":
        return None
    from .estimate import resources

    paths: list[StagePath] = []
    values = stream_in
    for p in plans:
        h = handler(p.layer)
        paths += h.df_paths(p, values)
        if h.has_core:
            values = 1
    o = model.output_fmt
    paths.append(vecbuf_write_path("u_out_buf", model.n_outputs, o.width, 1))  # the results' buffer
    res = resources(model, plans, "xc7", schedule, stream_in, stream_out)
    return DesignPaths(tuple(paths), res.lut)


def path_delay(path: StagePath, coef: dict[str, float]) -> float:
    return (coef["base"] + coef["level"] * path.levels + coef["carry"] * path.carry / 8
            + coef["fanout"] * math.log2(max(1, path.fanout)))


def stage_delays(parts: DesignPaths, coef: dict[str, float]) -> tuple[tuple[StagePath, float], ...]:
    """Every path with its delay in ns, the design's size term included."""
    size = coef["size"] * max(0.0, math.log2(max(1, parts.lut) / 1000))
    return tuple((p, path_delay(p, coef) + size) for p in parts.paths)


def predict_period(parts: DesignPaths, coef: dict[str, float] | None = None) -> tuple[float, str]:
    """``(period ns, "instance: stage" of the slowest path)`` under ``coef`` (default: the fitted)."""
    worst, period = max(stage_delays(parts, coef or COEFFICIENTS["ecp5"]), key=lambda s: s[1])
    return period, f"{worst.instance}: {worst.stage}"


def estimate_fmax(model, plans, schedule: str = "dataflow", stream_in: int = 1, stream_out: int = 1,
                  family: str = "ecp5") -> FmaxEstimate | None:
    """The model's post-route Fmax of a build (``None`` where it has no model: see the module doc)."""
    if family not in COEFFICIENTS:
        return None
    parts = design_paths(model, plans, schedule, stream_in, stream_out)
    if parts is None or not parts.paths:
        return None
    stages = stage_delays(parts, COEFFICIENTS[family])
    crit, period = max(stages, key=lambda s: s[1])
    return FmaxEstimate(1000.0 / period, period, crit, stages)


def fit(rows: Sequence[tuple[DesignPaths, float]]) -> dict[str, dict[str, float]]:
    """Coefficients (``{"ecp5": {param: ns}}``) fitted to ``(paths, measured period ns)`` rows:
    non-negative least squares on the period's relative error, the max over paths included
    (scipy's ``least_squares``, from a start where every path class counts)."""
    import numpy as np
    from scipy.optimize import least_squares

    def resid(x):
        c = dict(zip(PARAMS, x))
        return np.array([predict_period(parts, c)[0] / y - 1.0 for parts, y in rows])

    best = None
    for x0 in ([1.0, 0.5, 0.2, 0.2, 0.3], [2.0, 0.3, 0.1, 0.3, 0.5], [3.0, 0.2, 0.3, 0.1, 0.2]):
        r = least_squares(resid, x0, bounds=(0.0, np.inf))
        if best is None or r.cost < best.cost:
            best = r
    return {"ecp5": {k: round(float(v), 4) for k, v in zip(PARAMS, best.x)}}
