"""Read an ONNX graph into an :class:`OnnxNet`: the chain of layers kofn can import, with
their float weights, their formats where the graph quantizes, and the graph's metadata.
:mod:`kofn.app.onnx_import` turns it into kofn's IR (a quantized model) or into the initial
weights of a float model to fine-tune.

Supported graphs are chains (one input, one output, each node consuming the previous
node's output) of

* ``Conv`` (2-D, square kernel, equal strides, symmetric pads, ``group = 1``, no dilation),
  ``Gemm`` (``transB`` 0 or 1) or ``MatMul`` + ``Add``, ``Relu``, ``MaxPool`` 2x2 / stride 2,
  ``Flatten`` / ``Reshape`` to ``[N, -1]`` (CHW order), ``Transpose(0, 2, 3, 1)`` + ``Flatten``
  (HWC order, as kofn exports), ``Identity`` and ``Dropout``;
* weights as float initializers or ``DequantizeLinear`` of int8 initializers (power-of-two
  scale, zero point 0);
* requantizations, which make a model *quantized*: kofn's own
  ``Mul(2^f) -> Add(1/2) -> Floor -> Clip -> [Relu] -> Mul(2^-f)`` (round half up, kofn's
  default), the same without the ``Add`` (floor) or with ``Round`` for ``Add -> Floor`` (half
  to even), or a ``QuantizeLinear -> DequantizeLinear`` pair with a power-of-two scale and zero
  point 0 (QuantizeLinear rounds half to even: the layer gets kofn's ``half_even`` rounding, so
  ties come out as in onnxruntime).

QONNX graphs (``Quant``, ``BipolarQuant``, ``MultiThreshold`` from Brevitas or FINN) are read
by :mod:`kofn.app.qonnx_import` into the same :class:`OnnxNet`.

Anything else is an :class:`OnnxImportError` naming the node.
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ModelFileError
from ..core.fixed import FixedFormat
from ..core.layers import LAYER_SPECS, arity

__all__ = ["OnnxImportError", "OnnxLayer", "OnnxNet", "load_proto", "write_requant", "read_onnx"]


class OnnxImportError(ModelFileError):
    """The ONNX graph uses something kofn cannot import; the message names the node."""

    what = "ONNX import"


@dataclass
class OnnxLayer:
    kind: str  # "conv", "dense", "maxpool", "gap" or "add": a [[layers]] type (kofn.core.layers.LAYER_SPECS)
    node: str  # the ONNX node name (for messages)
    weight: np.ndarray | None = None  # float: conv [C_out, C_in, K, K] / dense [out, in]
    bias: np.ndarray | None = None
    stride: int = 1
    pad: int = 0
    relu: bool = False
    weight_fmt: FixedFormat | None = None  # when the weights came through DequantizeLinear
    output_fmt: FixedFormat | None = None  # when a requantization follows
    rounding: str = "half_up"  # that requantization's rounding (kofn.core.fixed.ROUNDINGS)
    flatten: str | None = None  # dense after an image: "chw" or "hwc" input order
    inputs: list[int] = field(default_factory=list)  # the layers it reads, by index (-1: the graph input)

    @property
    def weighted(self) -> bool:
        """A Conv or Gemm/MatMul (with weights), not a pool."""
        return self.weight is not None

    @property
    def image(self) -> bool:
        """Reads an image (Conv, MaxPool), not a vector: what the kind's layer spec says."""
        return LAYER_SPECS[self.kind].image


@dataclass
class OnnxNet:
    input_shape: tuple[int, ...]  # (C, H, W) or (n,)
    input_fmt: FixedFormat | None
    layers: list[OnnxLayer] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return self.input_fmt is not None and all(
            (not l.weighted or l.weight_fmt is not None) and (LAYER_SPECS[l.kind].passthrough or l.output_fmt is not None)
            for l in self.layers
        )


def _pow2_frac(scale: float, where: str) -> int:
    f = -math.log2(scale) if scale > 0 else float("nan")
    if not math.isfinite(f) or f != round(f):
        raise OnnxImportError(f"{where}: scale {scale} is not a power of two; kofn's formats are binary fixed point")
    return int(round(f))


def _format_from_range(lo: float, hi: float, frac: int, where: str) -> FixedFormat:
    lo, hi = int(lo), int(hi)
    if lo == 0:
        width = max(1, (hi + 1).bit_length() - 1) if hi > 0 else 1
        fmt = FixedFormat(width, width - frac, signed=False)
    else:
        width = (hi + 1).bit_length()
        fmt = FixedFormat(width, width - frac, signed=True)
    if (fmt.min_int, fmt.max_int) != (lo, hi):
        raise OnnxImportError(f"{where}: clip range [{lo}, {hi}] is not the range of a {'' if lo else 'un'}signed fixed-point format")
    return fmt


def load_proto(path, check: bool = True):
    """The ``ModelProto`` in ``path`` (checked by ``onnx.checker`` unless ``check`` is false),
    or an :class:`OnnxImportError` saying why it cannot be read."""
    import onnx

    try:
        proto = onnx.load(str(path))
        if check:
            onnx.checker.check_model(proto)
    except Exception as e:  # protobuf's DecodeError, onnx's ValidationError, an OSError ...
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"{path}: not a readable ONNX model ({type(e).__name__}: {why})") from None
    return proto


def write_requant(x: str, frac: int, lo: int, hi: int, rounding: str, relu: bool, node, const) -> str:
    """Emit kofn's requantization pattern, the one :func:`read_onnx` reads, from tensor ``x``
    (real values) to ``lo..hi`` codes at ``2^-frac``: ``Mul(2^frac)``, the rounding
    (``half_up``: ``Add(1/2) -> Floor``; ``floor``: ``Floor``; ``half_even``: ``Round``, ONNX's
    ties-to-even), ``Clip(lo, hi)``, ``[Relu]``, ``Mul(2^-frac)``.  ``node(op, inputs)`` adds a
    node and returns its output's name; ``const(key, value)`` adds a constant (keys ``up``,
    ``half``, ``min``, ``max``, ``down``) and returns its name.  Returns the output's name."""
    q = node("Mul", [x, const("up", 2.0 ** frac)])
    if rounding == "half_even":
        q = node("Round", [q])
    elif rounding == "floor":
        q = node("Floor", [q])
    else:
        q = node("Floor", [node("Add", [q, const("half", 0.5)])])
    q = node("Clip", [q, const("min", lo), const("max", hi)])
    if relu:
        q = node("Relu", [q])
    return node("Mul", [q, const("down", 2.0 ** -frac)])


def read_onnx(path_or_proto, quantized: dict | None = None) -> OnnxNet:
    """Parse an ONNX chain into an :class:`OnnxNet` (see the module doc for what is supported).
    QONNX graphs: :func:`kofn.app.qonnx_import.read_model` maps their quantizers and comes back
    here with ``quantized``, the values and formats of the quantized constants by tensor name."""
    import onnx
    from onnx import numpy_helper

    proto = path_or_proto if hasattr(path_or_proto, "graph") else load_proto(path_or_proto)
    g = proto.graph
    try:
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    except Exception as e:
        raise OnnxImportError(f"an initializer cannot be read ({type(e).__name__}: {e})") from None
    consts = dict(inits)
    for n in g.node:  # Constant nodes act like initializers
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise OnnxImportError(f"the graph needs exactly one input and one output, it has {len(inputs)} and {len(g.output)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
    if len(dims) not in (1, 3) or any(d <= 0 for d in dims):
        raise OnnxImportError(f"input {inputs[0].name!r}: shape [N, {', '.join(map(str, dims))}] is not [N, n] or [N, C, H, W]")
    net = OnnxNet(tuple(dims), None, meta={p.key: p.value for p in proto.metadata_props})
    cur = inputs[0].name
    pending: dict = {}  # partial requantization pattern
    dq: dict[str, tuple[np.ndarray, FixedFormat]] = dict(quantized or {})  # DequantizeLinear outputs of initializers
    image = len(dims) == 3
    transposed = False
    flatten_order: str | None = None
    last: OnnxLayer | None = None
    li = -1  # the layer whose value the current tensor holds (-1: the graph's input)
    fmt_now: FixedFormat | None = None  # the format the current tensor's values are in, once known
    # a graph: each tensor's state (the variables above) when a node made it; a node reads its
    # first input's state (and an Add of two tensors, a residual join, the second's layer)
    states: dict[str, dict] = {cur: dict(li=-1, pending={}, image=image, transposed=False, flatten_order=None,
                                         fmt=None)}
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            if i not in consts:  # constants are read by any number of nodes
                uses[i] = uses.get(i, 0) + 1

    def store(name: str) -> None:
        states[name] = dict(li=li, pending=dict(pending), image=image, transposed=transposed,
                            flatten_order=flatten_order, fmt=fmt_now)

    def add_layer(layer: OnnxLayer, *srcs: int) -> OnnxLayer:
        nonlocal li, fmt_now
        layer.inputs = list(srcs) if srcs else [li]
        net.layers.append(layer)
        li, fmt_now = len(net.layers) - 1, None
        return layer

    def attr(n, name, default=None):
        for a in n.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def tensor(name: str, where: str) -> tuple[np.ndarray, FixedFormat | None]:
        if name in dq:
            return dq[name]
        if name in consts:
            return np.asarray(consts[name], dtype=np.float64), None
        raise OnnxImportError(f"{where}: input {name!r} must be a constant (an initializer or DequantizeLinear of one)")

    def set_fmt(fmt: FixedFormat, where: str, rounding: str = "half_up") -> None:
        nonlocal fmt_now
        current = net.input_fmt if last is None else fmt_now  # what the values are in now
        if current is not None and fmt == current:
            return  # a requantization to the format the values already have: the identity
        requantized = last is not None and not LAYER_SPECS[last.kind].passthrough
        if last is None and net.input_fmt is None:
            net.input_fmt = fmt  # the inputs arrive as codes: their rounding never acts
        elif requantized and last.output_fmt is None:
            if last.kind == "gap" and rounding != "half_up":
                raise OnnxImportError(f"{where}: a global average pool rounds half up, not {rounding}")
            last.output_fmt, last.rounding = fmt, rounding
        elif requantized:
            raise OnnxImportError(f"{where}: a second requantization ({last.output_fmt.describe()}, then "
                                  f"{fmt.describe()}); kofn requantizes once per layer")
        else:
            raise OnnxImportError(f"{where}: a requantization after a max pool into another format; kofn "
                                  "requantizes after Conv/Gemm, an Add or a global average pool only")
        fmt_now = fmt

    for n in g.node:
        where = f"node {n.name or n.output[0]!r} ({n.op_type})"
        op = n.op_type
        if op == "Constant":
            continue
        if op == "DequantizeLinear" and n.input[0] in inits:
            codes = np.asarray(inits[n.input[0]]).astype(np.int64)
            scale = float(np.asarray(consts[n.input[1]]).reshape(-1)[0]) if n.input[1] in consts else float("nan")
            if len(n.input) > 2 and n.input[2] and np.any(np.asarray(consts.get(n.input[2], 1)) != 0):
                raise OnnxImportError(f"{where}: weight zero point must be 0")
            frac = _pow2_frac(scale, where)
            width = np.asarray(inits[n.input[0]]).dtype.itemsize * 8
            dq[n.output[0]] = (codes * 2.0 ** -frac, FixedFormat(width, width - frac, signed=True))
            continue
        if not n.input or n.input[0] not in states:
            raise OnnxImportError(f"{where}: reads {n.input[0] if n.input else 'nothing'!r}, which no node kofn "
                                  "imports made (the graph input, a layer or its requantization)")
        cur = n.input[0]
        st_ = states[cur]
        li, pending, image = st_["li"], dict(st_["pending"]), st_["image"]
        transposed, flatten_order = st_["transposed"], st_["flatten_order"]
        fmt_now = st_["fmt"] if st_["li"] >= 0 else net.input_fmt  # the input's, once a requantization set it
        last = net.layers[li] if li >= 0 else None
        residual = op == "Add" and len(n.input) == 2 and n.input[1] in states
        if (pending or op in ("Relu", "Mul", "Floor", "Round", "Clip", "QuantizeLinear") or (op == "Add" and not residual)) \
                and uses.get(cur, 0) > 1:
            raise OnnxImportError(f"{where}: modifies {cur!r}, which another node reads too (a requantization, "
                                  "bias or ReLU on one branch of a fork); kofn requantizes a layer's output once")
        # -- requantization patterns ------------------------------------------------------
        if pending:
            step = pending["step"]
            if op == "Add" and step == "mul" and np.allclose(tensor(n.input[1], where)[0], 0.5):
                pending["step"] = "add"
            elif op == "Floor" and step in ("add", "mul"):
                pending.update(step="floor", rounding="half_up" if step == "add" else "floor")
            elif op == "Round" and step == "mul":
                pending.update(step="floor", rounding="half_even")
            elif op == "Clip" and step == "floor":
                pending.update(step="clip", lo=float(tensor(n.input[1], where)[0]), hi=float(tensor(n.input[2], where)[0]))
            elif op == "Relu" and step == "clip":
                pending["relu"] = True
            elif op == "Mul" and step == "clip":
                down = float(tensor(n.input[1], where)[0].reshape(-1)[0])
                if _pow2_frac(down, where) != pending["frac"]:
                    raise OnnxImportError(f"{where}: scales back by {down}, not 2^-{pending['frac']}")
                set_fmt(_format_from_range(pending["lo"], pending["hi"], pending["frac"], where), where,
                        pending["rounding"])
                if pending.get("relu"):
                    if last is None:
                        raise OnnxImportError(f"{where}: a ReLU on the input")
                    last.relu = True
                pending = {}
            else:
                raise OnnxImportError(f"{where}: breaks the Mul/[Add(0.5)]/Floor (or Round)/Clip/Mul requantization pattern")
            cur = n.output[0]
            store(cur)
            continue
        if op == "Mul":
            up = float(tensor(n.input[1], where)[0].reshape(-1)[0])
            pending = {"step": "mul", "frac": -_pow2_frac(up, where)}
        elif op == "QuantizeLinear":
            scale = float(tensor(n.input[1], where)[0].reshape(-1)[0])
            zp = consts.get(n.input[2]) if len(n.input) > 2 else np.uint8(0)
            if np.any(np.asarray(zp) != 0):
                raise OnnxImportError(f"{where}: activation zero point must be 0")
            signed = np.issubdtype(np.asarray(zp).dtype, np.signedinteger)
            width = np.asarray(zp).dtype.itemsize * 8
            frac = _pow2_frac(scale, where)
            set_fmt(FixedFormat(width, width - frac, signed=signed), where, "half_even")
        elif op == "DequantizeLinear":
            pass  # the activation half of a Q/DQ pair
        elif op == "Conv":
            if not image:
                raise OnnxImportError(f"{where}: a Conv after the image was flattened")
            w, wfmt = tensor(n.input[1], where)
            b = tensor(n.input[2], where)[0] if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0])
            ks, st = list(attr(n, "kernel_shape", w.shape[2:])), list(attr(n, "strides", [1, 1]))
            pads, dil = list(attr(n, "pads", [0, 0, 0, 0])), list(attr(n, "dilations", [1, 1]))
            if attr(n, "group", 1) != 1 or dil != [1, 1] or ks[0] != ks[1] or st[0] != st[1] or len(set(pads)) != 1:
                raise OnnxImportError(f"{where}: kofn takes square kernels, equal strides, symmetric pads, group 1, no dilation")
            if attr(n, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise OnnxImportError(f"{where}: auto_pad is not supported; export with explicit pads")
            last = add_layer(OnnxLayer("conv", where, w, b, st[0], pads[0], weight_fmt=wfmt))
        elif op in ("Gemm", "MatMul"):
            if image:
                raise OnnxImportError(f"{where}: a dense layer on an image; flatten it first")
            w, wfmt = tensor(n.input[1], where)
            if op == "MatMul" or not attr(n, "transB", 0):
                w = w.T
            if op == "Gemm" and (attr(n, "alpha", 1.0) != 1.0 or attr(n, "beta", 1.0) != 1.0 or attr(n, "transA", 0)):
                raise OnnxImportError(f"{where}: Gemm with alpha, beta or transA is not supported")
            b = tensor(n.input[2], where)[0] if op == "Gemm" and len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0])
            first_dense = all(l.image for l in net.layers)
            last = add_layer(OnnxLayer("dense", where, w, b, weight_fmt=wfmt,
                                       flatten=flatten_order if first_dense and len(dims) == 3 else None))
        elif residual:  # a join: both inputs are tensors of the graph
            other = states[n.input[1]]
            if other["pending"] or pending:
                raise OnnxImportError(f"{where}: adds a tensor inside a requantization pattern")
            if other["image"] != image:
                raise OnnxImportError(f"{where}: adds an image and a vector")
            last = add_layer(OnnxLayer("add", where), li, other["li"])
        elif op == "Add":
            if last is None or last.image or not np.all(last.bias == 0):
                raise OnnxImportError(f"{where}: an Add that is not a MatMul's bias")
            last.bias = tensor(n.input[1], where)[0].reshape(-1)
        elif op == "Relu":
            if last is None:
                raise OnnxImportError(f"{where}: a ReLU on the input")
            if not last.weighted and arity(LAYER_SPECS[last.kind]) == 1:  # a pool
                raise OnnxImportError(f"{where}: a ReLU after a {last.kind}; kofn applies ReLU in a Conv, Gemm or Add "
                                      "layer (move it before the pool)")
            last.relu = True
        elif op == "MaxPool":
            if list(attr(n, "kernel_shape", [])) != [2, 2] or list(attr(n, "strides", [1, 1])) != [2, 2] or any(attr(n, "pads", [0])):
                raise OnnxImportError(f"{where}: only 2x2 max pooling with stride 2 and no padding")
            keep = fmt_now
            last = add_layer(OnnxLayer("maxpool", where))
            fmt_now = keep  # codes pass through
        elif op == "GlobalAveragePool":
            if not image:
                raise OnnxImportError(f"{where}: a global average pool after the image was flattened")
            last = add_layer(OnnxLayer("gap", where))
        elif op == "Transpose":
            if list(attr(n, "perm", [])) != [0, 2, 3, 1]:
                raise OnnxImportError(f"{where}: only the NCHW -> NHWC transpose before a flatten")
            transposed = True
        elif op in ("Flatten", "Reshape"):
            if op == "Flatten" and attr(n, "axis", 1) != 1:
                raise OnnxImportError(f"{where}: Flatten must keep the batch axis (axis = 1)")
            if op == "Reshape" and list(tensor(n.input[1], where)[0].astype(int))[1:] not in ([-1],):
                raise OnnxImportError(f"{where}: Reshape must flatten to [N, -1]")
            flatten_order = "hwc" if transposed else "chw"
            image = False
        elif op in ("Identity", "Dropout"):
            pass
        else:
            raise OnnxImportError(f"{where}: operator {op} is not supported (kofn imports Conv, Gemm/MatMul+Add, "
                                  "Relu, MaxPool, GlobalAveragePool, Add of two branches, Flatten, requantizations)")
        cur = n.output[0]
        store(cur)
    out = g.output[0].name
    if out not in states:
        raise OnnxImportError(f"the graph output {out!r} is made by no node kofn imports")
    if states[out]["pending"]:
        raise OnnxImportError("the graph ends inside a requantization pattern")
    if states[out]["li"] != len(net.layers) - 1:
        raise OnnxImportError(f"the graph output {out!r} is not the last layer's")
    if not net.layers or net.layers[-1].kind != "dense":
        raise OnnxImportError("the last layer must be dense (Gemm or MatMul)")
    for L in net.layers:
        for what, arr in (("weights", L.weight), ("bias", L.bias)):
            if arr is not None and not np.all(np.isfinite(np.asarray(arr, dtype=np.float64))):
                bad = int((~np.isfinite(np.asarray(arr, dtype=np.float64))).sum())
                raise OnnxImportError(f"{L.node}: its {what} hold {bad} NaN or infinite value(s) "
                                      f"of {np.asarray(arr).size}; kofn cannot quantize them")
    return net
