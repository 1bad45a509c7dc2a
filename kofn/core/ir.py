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

from .fixed import FixedFormat
from .names import check_identifier
from .ir_layers import Conv2dLayer, DenseLayer, MaxPool2dLayer

__all__ = [
    "DenseLayer",
    "Conv2dLayer",
    "MaxPool2dLayer",
    "Layer",
    "Model",
    "save",
    "load",
    "IR_VERSION",
]

IR_VERSION = 2  # 2: Conv2d and MaxPool2d layers, input_shape


Layer = DenseLayer | Conv2dLayer | MaxPool2dLayer


@dataclass(frozen=True, eq=False)
class Model:
    """A chain of layers; ``layers[i].output_fmt`` feeds ``layers[i+1]``.

    Convolution and pooling layers come first (image in, image out, HWC); the first
    dense layer reads the last image flattened in HWC order (the stream order), and
    only dense layers follow it.
    """

    name: str
    layers: tuple[Layer, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a model needs at least one layer")
        if self.layers[-1].image:
            raise ValueError("the last layer must be dense (flatten the image into a dense classifier)")
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        for prev, cur in zip(self.layers, self.layers[1:]):
            if cur.image and not prev.image:
                raise ValueError(f"layer {cur.name!r} ({cur.kind}) follows a dense layer; images come before vectors")
            if cur.image and tuple(cur.in_shape) != tuple(prev.out_shape):
                raise ValueError(f"layer {cur.name!r} expects an image {cur.in_shape} but {prev.name!r} makes {prev.out_shape}")
            if cur.in_size != prev.out_size:
                raise ValueError(f"layer {cur.name!r} has n={cur.in_size} but {prev.name!r} has {prev.out_size} outputs")
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
    def input_shape(self) -> tuple[int, ...]:
        """``(H, W, C)`` for an image model, ``(n,)`` for a vector model."""
        first = self.layers[0]
        return tuple(first.in_shape) if first.image else (first.n,)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].in_size

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].rows

    @property
    def image_layers(self) -> tuple[Layer, ...]:
        """The convolution and pooling layers (a prefix of ``layers``)."""
        return tuple(l for l in self.layers if l.image)

    @property
    def dense_layers(self) -> tuple[DenseLayer, ...]:
        return tuple(l for l in self.layers if not l.image)


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
        if not layer.weighted:
            continue
        arrays[f"l{i}_indices"] = layer.indices
        arrays[f"l{i}_weights"] = layer.weights
        arrays[f"l{i}_bias"] = layer.bias
    (d / "model.json").write_text(json.dumps(doc, indent=2) + "\n")
    np.savez(d / "model.npz", **arrays)


def load(directory: str | Path) -> Model:
    """Read a model written by :func:`save`, checking it as untrusted input: every layer
    validates itself (shapes, k-of-n rows, codes within their formats), and the model's and
    layers' names must be identifiers (they name files and generated modules).  Any defect is
    a :class:`ValueError` naming the file."""
    d = Path(directory)
    doc = json.loads((d / "model.json").read_text())
    if not isinstance(doc, dict) or doc.get("ir_version") not in (1, IR_VERSION):  # 1: dense-only files, same layout
        got = doc.get("ir_version") if isinstance(doc, dict) else None
        raise ValueError(f"{d / 'model.json'}: IR version {got} is not {IR_VERSION}")
    try:
        check_identifier(doc["name"], "model name")
        with np.load(d / "model.npz", allow_pickle=False) as z:
            layers = []
            for i, ld in enumerate(doc["layers"]):
                if ld["kind"] not in _FROM_JSON:
                    raise ValueError(f"unknown layer kind {ld['kind']!r}")
                check_identifier(ld["name"], f"layer {i}'s name")
                arrays = {a: z[f"l{i}_{a}"] for a in ("indices", "weights", "bias")} if f"l{i}_indices" in z else {}
                layers.append(_FROM_JSON[ld["kind"]](ld, arrays))
        return Model(name=doc["name"], layers=tuple(layers), meta=doc.get("meta", {}))
    except KeyError as e:
        raise ValueError(f"{d}: model.json or model.npz lacks {e}") from None
    except (TypeError, AttributeError) as e:
        raise ValueError(f"{d / 'model.json'}: malformed ({e})") from None


def _formats(ld: dict, *names: str) -> dict:
    return {n: FixedFormat.from_dict(ld[n]) for n in names}


_FMTS = ("input_fmt", "weight_fmt", "bias_fmt", "output_fmt")
_FROM_JSON = {  # model.json "kind" -> the layer, from its JSON entry and its arrays
    "dense": lambda ld, a: DenseLayer(name=ld["name"], n=ld["n"], relu=ld["relu"], banks=ld.get("banks", 1), **a,
                                      rounding=ld.get("rounding", "half_up"), **_formats(ld, *_FMTS)),
    "conv": lambda ld, a: Conv2dLayer(
        name=ld["name"], in_shape=tuple(ld["in_shape"]), kernel=ld["kernel"], stride=ld["stride"], pad=ld["pad"],
        granularity=ld["granularity"], relu=ld["relu"], banks=ld.get("banks", 1), rounding=ld.get("rounding", "half_up"),
        **a, **_formats(ld, *_FMTS)),
    "maxpool": lambda ld, a: MaxPool2dLayer(ld["name"], tuple(ld["in_shape"]), FixedFormat.from_dict(ld["input_fmt"]),
                                            ld["size"]),
}
