"""Import ONNX models: float networks to fine-tune with k-of-n QAT, or quantized k-of-n
networks straight into codegen.

:func:`read_onnx` (:mod:`kofn.app.onnx_read`, re-exported here) reads the graph into an
:class:`OnnxNet` and says what is supported; QONNX graphs come through
:mod:`kofn.app.qonnx_import`.  This module turns the net into kofn:

* :func:`onnx_to_ir`: a quantized, k-of-n sparse net into the IR, straight to codegen (every
  row keeping the same k nonzero weights, whole-kernel sparsity as kernel level);
* :func:`float_init`: a float net's weights as the initial weights of the kofn model the
  config's ``[[layers]]`` describe, checked against them layer by layer.

Anything that does not fit is an :class:`OnnxImportError` naming the node.
"""

from __future__ import annotations

import json

import numpy as np

from ..core.fixed import FixedFormat, accumulator_format
from ..core.ir import AddLayer, Conv2dLayer, DenseLayer, GlobalAvgPoolLayer, MaxPool2dLayer, Model
from ..core.layers import LAYER_SPECS, wiring
from ..core.names import INPUT
from ..core.rules import fixed_stride_rows, hwc_from_chw
from .onnx_read import OnnxImportError, OnnxLayer, OnnxNet, load_proto, read_onnx, write_requant

__all__ = ["OnnxImportError", "OnnxLayer", "OnnxNet", "load_proto", "write_requant", "read_onnx", "onnx_to_ir", "float_init"]


def _kofn_rows(mask: np.ndarray, k: int | None, where: str, what: str, pad: bool = False) -> np.ndarray:
    """Fixed-stride index rows of a nonzero mask ``[rows, n]``.  With ``k`` given (kofn's
    metadata) a row may keep fewer nonzeros (a kept weight can be 0) and is padded with
    zero entries; without it every row must keep the same count, unless ``pad`` (a QONNX
    model, whose quantizers round small kept weights to 0): then k is the largest count."""
    counts = mask.sum(axis=1)
    if k is None and pad:
        k = int(max(counts.max(), 1))
    if k is None:
        if counts.min() != counts.max():
            raise OnnxImportError(
                f"{where}: rows keep {counts.min()}..{counts.max()} nonzero {what}; a k-out-of-n layer keeps the "
                "same k in every row"
            )
        k = int(max(counts.max(), 1))
    if counts.max() > k:
        r = int(np.argmax(counts))
        raise OnnxImportError(f"{where}: row {r} keeps {counts[r]} nonzero {what}, more than k={k}: not k-out-of-n")
    return fixed_stride_rows(mask, k)


def onnx_to_ir(net: OnnxNet, name: str = "onnx_model", bias_fmt: FixedFormat | None = None) -> Model:
    """The IR of a quantized, k-of-n sparse ONNX chain (``net.quantized``).

    Each dense row and conv filter must keep the same number of nonzero weights (k); a
    conv whose nonzeros are whole kernels becomes kernel level.  Biases are exact in
    ``bias_fmt`` (default: the narrowest format holding them at the accumulator's fraction
    bits)."""
    meta = json.loads(net.meta.get("kofn.layers", "{}"))
    pad = net.meta.get("kofn.rows") == "pad"
    for i, L in enumerate(net.layers):  # weights wider than 8 bits travel as floats; kofn's metadata has their format
        if L.weighted and L.weight_fmt is None and "weight_fmt" in meta.get(f"l{i}", {}):
            L.weight_fmt = FixedFormat.from_dict(meta[f"l{i}"]["weight_fmt"])
    if not net.quantized:
        missing = [l.node for l in net.layers if (l.weighted and l.weight_fmt is None)
                   or (not LAYER_SPECS[l.kind].passthrough and l.output_fmt is None)]
        raise OnnxImportError(
            "the model is not quantized: " + (", ".join(missing) if missing else "the input") +
            " has no DequantizeLinear weights or requantization; import it as a float model (config `model`) instead"
        )
    layers = []
    if len(net.input_shape) == 3:
        c, h, w = net.input_shape
        in_shape = (h, w, c)
    else:
        in_shape = (net.input_shape[0],)
    names = [meta.get(f"l{i}", {}).get("name", f"l{i}") for i in range(len(net.layers))]
    shapes, fmts = {-1: in_shape}, {-1: net.input_fmt}  # by layer index (-1: the input)
    edges = []
    for i, L in enumerate(net.layers):
        srcs = L.inputs or [i - 1]
        edges.append(tuple(INPUT if j < 0 else names[j] for j in srcs))
        shape, fmt = shapes[srcs[0]], fmts[srcs[0]]
        lname, lm = names[i], meta.get(f"l{i}", {})
        if L.kind == "add":
            layers.append(AddLayer(lname, shape, fmt, fmts[srcs[1]], L.output_fmt, L.relu, L.rounding))
            shapes[i], fmts[i] = shape, L.output_fmt
            continue
        if L.kind == "gap":
            layers.append(GlobalAvgPoolLayer(lname, shape, fmt, L.output_fmt))
            shapes[i], fmts[i] = layers[-1].out_shape, L.output_fmt
            continue
        if not L.weighted:
            layers.append(MaxPool2dLayer(lname, shape, fmt))
            shapes[i], fmts[i] = layers[-1].out_shape, fmt
            continue
        wf = L.weight_fmt
        codes = np.round(L.weight * 2.0 ** wf.frac).astype(np.int64)
        bf = FixedFormat.from_dict(lm["bias_fmt"]) if "bias_fmt" in lm else bias_fmt
        acc_frac = fmt.frac + wf.frac
        if bf is None:
            bq = np.round(L.bias * 2.0 ** acc_frac)
            lo, hi = int(min(bq.min(), 0)), int(max(bq.max(), 0))
            width = max(2, max(lo.bit_length(), hi.bit_length()) + 1)
            bf = FixedFormat(min(width, 32), min(width, 32) - acc_frac)
        b_codes = L.bias * 2.0 ** bf.frac
        if np.any(b_codes != np.round(b_codes)):
            raise OnnxImportError(f"{L.node}: a bias is not exact in {bf.describe()}")
        b_codes = b_codes.astype(np.int64)
        if L.image:
            c_out, c_in, k, _ = codes.shape
            hwc = codes.transpose(0, 2, 3, 1)  # [C_out, K, K, C_in]: window order
            kern = (codes != 0).reshape(c_out, c_in, k * k)
            gran = lm.get("granularity") or ("kernel" if np.all(kern.any(axis=2)[:, :, None] == kern) else "weight")
            if gran == "kernel":
                k_idx = _kofn_rows(kern.any(axis=2), lm.get("k"), L.node, "kernels", pad)
                weights = np.stack([codes[r][k_idx[r]].reshape(-1) for r in range(c_out)])
            else:
                flat = hwc.reshape(c_out, -1)
                k_idx = _kofn_rows(flat != 0, lm.get("k"), L.node, "weights", pad)
                weights = np.take_along_axis(flat, k_idx, axis=1)
            layers.append(Conv2dLayer(lname, shape, k, L.stride, L.pad, gran, k_idx, weights, b_codes,
                                      fmt, wf, bf, L.output_fmt, L.relu, rounding=L.rounding))
        else:
            w = codes
            if L.flatten == "chw" and len(shape) == 3:  # columns in CHW order -> kofn's HWC
                w = w[:, hwc_from_chw(shape)]
            idx = _kofn_rows(w != 0, lm.get("k"), L.node, "weights", pad)
            layers.append(DenseLayer(lname, w.shape[1], idx, np.take_along_axis(w, idx, axis=1), b_codes,
                                     fmt, wf, bf, L.output_fmt, L.relu, rounding=L.rounding))
        accumulator_format(fmt, wf, bf, layers[-1].k_eff if L.image else layers[-1].k)
        shapes[i] = layers[-1].out_shape if L.image else (layers[-1].rows,)
        fmts[i] = L.output_fmt
    return Model(name=name, layers=tuple(layers), meta={"source": "onnx"}, inputs=tuple(edges))


def float_init(net: OnnxNet, layers, image_shape: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Initial ``(weight, bias)`` per weighted layer for a kofn model built from the config's
    ``layers`` (:mod:`kofn.core.layers` specs), checked against the ONNX structure.

    ``image_shape`` is the dataset's (H, W, C) or (n,).  The first dense layer after an image
    gets its columns reordered to kofn's HWC flatten when the ONNX model flattens CHW."""
    want = net.input_shape if len(net.input_shape) == 1 else (net.input_shape[1], net.input_shape[2], net.input_shape[0])
    if tuple(want) != tuple(image_shape):
        raise OnnxImportError(f"the ONNX input is {want} (HWC), the dataset's images are {tuple(image_shape)}")
    kinds = [l.kind for l in net.layers]
    cfg_kinds = [l.type for l in layers]
    if kinds != cfg_kinds:
        raise OnnxImportError(f"the ONNX model's layers are {kinds}, the config's [[layers]] are {cfg_kinds}")
    wired = wiring(layers, tuple(image_shape))  # a graph: the config's layers must read what the ONNX ones read
    for i, L in enumerate(net.layers):
        srcs = tuple(INPUT if j < 0 else wired.names[j] for j in (L.inputs or [i - 1]))
        if srcs != wired.inputs[i]:
            raise OnnxImportError(f"layers[{i}] ({L.node}): the ONNX layer reads {list(srcs)}, the config's "
                                  f"{list(wired.inputs[i])}")
    out = []
    shapes = {-1: tuple(image_shape)}
    for i, (L, c) in enumerate(zip(net.layers, layers)):
        key = f"layers[{i}] ({L.node})"
        shape = shapes[(L.inputs or [i - 1])[0]]
        if not L.weighted:
            shapes[i] = c.out_shape(shape)
            continue
        if c.granularity == "feature_map":
            raise OnnxImportError(f"{key}: feature-map pruning of an imported model is not supported (its next layer "
                                  "would change shape); use weight or kernel granularity")
        w = np.asarray(L.weight, dtype=np.float64)
        if L.image:
            got = (w.shape[0], w.shape[2], L.stride, L.pad)
            cfg = (c.out_channels, c.kernel, c.stride, c.pad)
            if got != cfg:
                raise OnnxImportError(f"{key}: ONNX has out_channels, kernel, stride, pad = {got}, the config {cfg}")
            h = (shape[0] + 2 * L.pad - w.shape[2]) // L.stride + 1
            ww = (shape[1] + 2 * L.pad - w.shape[2]) // L.stride + 1
            shapes[i] = (h, ww, w.shape[0])
        else:
            if w.shape[0] != c.out_features:
                raise OnnxImportError(f"{key}: ONNX has {w.shape[0]} outputs, the config out_features = {c.out_features}")
            if L.flatten == "chw" and len(shape) == 3:
                w = w[:, hwc_from_chw(shape)]
            shapes[i] = (w.shape[0],)
        out.append((w, np.asarray(L.bias, dtype=np.float64)))
    return out
