"""The graph of a layer stack (:mod:`kofn.core.layers` specs): each layer's name, the tensors
it reads and their shapes (:func:`wiring`), and the whole stack's validity
(:func:`validate_graph`).  A chain is the case where each layer reads the one before.  The
specs are duck-typed here (``type``, ``name``, ``inputs``, ``weighted``, ``validate``), so the
IR's layers can share :func:`arity`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .errors import fail
from .names import INPUT, check_identifier

__all__ = ["Wiring", "arity", "wiring", "validate_graph"]


def arity(spec) -> int:
    """How many tensors the layer reads (two for an add)."""
    return getattr(spec, "arity", 1)


@dataclass(frozen=True)
class Wiring:
    """The graph of a layer stack: every layer's name, the tensors it reads, their shapes and
    its output shape.  A chain is the case where each layer reads the one before."""

    names: tuple[str, ...]
    inputs: tuple[tuple[str, ...], ...]
    in_shapes: tuple[tuple[tuple, ...], ...]  # per layer, the shape of each input
    out_shapes: tuple[tuple, ...]

    @property
    def is_chain(self) -> bool:
        prev = (INPUT,) + self.names
        return all(e == (prev[i],) for i, e in enumerate(self.inputs))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def readers(self, name: str) -> list[int]:
        """The layers that read tensor ``name``."""
        return [i for i, e in enumerate(self.inputs) if name in e]

    def in_values(self, i: int, values: dict, input_value):
        """Layer ``i``'s inputs from ``values`` (by layer name) and the model's ``input_value``."""
        return [input_value if s == INPUT else values[s] for s in self.inputs[i]]


def wiring(layers: Sequence, input_shape: tuple, key: str = "layers") -> Wiring:
    """Name every layer (``name`` or ``l<i>``), resolve its ``inputs`` (default: the layer
    before) and check each layer against its input shapes (:meth:`validate`); errors name
    ``{key}[i].<field>``."""
    if not layers:
        fail(key, "at least one layer is required")
    names: list[str] = []
    for i, spec in enumerate(layers):
        name = spec.name if spec.name is not None else f"l{i}"
        try:
            check_identifier(name, "layer name")
        except ValueError as e:
            fail(f"{key}[{i}].name", str(e))
        if name == INPUT:
            fail(f"{key}[{i}].name", f"{INPUT!r} names the model's input; pick another name")
        if name in names:
            fail(f"{key}[{i}].name", f"{name!r} is already {key}[{names.index(name)}]'s name (names are unique)")
        names.append(name)
    shapes = {INPUT: tuple(input_shape)}
    removed: dict[str, int | None] = {}  # tensor -> the feature-map pruned layer whose channels it lacks
    edges, in_shapes, out_shapes = [], [], []
    for i, spec in enumerate(layers):
        k = f"{key}[{i}]"
        srcs = tuple(spec.inputs) if spec.inputs is not None else ((INPUT if i == 0 else names[i - 1]),)
        if spec.inputs is None and arity(spec) > 1:
            fail(f"{k}.inputs", f"an {spec.type} layer reads {arity(spec)} tensors: name them, e.g. "
                                f"inputs = [\"{names[i - 1] if i else 'a'}\", \"{names[0]}\"]")
        if len(srcs) != arity(spec):
            art = "an" if spec.type[0] in "aeiou" else "a"
            fail(f"{k}.inputs", f"{art} {spec.type} layer reads {arity(spec)} tensor{'s' * (arity(spec) > 1)}, "
                                f"got {len(srcs)}: {list(srcs)}")
        for s in srcs:
            if s not in shapes:
                later = s in names
                fail(f"{k}.inputs", f"{s!r} is {'a later layer' if later else 'no layer'}: a layer reads "
                                    f"{INPUT!r} or a layer listed before it"
                                    + ("" if later else f" (layers: {', '.join(names[:i]) or 'none yet'})"))
        ins = tuple(shapes[s] for s in srcs)
        # feature-map pruning removes channels at export (through pooling too): no bank layer
        # may read them (its banks would shift), no add (its two inputs must stay aligned)
        gone = [removed[s] for s in srcs if removed.get(s) is not None]
        if gone and spec.weighted and spec.granularity == "bank":
            fail(f"{k}.granularity", f"'bank' cannot read {key}[{gone[0]}], whose feature-map pruning removes "
                                     "inputs at export (the banks would shift); prune that layer at another granularity")
        if gone and arity(spec) > 1:  # a join
            fail(f"{key}[{gone[0]}].granularity", f"feature-map pruning would remove channels of one input of the add "
                                                  f"{k} ({names[i]!r}) and not of the other; prune the first conv of "
                                                  "the block (as DPP's paper does), or this one at another granularity")
        if spec.weighted:
            removed[names[i]] = i if spec.granularity == "feature_map" else None
        elif not spec.weighted and arity(spec) == 1:  # a pool keeps the channels
            removed[names[i]] = removed.get(srcs[0])
        if arity(spec) > 1 and len(set(ins)) > 1:
            fail(f"{k}.inputs", f"an add needs two inputs of one shape: {srcs[0]!r} is {ins[0]}, {srcs[1]!r} is {ins[1]}")
        if arity(spec) > 1 and len(ins[0]) != 3:
            fail(f"{k}.inputs", f"an add joins images (a residual block's); {srcs[0]!r} is a vector {ins[0]}")
        out = tuple(spec.validate(k, ins[0], last=i == len(layers) - 1))
        edges.append(srcs)
        in_shapes.append(ins)
        out_shapes.append(out)
        shapes[names[i]] = out
    return Wiring(tuple(names), tuple(edges), tuple(in_shapes), tuple(out_shapes))


def validate_graph(layers: Sequence, input_shape: tuple, key: str = "layers") -> tuple:
    """Check a whole stack, a chain or a graph (:func:`wiring`), against the model's input
    shape (``(H, W, C)`` or ``(n,)``); returns the output shape.  Errors name
    ``{key}[i].<field>``.  Beyond each layer's own rules and the wiring's: the last layer is
    dense and the only one nobody reads."""
    w = wiring(layers, input_shape, key)
    last = len(layers) - 1
    if layers[last].image:
        fail(f"{key}[{last}].type", "the last layer must be dense (flatten the image into a dense classifier)")
    read = {s for e in w.inputs for s in e}
    for i, name in enumerate(w.names[:-1]):
        if name not in read:
            fail(f"{key}[{i}].name", f"layer {name!r} feeds no other layer (only the last layer is an output)")
    return w.out_shapes[-1]
