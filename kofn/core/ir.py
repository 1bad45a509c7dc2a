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
from .names import INPUT, check_identifier
from .wiring import arity
from .ir_layers import Conv2dLayer, DenseLayer
from .ir_plain import AddLayer, GlobalAvgPoolLayer, MaxPool2dLayer

__all__ = [
    "DenseLayer",
    "Conv2dLayer",
    "MaxPool2dLayer",
    "AddLayer",
    "GlobalAvgPoolLayer",
    "Layer",
    "Model",
    "INPUT",
    "save",
    "load",
    "IR_VERSION",
]

IR_VERSION = 3  # 2: Conv2d and MaxPool2d layers, input_shape; 3: a graph (layers name their inputs), add, gap


Layer = DenseLayer | Conv2dLayer | MaxPool2dLayer | AddLayer | GlobalAvgPoolLayer


def _input_fmts(layer) -> tuple[FixedFormat, ...]:
    return getattr(layer, "input_fmts", (layer.input_fmt,))


@dataclass(frozen=True, eq=False)
class Model:
    """A directed acyclic graph of layers in topological order; a chain is the common case.

    ``inputs[i]`` names the tensors layer ``i`` reads: :data:`INPUT` (the model's input) or
    an earlier layer's name, one per input (two for an :class:`AddLayer`).  ``inputs=None``
    makes a chain: layer ``i`` reads layer ``i - 1``.  The last layer is the output and must
    be dense; every other layer is read by a later one (no dead branch).

    Images travel HWC.  An image layer (convolution, pooling, an image add, global average
    pooling) reads images only; a dense layer reads a vector or an image flattened in HWC
    order (the stream order).  Each edge's shape and fixed-point format must match exactly:
    an add aligns its two formats itself (:func:`kofn.core.fixed.add_codes`).
    """

    name: str
    layers: tuple[Layer, ...]
    meta: dict = field(default_factory=dict)
    inputs: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a model needs at least one layer")
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        if INPUT in names:
            raise ValueError(f"no layer may be named {INPUT!r} (it names the model's input)")
        if self.inputs is None:
            edges = tuple((INPUT if i == 0 else names[i - 1],) * arity(l) for i, l in enumerate(self.layers))
        else:
            edges = tuple(tuple(str(v) for v in e) for e in self.inputs)
        object.__setattr__(self, "inputs", edges)
        if len(edges) != len(self.layers):
            raise ValueError(f"inputs lists {len(edges)} layers' inputs, the model has {len(self.layers)} layers")
        if not isinstance(self.layers[-1], DenseLayer):
            raise ValueError("the last layer must be dense (flatten the image into a dense classifier)")
        index = {n: i for i, n in enumerate(names)}
        read: set[str] = set()
        for i, (cur, srcs) in enumerate(zip(self.layers, edges)):
            if len(srcs) != arity(cur):
                raise ValueError(f"layer {cur.name!r} ({cur.kind}) reads {arity(cur)} input(s), inputs names {len(srcs)}")
            for j, (src, fmt) in enumerate(zip(srcs, _input_fmts(cur))):
                if src != INPUT and (src not in index or index[src] >= i):
                    raise ValueError(f"layer {cur.name!r} reads {src!r}, which is not {INPUT!r} or an earlier layer "
                                     f"(layers are in topological order)")
                read.add(src)
                self._check_edge(cur, j, src, fmt)
        dead = [n for n in names[:-1] if n not in read]
        if dead:
            raise ValueError(f"layer(s) {', '.join(map(repr, dead))} feed no other layer (only the last layer is an output)")
        if INPUT not in read:
            raise ValueError("no layer reads the model's input")

    def _source(self, src: str):
        """``(image?, shape, size, fmt)`` of tensor ``src``."""
        if src == INPUT:
            first = self.layers[0]
            shape = tuple(first.in_shape) if first.image else (first.in_size,)
            return first.image, shape, first.in_size, _input_fmts(first)[self.inputs[0].index(INPUT)]
        prev = self.layers[[l.name for l in self.layers].index(src)]
        return prev.image, tuple(prev.out_shape) if prev.image else (prev.out_size,), prev.out_size, prev.output_fmt

    def _check_edge(self, cur, j: int, src: str, fmt: FixedFormat) -> None:
        image, shape, size, src_fmt = self._source(src)
        what = "the input" if src == INPUT else repr(src)
        if cur.image:
            if not image:
                raise ValueError(f"layer {cur.name!r} ({cur.kind}) reads the vector of {what}; images come before vectors")
            if tuple(cur.in_shape) != shape:
                raise ValueError(f"layer {cur.name!r} expects an image {tuple(cur.in_shape)} but {what} is {shape}")
        elif isinstance(cur, AddLayer):
            if image or size != cur.in_size:
                raise ValueError(f"layer {cur.name!r} adds vectors of {cur.in_size} but {what} is {shape}")
        elif cur.in_size != size:
            raise ValueError(f"layer {cur.name!r} has n={cur.in_size} but {what} has {size} outputs")
        if fmt != src_fmt:
            where = f"layer {cur.name!r}" + (f" (input {j})" if arity(cur) > 1 else "")
            raise ValueError(f"{where} reads {fmt.describe()} but {what} writes {src_fmt.describe()}")

    @property
    def is_chain(self) -> bool:
        """Every layer reads the one before it (the first: the input), once."""
        names = (INPUT,) + tuple(l.name for l in self.layers)
        return all(e == (names[i],) for i, e in enumerate(self.inputs))

    @property
    def input_fmt(self) -> FixedFormat:
        return self.layers[0].input_fmt

    @property
    def output_fmt(self) -> FixedFormat:
        return self.layers[-1].output_fmt

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(H, W, C)`` for an image model, ``(n,)`` for a vector model."""
        return self._source(INPUT)[1]

    @property
    def n_inputs(self) -> int:
        return self.layers[0].in_size

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].rows

    @property
    def image_layers(self) -> tuple[Layer, ...]:
        """The layers that read images (for a chain, a prefix of ``layers``)."""
        return tuple(l for l in self.layers if l.image)

    @property
    def dense_layers(self) -> tuple[DenseLayer, ...]:
        return tuple(l for l in self.layers if isinstance(l, DenseLayer))


def save(model: Model, directory: str | Path) -> None:
    """Write ``model.json`` and ``model.npz`` into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # a chain of the kinds IR version 2 knows is written as version 2, so that older kofn reads it
    v2 = model.is_chain and all(isinstance(L, (DenseLayer, Conv2dLayer, MaxPool2dLayer)) for L in model.layers)
    doc = {
        "ir_version": 2 if v2 else IR_VERSION,
        "name": model.name,
        "meta": model.meta,
        "layers": [layer.to_json() if model.is_chain else {**layer.to_json(), "inputs": list(e)}
                   for layer, e in zip(model.layers, model.inputs)],
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
    if not isinstance(doc, dict) or doc.get("ir_version") not in (1, 2, IR_VERSION):  # 1, 2: chains, same layout
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
            edges = [ld.get("inputs") for ld in doc["layers"]]
            if any(e is not None for e in edges) and doc["ir_version"] < 3:
                raise ValueError(f"IR version {doc['ir_version']} has no 'inputs' (a graph is version 3)")
            if any(e is None for e in edges) and not all(e is None for e in edges):
                raise ValueError("either every layer names its inputs or none does (a chain)")
            if edges and edges[0] is not None and not all(isinstance(e, list) and all(isinstance(v, str) for v in e) for e in edges):
                raise ValueError("a layer's 'inputs' must be a list of tensor names")
        return Model(name=doc["name"], layers=tuple(layers), meta=doc.get("meta", {}),
                     inputs=None if not edges or edges[0] is None else tuple(map(tuple, edges)))
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
    "add": lambda ld, a: AddLayer(ld["name"], tuple(ld["shape"]), relu=ld["relu"], rounding=ld.get("rounding", "half_up"),
                                  **_formats(ld, "a_fmt", "b_fmt", "output_fmt")),
    "gap": lambda ld, a: GlobalAvgPoolLayer(ld["name"], tuple(ld["in_shape"]), **_formats(ld, "input_fmt", "output_fmt")),
}
