"""Import QONNX models (Brevitas's ``export_qonnx``, FINN's front end) into kofn.

The graph is read through the ``qonnx`` package: :class:`~qonnx.core.modelwrapper.ModelWrapper`
and its ``cleanup_model`` (shape inference, constant folding that keeps the quantizers, unique
readable names).  The quantizers are then mapped onto kofn's fixed-point formats and the graph
is handed to :func:`kofn.app.onnx_read.read_onnx`, which reads every other operator:

* ``Quant`` (``IntQuant``) on a constant (weights, biases): the executor's own function
  (``qonnx.custom_op.general.quant.quant``) gives the quantized values, so any rounding mode
  and ``narrow`` are exact; every scale must be a power of two (per channel too: the layer
  then takes the finest one and widens its codes) and the zero point 0.
* ``BipolarQuant`` on weights: codes +-1 times a power-of-two scale, a 2-bit signed format.
* ``Quant`` on activations: a requantization to ``fixed<bitwidth, bitwidth - f>`` (scale
  ``2^-f``, one per tensor, zero point 0, ``narrow = 0``).  Its ``rounding_mode`` becomes the
  layer's rounding (:data:`kofn.core.fixed.ROUNDINGS`): ``ROUND``/``HALF_EVEN`` -> half_even,
  ``FLOOR`` -> floor, ``HALF_UP`` (ties away from zero) -> half_up where the output is
  unsigned (the two agree on values >= 0); ``CEIL``, ``UP``, ``DOWN``, ``HALF_DOWN`` and
  ``HALF_UP`` on a signed output have no kofn equivalent and are refused.  On the graph input
  it sets the input format (the inputs arrive as codes, its rounding never acts).
* ``MultiThreshold`` (optionally followed by a scalar ``Mul``) only where it *is* such a
  requantization: the same thresholds for every channel, one per output step, at
  ``(lo + i + 1/2) * 2^-f`` (round half up) or ``(lo + i + 1) * 2^-f`` (floor), with
  ``out_scale = 2^-f`` and ``out_bias = lo * 2^-f`` (after the ``Mul``).  Anything else is
  refused with the node's name.
* A ``Reshape`` to ``[batch, features]`` with the batch size Brevitas traced with is a flatten.

Everything refused is an :class:`~kofn.app.onnx_read.OnnxImportError` naming the node and
the reason.  Whether the model goes straight to codegen (every layer quantized) or is
fine-tuned under the config's k-of-n method is :func:`read_onnx`'s usual decision.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.fixed import FixedFormat
from .onnx_read import OnnxImportError, OnnxNet, load_proto, read_onnx, write_requant

__all__ = ["QONNX_OPS", "is_qonnx", "read_qonnx", "read_model"]

#: Operators of QONNX's (and FINN's) custom domains.
QONNX_OPS = frozenset({"Quant", "IntQuant", "BipolarQuant", "MultiThreshold", "Trunc", "FloatQuant",
                       "QuantAvgPool2d", "XnorPopcountMatMul", "Im2Col", "MaxPoolNHWC", "DebugMarker"})

#: QONNX ``rounding_mode`` -> kofn rounding, where it is one for every input.
_ROUNDINGS = {"ROUND": "half_even", "HALF_EVEN": "half_even", "FLOOR": "floor"}


def is_qonnx(proto) -> bool:
    """True when the graph holds a QONNX/FINN operator."""
    return any(n.op_type in QONNX_OPS or n.domain.startswith(("qonnx", "finn")) for n in proto.graph.node)


def _where(n) -> str:
    return f"node {n.name or n.output[0]!r} ({n.op_type})"


def _frac_of(scale: np.ndarray, where: str, what: str) -> np.ndarray:
    """``f`` with ``scale = 2^-f`` for every entry, or a clear error."""
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = -np.log2(s)
    if s.size == 0 or np.any(s <= 0) or not np.all(np.isfinite(f)) or np.any(f != np.round(f)):
        bad = s[(s <= 0) | ~np.isfinite(f) | (f != np.round(f))][:1]
        raise OnnxImportError(f"{where}: {what} scale {float(bad[0]) if bad.size else s.tolist()!r:} is not a power of two; "
                              "kofn's formats are binary fixed point")
    return f.astype(np.int64)


def _scalar_int(v, where: str, what: str) -> int:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size != 1 or a[0] != round(a[0]):
        raise OnnxImportError(f"{where}: {what} {a.tolist()} is not one integer")
    return int(a[0])


class _Rewriter:
    """Walks the cleaned-up QONNX graph and builds the plain graph :func:`read_onnx` reads."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        self.g = model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.g.initializer}
        self.quantized: dict[str, tuple[np.ndarray, FixedFormat]] = {}  # constant tensor -> (values, format)
        self.nodes: list = []
        self.new_inits: list = []
        self.skip: set[str] = set()  # nodes folded into a previous one

    # -- helpers ------------------------------------------------------------------------
    def const(self, name: str, value) -> str:
        from onnx import numpy_helper

        self.new_inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def param(self, n, i: int, what: str) -> np.ndarray:
        if len(n.input) <= i or n.input[i] not in self.inits:
            raise OnnxImportError(f"{_where(n)}: its {what} must be a constant")
        return np.asarray(self.inits[n.input[i]])

    def attr(self, n, name: str, default=None):
        """A QONNX node's attribute as qonnx's executor reads it (its declared type)."""
        from qonnx.custom_op.registry import getCustomOp

        try:
            v = getCustomOp(n).get_nodeattr(name)
        except Exception:  # qonnx does not know the attribute: the node has it only if the type matches
            return default
        return v.decode() if isinstance(v, bytes) else v

    def int_params(self, n) -> tuple[np.ndarray, int, bool, bool]:
        """A Quant node's zero point (0: kofn's formats are symmetric), bit width, signed, narrow."""
        where = _where(n)
        zp = self.param(n, 2, "zero point")
        if np.any(zp != 0):
            raise OnnxImportError(f"{where}: zero point {zp.reshape(-1)[:4].tolist()} is not 0; kofn's formats are "
                                  "symmetric fixed point")
        bits = _scalar_int(self.param(n, 3, "bit width"), where, "bit width")
        return zp, bits, bool(self.attr(n, "signed", 1)), bool(self.attr(n, "narrow", 0))

    def consumers(self, tensor: str) -> list:
        return [m for m in self.g.node if tensor in m.input]

    def requant(self, n, x: str, out: str, frac: int, lo: int, hi: int, rounding: str) -> None:
        """kofn's requantization pattern (:func:`~kofn.app.onnx_read.write_requant`, which
        read_onnx reads back) from ``x`` to ``out``; its nodes carry ``n``'s name for messages."""
        from onnx import helper

        tag = n.name or out

        def node(op: str, inputs: list[str]) -> str:
            name = f"{tag}__{len(self.nodes)}"
            self.nodes.append(helper.make_node(op, inputs, [name], name=tag))
            return name

        write_requant(x, frac, lo, hi, rounding, False, node, lambda key, value: self.const(f"{tag}__{key}", value))
        self.nodes[-1].output[0] = out

    # -- operators ----------------------------------------------------------------------
    def const_quant(self, n) -> None:
        """A Quant/BipolarQuant of a constant: its exact values and their format."""
        where = _where(n)
        w = np.asarray(self.inits[n.input[0]], dtype=np.float32)
        scale = self.param(n, 1, "scale")
        fr = _frac_of(scale, where, "the")
        if n.op_type == "BipolarQuant":
            from qonnx.custom_op.general.bipolar_quant import binary_quant

            values = np.asarray(binary_quant(w, scale.astype(np.float32)), dtype=np.float64)
            width, signed = 2, True  # codes -1 and +1
        else:
            from qonnx.custom_op.general.quant import quant

            zp, bits, signed, narrow = self.int_params(n)
            mode = self.attr(n, "rounding_mode", "ROUND")
            try:
                values = np.asarray(quant(w, scale.astype(np.float32), zp.astype(np.float32), np.float32(bits), signed,
                                          narrow, mode), dtype=np.float64)
            except ValueError as e:
                raise OnnxImportError(f"{where}: {e}") from None
            width = bits + (0 if signed else 1)  # kofn's weight and bias formats are signed
        f = int(fr.max())
        width += int(f - fr.min())  # per-channel scales: one format at the finest scale
        codes = values * 2.0 ** f
        if np.any(codes != np.round(codes)):
            raise OnnxImportError(f"{where}: its quantized values are not on the 2^-{f} grid")
        if width > 32:
            raise OnnxImportError(f"{where}: needs {width}-bit codes (per-channel scales spread over {int(fr.max() - fr.min())} "
                                  "octaves); kofn's formats are at most 32 bits")
        self.quantized[n.output[0]] = (values, FixedFormat(width, width - f, signed=True))

    def act_quant(self, n) -> None:
        where = _where(n)
        scale = self.param(n, 1, "scale")
        if scale.size != 1:
            raise OnnxImportError(f"{where}: a per-channel activation scale ({scale.size} scales); kofn requantizes a "
                                  "layer's outputs to one format")
        f = int(_frac_of(scale, where, "the")[0])
        _, bits, signed, narrow = self.int_params(n)
        if not 1 <= bits <= 32 or (signed and bits < 2):
            raise OnnxImportError(f"{where}: a {bits}-bit {'signed' if signed else 'unsigned'} activation; kofn's "
                                  "formats are 1..32 bits (signed: 2..32)")
        if narrow:
            raise OnnxImportError(f"{where}: narrow = 1 clips to [{-(2 ** (bits - 1)) + 1 if signed else 0}, "
                                  f"{2 ** (bits - 1) - 1 if signed else 2 ** bits - 2}], not a fixed-point format's "
                                  "range; export with narrow_range = False for activations")
        mode = str(self.attr(n, "rounding_mode", "ROUND")).upper()
        if mode in _ROUNDINGS:
            rounding = _ROUNDINGS[mode]
        elif mode == "HALF_UP" and not signed:
            rounding = "half_up"  # ties away from zero = toward +inf on the values >= 0 it can output
        else:
            why = ("rounds negative ties away from zero; kofn rounds ties up (toward +inf) or to even"
                   if mode == "HALF_UP" else "has no kofn equivalent (kofn rounds half up, half to even or down)")
            raise OnnxImportError(f"{where}: rounding_mode {mode} {why}")
        fmt = FixedFormat(bits, bits - f, signed=signed)
        self.requant(n, n.input[0], n.output[0], f, fmt.min_int, fmt.max_int, rounding)

    def multithreshold(self, n) -> None:
        where = _where(n)
        thr = np.asarray(self.param(n, 1, "thresholds"), dtype=np.float64)
        if thr.ndim != 2 or thr.shape[1] == 0:
            raise OnnxImportError(f"{where}: thresholds of shape {list(thr.shape)}; expected [channels, steps]")
        if np.any(thr != thr[:1]):
            raise OnnxImportError(f"{where}: the channels' thresholds differ: not one requantization (kofn requantizes "
                                  "a layer's outputs to one format)")
        out_scale, out_bias = float(self.attr(n, "out_scale", 1.0)), float(self.attr(n, "out_bias", 0.0))
        out = n.output[0]
        after = self.consumers(out)
        if len(after) == 1 and after[0].op_type == "Mul" and after[0].input[1] in self.inits \
                and np.asarray(self.inits[after[0].input[1]]).size == 1:
            c = float(np.asarray(self.inits[after[0].input[1]]).reshape(-1)[0])
            out_scale, out_bias, out = out_scale * c, out_bias * c, after[0].output[0]
            self.skip.add(after[0].name or after[0].output[0])
        f = int(_frac_of(np.array([out_scale]), where, "the output step (out_scale)")[0])
        lo = out_bias * 2.0 ** f
        if lo != round(lo):
            raise OnnxImportError(f"{where}: out_bias {out_bias} is not a whole number of steps of {out_scale}")
        lo = int(lo)
        t = thr[0] * 2.0 ** f
        steps = np.arange(len(t), dtype=np.float64) + lo
        for rounding, offset in (("half_up", 0.5), ("floor", 1.0)):
            if np.array_equal(t, steps + offset):
                self.requant(n, n.input[0], out, f, lo, lo + len(t), rounding)
                return
        raise OnnxImportError(f"{where}: its thresholds are not those of a requantization to steps of {out_scale} "
                              f"(expected (lo + i + 1/2) or (lo + i + 1) steps, lo = {lo}); kofn cannot build "
                              "arbitrary thresholds")

    def reshape(self, n) -> None:
        """A Reshape to [batch, features] (Brevitas traces a fixed batch) as a flatten."""
        from onnx import helper

        target = self.inits.get(n.input[1]) if len(n.input) > 1 else None
        shape = self.model.get_tensor_shape(n.input[0])
        if target is not None and shape is not None and len(target) == 2 and len(shape) >= 2 \
                and int(target[1]) == int(np.prod(shape[1:])):
            self.nodes.append(helper.make_node("Flatten", [n.input[0]], list(n.output), name=n.name, axis=1))
        else:
            self.nodes.append(n)

    def run(self):
        from onnx import helper

        for n in self.g.node:
            if (n.name or n.output[0]) in self.skip:
                continue
            op = n.op_type
            if op in ("Quant", "IntQuant", "BipolarQuant") and n.input[0] in self.inits:
                self.const_quant(n)
            elif op in ("Quant", "IntQuant"):
                self.act_quant(n)
            elif op == "BipolarQuant":
                raise OnnxImportError(f"{_where(n)}: a bipolar (sign) activation; kofn's activations are fixed point")
            elif op == "MultiThreshold":
                self.multithreshold(n)
            elif op == "Reshape":
                self.reshape(n)
            elif op in QONNX_OPS or n.domain.startswith(("qonnx", "finn")):
                raise OnnxImportError(f"{_where(n)}: the QONNX operator {op} is not supported (kofn imports Quant, "
                                      "BipolarQuant on weights and MultiThreshold requantizations)")
            else:
                self.nodes.append(n)
        graph = helper.make_graph(self.nodes, self.g.name or "qonnx", list(self.g.input), list(self.g.output),
                                  initializer=list(self.g.initializer) + self.new_inits)
        return helper.make_model(graph, opset_imports=[o for o in self.model.model.opset_import if not o.domain])


def read_qonnx(proto, name: str = "") -> OnnxNet:
    """Parse a QONNX model (a ``ModelProto``) into an :class:`OnnxNet`; ``name`` prefixes errors."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import RemoveStaticGraphInputs, RemoveUnusedTensors
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    # qonnx's cleanup_model, less its renaming: errors name the nodes as the user's file does
    for i, n in enumerate(proto.graph.node):
        if n.op_type in ("Quant", "Trunc", "BipolarQuant"):
            n.domain = "qonnx.custom_op.general"  # as cleanup_model does for older exports
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    try:
        model = ModelWrapper(proto)
        for t in (InferShapes(), FoldConstants(exclude_op_types=["Quant", "BipolarQuant", "QuantizeLinear",
                                                                 "DequantizeLinear"]),
                  FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs(), InferShapes()):
            model = model.transform(t)
    except Exception as e:  # qonnx's transforms assert and raise freely on graphs they cannot read
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"{name + ': ' if name else ''}qonnx could not clean the graph up "
                              f"({type(e).__name__}: {why})") from None
    rw = _Rewriter(model)
    net = read_onnx(rw.run(), quantized=rw.quantized)
    net.meta["kofn.rows"] = "pad"  # a kept weight may quantize to 0: k is a row's most nonzeros
    net.meta["kofn.source"] = "qonnx"
    return net


def read_model(path_or_proto) -> OnnxNet:
    """Any model kofn imports: a QONNX graph through :func:`read_qonnx`, any other ONNX graph
    through :func:`~kofn.app.onnx_read.read_onnx`."""
    if hasattr(path_or_proto, "graph"):
        proto, name = path_or_proto, ""
    else:  # a QONNX graph's custom domain is checked by qonnx's shape inference, not onnx.checker
        proto, name = load_proto(path_or_proto, check=False), str(path_or_proto)
    if is_qonnx(proto):
        return read_qonnx(proto, name)
    return read_onnx(path_or_proto)  # from the path: read_onnx runs onnx.checker
