"""Framework-free intermediate representation of a k-out-of-n network.

This is the export boundary: training turns an ``nn.Module`` into a :class:`Model`,
and everything downstream (packing, templates, simulation, estimates) reads only
this.  It holds frozen dataclasses and numpy integer arrays, never torch objects.

On disk a model is ``model.json`` (structure and formats) plus ``model.npz``
(the integer arrays), see :func:`save` and :func:`load`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fixed import AccumulatorFormat, FixedFormat, accumulator_format

__all__ = ["DenseLayer", "Model", "save", "load", "IR_VERSION"]

IR_VERSION = 1


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.int64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """A dense layer where every output neuron keeps exactly ``k`` of its ``n`` inputs.

    ``indices[r]`` lists, ascending, the inputs row ``r`` keeps; ``weights[r, j]`` is
    the integer code (``weight_fmt``) of the weight on input ``indices[r, j]``.
    """

    name: str
    n: int
    indices: np.ndarray  # [rows, k] int64, ascending per row, unique
    weights: np.ndarray  # [rows, k] int64 codes of weight_fmt
    bias: np.ndarray  # [rows] int64 codes of bias_fmt
    input_fmt: FixedFormat
    weight_fmt: FixedFormat
    bias_fmt: FixedFormat
    output_fmt: FixedFormat
    relu: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", _frozen(self.indices))
        object.__setattr__(self, "weights", _frozen(self.weights))
        object.__setattr__(self, "bias", _frozen(self.bias))
        idx, w, b = self.indices, self.weights, self.bias
        where = f"layer {self.name!r}"
        if idx.ndim != 2 or w.shape != idx.shape:
            raise ValueError(f"{where}: indices {idx.shape} and weights {w.shape} must both be [rows, k]")
        if b.shape != (idx.shape[0],):
            raise ValueError(f"{where}: bias shape {b.shape} != ({idx.shape[0]},)")
        if not 1 <= self.k <= self.n:
            raise ValueError(f"{where}: k={self.k} must be in 1..n={self.n}")
        if idx.min() < 0 or idx.max() >= self.n:
            raise ValueError(f"{where}: an index is outside 0..{self.n - 1}")
        if self.k > 1 and np.any(np.diff(idx, axis=1) <= 0):
            raise ValueError(f"{where}: indices must be strictly ascending in every row")
        for arr, fmt, what in ((w, self.weight_fmt, "weight"), (b, self.bias_fmt, "bias")):
            if arr.size and (arr.min() < fmt.min_int or arr.max() > fmt.max_int):
                raise ValueError(f"{where}: a {what} code is outside {fmt.describe()}")
        if not self.weight_fmt.signed or not self.bias_fmt.signed:
            raise ValueError(f"{where}: weight and bias formats must be signed")
        self.accumulator  # validates the bias alignment and width

    @property
    def rows(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    @property
    def accumulator(self) -> AccumulatorFormat:
        return accumulator_format(self.input_fmt, self.weight_fmt, self.bias_fmt, self.k)

    def dense_weights(self) -> np.ndarray:
        """The ``[rows, n]`` integer weight matrix with zeros where the mask prunes."""
        full = np.zeros((self.rows, self.n), dtype=np.int64)
        np.put_along_axis(full, self.indices, self.weights, axis=1)
        return full

    def to_json(self) -> dict:
        return {
            "kind": "dense",
            "name": self.name,
            "n": self.n,
            "k": self.k,
            "rows": self.rows,
            "relu": self.relu,
            "input_fmt": self.input_fmt.to_dict(),
            "weight_fmt": self.weight_fmt.to_dict(),
            "bias_fmt": self.bias_fmt.to_dict(),
            "output_fmt": self.output_fmt.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class Model:
    """A chain of k-out-of-n layers; ``layers[i].output_fmt`` feeds ``layers[i+1]``."""

    name: str
    layers: tuple[DenseLayer, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a model needs at least one layer")
        for prev, cur in zip(self.layers, self.layers[1:]):
            if cur.n != prev.rows:
                raise ValueError(f"layer {cur.name!r} has n={cur.n} but {prev.name!r} has {prev.rows} outputs")
            if cur.input_fmt != prev.output_fmt:
                raise ValueError(
                    f"layer {cur.name!r} reads {cur.input_fmt.describe()} but "
                    f"{prev.name!r} writes {prev.output_fmt.describe()}"
                )

    @property
    def input_fmt(self) -> FixedFormat:
        return self.layers[0].input_fmt

    @property
    def output_fmt(self) -> FixedFormat:
        return self.layers[-1].output_fmt

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].rows


def save(model: Model, directory: str | Path) -> None:
    """Write ``model.json`` and ``model.npz`` into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    doc = {
        "ir_version": IR_VERSION,
        "name": model.name,
        "meta": model.meta,
        "layers": [layer.to_json() for layer in model.layers],
    }
    arrays = {}
    for i, layer in enumerate(model.layers):
        arrays[f"l{i}_indices"] = layer.indices
        arrays[f"l{i}_weights"] = layer.weights
        arrays[f"l{i}_bias"] = layer.bias
    (d / "model.json").write_text(json.dumps(doc, indent=2) + "\n")
    np.savez(d / "model.npz", **arrays)


def load(directory: str | Path) -> Model:
    """Read a model written by :func:`save`."""
    d = Path(directory)
    doc = json.loads((d / "model.json").read_text())
    if doc.get("ir_version") != IR_VERSION:
        raise ValueError(f"{d / 'model.json'}: IR version {doc.get('ir_version')} is not {IR_VERSION}")
    with np.load(d / "model.npz") as z:
        layers = []
        for i, ld in enumerate(doc["layers"]):
            if ld["kind"] != "dense":
                raise ValueError(f"unknown layer kind {ld['kind']!r}")
            layers.append(
                DenseLayer(
                    name=ld["name"],
                    n=ld["n"],
                    indices=z[f"l{i}_indices"],
                    weights=z[f"l{i}_weights"],
                    bias=z[f"l{i}_bias"],
                    input_fmt=FixedFormat.from_dict(ld["input_fmt"]),
                    weight_fmt=FixedFormat.from_dict(ld["weight_fmt"]),
                    bias_fmt=FixedFormat.from_dict(ld["bias_fmt"]),
                    output_fmt=FixedFormat.from_dict(ld["output_fmt"]),
                    relu=ld["relu"],
                )
            )
    return Model(name=doc["name"], layers=tuple(layers), meta=doc.get("meta", {}))
