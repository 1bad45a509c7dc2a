"""Export a kofn IR to other tools: an exact torch model, hls4ml, ONNX.

* :func:`to_torch` rebuilds the IR as a plain ``nn.Sequential`` in PyTorch's usual NCHW
  semantics (zero weights where masks prune, flatten in CHW order with the dense
  columns permuted to match), the common starting point of the other exporters.
* :func:`to_hls4ml` converts that module with hls4ml's PyTorch front end (Vitis backend,
  io_parallel) and sets every layer's precisions from :mod:`kofn.core.fixed`: weights, biases,
  the exact accumulator, and results with ``AP_RND, AP_SAT`` (round half up, saturate; a layer
  with another rounding gets its mode, ``AP_RND_CONV`` or ``AP_TRN``),
  ReLU after them.  hls4ml's C simulation then equals the integer reference bit-exactly
  (:func:`check_hls4ml`).
* :func:`to_onnx` writes standard ONNX (opset :data:`ONNX_OPSET`): int8/int16 weight
  initializers through ``DequantizeLinear`` into float ``Conv``/``Gemm``, and each
  requantization as ``Floor(x * 2^f + 1/2)``, ``Clip`` and ``Relu`` (QuantizeLinear rounds
  half to even, kofn rounds half up, so QuantizeLinear cannot express it; a ``half_even``
  layer gets ``Round``, a ``floor`` layer ``Floor`` alone).  The float32
  arithmetic is exact while every partial sum fits 24 bits, i.e. while each layer's
  accumulator is at most 24 bits wide; :func:`onnx_exactness_bound` says so per model.
"""

from __future__ import annotations

import contextlib
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..core.errors import KofnError
from ..core.fixed import FixedFormat
from ..core.names import INPUT
from ..core.ir import AddLayer, Conv2dLayer, GlobalAvgPoolLayer, Model
from .onnx_read import write_requant
from ..core.rules import hwc_from_chw

__all__ = [
    "to_torch",
    "nchw_inputs",
    "to_hls4ml",
    "check_hls4ml",
    "ONNX_OPSET",
    "to_onnx",
    "run_onnx",
    "onnx_exactness_bound",
    "ExportError",
]

ONNX_OPSET = 19  # DequantizeLinear of int8 weights; wider weights go in as float initializers
ONNX_IR_VERSION = 9  # the IR version of opset 19 (onnxruntime 1.31 reads up to 13)


class ExportError(KofnError):
    """The model cannot be expressed exactly in the target; the message says why."""

    what = "export"


def _chain_only(model: Model, what: str, kinds: tuple[str, ...] = ("dense", "conv", "maxpool"),
                graphs: bool = False) -> None:
    """Exports lay out chains (``graphs``: or graphs) of the layer ``kinds`` they know: a clear
    error for the rest."""
    bad = [L for L in model.layers if L.kind not in kinds]
    if bad or not (graphs or model.is_chain):
        why = f"a layer of kind {bad[0].kind!r} ({bad[0].name!r})" if bad else "a graph (a layer reads other than the one before)"
        raise ExportError(f"{what} of model {model.name!r}: it has {why}; this exporter takes chains of "
                         f"{', '.join(kinds)} layers only so far")


def to_torch(model: Model):
    """The IR as an ``nn.Sequential`` (float64) on NCHW images (or vectors) of real values.

    Module names are the IR layer names, ``<name>_relu`` for ReLUs and ``flatten``.
    Its outputs, times ``2**output_fmt.frac``, are exactly the reference's codes when fed
    the real values of the input codes and followed by the requantizations; the exporters
    attach those.  Plain float evaluation (no requantization) is *not* bit-exact."""
    import torch
    from torch import nn

    _chain_only(model, "torch export")
    mods: OrderedDict = OrderedDict()
    flattened = False
    for L in model.layers:
        if not L.weighted:
            mods[L.name] = nn.MaxPool2d(2)
            continue
        if isinstance(L, Conv2dLayer):
            mod = nn.Conv2d(L.in_channels, L.rows, L.kernel, L.stride, L.pad)
            w = L.dense_weights().reshape(L.rows, L.kernel, L.kernel, L.in_channels).transpose(0, 3, 1, 2)
        else:
            w = L.dense_weights()
            if not flattened and model.layers[0].image:
                mods["flatten"] = nn.Flatten()
                prev = model.image_layers[-1]
                w = w[:, np.argsort(hwc_from_chw(prev.out_shape))]  # HWC columns -> CHW
            flattened = True
            mod = nn.Linear(L.n, L.rows)
        with torch.no_grad():
            mod.weight.copy_(torch.as_tensor(w * L.weight_fmt.scale))
            mod.bias.copy_(torch.as_tensor(L.bias * L.bias_fmt.scale))
        mods[L.name] = mod
        if L.relu:
            mods[f"{L.name}_relu"] = nn.ReLU()
    return nn.Sequential(mods).double()


def nchw_inputs(model: Model, x_codes: np.ndarray) -> np.ndarray:
    """Real values of input codes, reordered from kofn's HWC vectors to ``[N, C, H, W]``
    (vector models: ``[N, n]``)."""
    x = np.asarray(x_codes, dtype=np.float64) * model.input_fmt.scale
    if len(model.input_shape) == 1:
        return x
    h, w, c = model.input_shape
    return np.ascontiguousarray(x.reshape(-1, h, w, c).transpose(0, 3, 1, 2))


# -- hls4ml --------------------------------------------------------------------------------

def to_hls4ml(model: Model, out_dir: str | Path, part: str = "xc7z020clg400-1", clock_ns: float = 10.0):
    """An hls4ml ``ModelGraph`` of ``model`` (Vitis backend, io_parallel, Latency strategy,
    reuse factor 1), written to ``out_dir``; call ``.compile()`` then ``.predict()``."""
    _chain_only(model, "hls4ml export")
    import hls4ml

    for L in model.layers:
        if L.weighted and L.accumulator.width > 64:
            raise ExportError(f"layer {L.name!r}: a {L.accumulator.width}-bit accumulator exceeds ap_fixed's practical range")
    torch_model = to_torch(model)
    in_shape = model.input_shape if len(model.input_shape) == 1 else (
        model.input_shape[2], model.input_shape[0], model.input_shape[1])
    with contextlib.redirect_stdout(sys.stderr):
        cfg = hls4ml.utils.config_from_pytorch_model(
            torch_model, input_shape=in_shape, granularity="name", backend="Vitis", default_precision="ap_fixed<16,6>"
        )
    names = cfg["LayerName"]
    inputs = [n for n in names if n.startswith("input")]
    if len(inputs) != 1:
        raise ExportError(f"hls4ml named the inputs {inputs}; expected one input layer")
    names[inputs[0]]["Precision"]["result"] = model.input_fmt.ap_type()
    for L in model.layers:
        if L.name not in names:
            raise ExportError(f"hls4ml did not keep layer {L.name!r} (it has {sorted(names)})")
        if not L.weighted:
            names[L.name]["Precision"] = {"result": L.output_fmt.ap_type()}
            continue
        acc = L.accumulator
        names[L.name]["Precision"] = {
            "weight": L.weight_fmt.ap_type(),
            "bias": L.bias_fmt.ap_type(),
            "accum": acc.ap_type(),
            "result": L.output_fmt.ap_type(quantize=True, rounding=L.rounding),
        }
        if L.relu:
            names[f"{L.name}_relu"]["Precision"] = {"result": L.output_fmt.ap_type()}
    if "flatten" in names:
        first_dense = model.dense_layers[0]
        names["flatten"]["Precision"] = {"result": first_dense.input_fmt.ap_type()}
    cfg["Model"]["Strategy"] = "Latency"
    cfg["Model"]["ReuseFactor"] = 1
    with contextlib.redirect_stdout(sys.stderr):  # hls4ml narrates on stdout
        return hls4ml.converters.convert_from_pytorch_model(
            torch_model, hls_config=cfg, output_dir=str(out_dir), backend="Vitis", io_type="io_parallel",
            part=part, clock_period=clock_ns,
        )


def check_hls4ml(model: Model, x_codes: np.ndarray, out_dir: str | Path, hls_model=None) -> tuple[np.ndarray, int]:
    """Compile ``model``'s hls4ml project (g++ only) and C-simulate ``x_codes``;
    returns ``(output codes, mismatching codes against the reference)``."""
    from ..core.reference import run

    hm = hls_model or to_hls4ml(model, out_dir)
    with contextlib.redirect_stdout(sys.stderr):
        hm.compile()
    y = np.asarray(hm.predict(nchw_inputs(model, x_codes)), dtype=np.float64).reshape(len(x_codes), -1)
    codes = y * 2.0 ** model.output_fmt.frac
    if np.any(codes != np.round(codes)):
        raise AssertionError("hls4ml returned values that are not codes of the output format")
    codes = codes.astype(np.int64)
    return codes, int((codes != run(model, x_codes)).sum())


# -- ONNX ----------------------------------------------------------------------------------

def onnx_exactness_bound(model: Model) -> dict:
    """Widest accumulator and whether float32 ONNX arithmetic is exact (<= 24 bits)."""
    widths = {L.name: L.accumulator.width for L in model.layers if L.weighted}
    widest = max(widths.values())
    return {"accumulator_bits": widths, "widest": widest, "exact": widest <= 24}


def to_onnx(model: Model, path: str | Path | None = None):
    """``model`` as an ONNX ``ModelProto`` (written to ``path`` when given).

    Input ``x``: float32 real values, ``[N, C, H, W]`` for an image model (``[N, n]`` for a
    vector model).  Output ``y``: float32 real values of the output codes.  Attributes in
    ``metadata_props`` carry the formats (``kofn.input_fmt``, ``kofn.output_fmt``) and the
    exactness bound."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    _chain_only(model, "ONNX export", ("dense", "conv", "maxpool", "gap", "add"), graphs=True)
    nodes, inits = [], []
    counter = [0]

    def const(name: str, value, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        counter[0] += 1
        out = f"t{counter[0]}_{op.lower()}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def requant(x: str, fmt: FixedFormat, relu: bool, tag: str, rounding: str = "half_up") -> str:
        """Real values -> rounded to fmt -> saturated (-> relu) -> real values: the pattern the
        importer reads (:func:`kofn.app.onnx_read.write_requant`)."""
        return write_requant(x, fmt.frac, fmt.min_int, fmt.max_int, rounding, relu, node,
                             lambda key, value: const(f"{tag}_{key}", value))

    def weight(L, w_codes: np.ndarray) -> str:
        fmt = L.weight_fmt
        if fmt.width <= 8:
            q = const(f"{L.name}_w_q", w_codes, np.int8)
            return node("DequantizeLinear", [q, const(f"{L.name}_w_scale", fmt.scale), const(f"{L.name}_w_zp", 0, np.int8)])
        return const(f"{L.name}_w", w_codes * fmt.scale)  # exact in float32 up to 24-bit codes

    x = requant("x", model.input_fmt, False, "in")
    values = {INPUT: x}  # the ONNX tensor of every IR tensor (the layers' outputs, the input)
    images = {INPUT: model.layers[0].image}
    for L, srcs in zip(model.layers, model.inputs):
        x = values[srcs[0]]
        if isinstance(L, AddLayer):  # on-grid values: the float32 sum is exact, then the half-up requantization
            x = requant(node("Add", [x, values[srcs[1]]]), L.output_fmt, L.relu, L.name, L.rounding)
        elif isinstance(L, GlobalAvgPoolLayer):  # the mean of on-grid values, then the half-up requantization (exact in float32
            # for these sizes: the sum is exact, and a mean's distance from a rounding tie, at least
            # 1/(2 H W) of an output LSB, is far above float32's error)
            x = requant(node("GlobalAveragePool", [x]), L.output_fmt, False, L.name)
        elif not L.weighted:
            x = node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        else:
            if isinstance(L, Conv2dLayer):
                w = L.dense_weights().reshape(L.rows, L.kernel, L.kernel, L.in_channels).transpose(0, 3, 1, 2)
                y = node("Conv", [x, weight(L, w), const(f"{L.name}_b", L.bias * L.bias_fmt.scale)],
                         kernel_shape=[L.kernel, L.kernel], strides=[L.stride, L.stride], pads=[L.pad] * 4)
            else:
                if images[srcs[0]]:  # NCHW -> NHWC -> flatten: kofn's HWC order, no weight permutation
                    x = node("Flatten", [node("Transpose", [x], perm=[0, 2, 3, 1])], axis=1)
                y = node("Gemm", [x, weight(L, L.dense_weights()), const(f"{L.name}_b", L.bias * L.bias_fmt.scale)],
                         transB=1)
            x = requant(y, L.output_fmt, L.relu, L.name, L.rounding)
        values[L.name], images[L.name] = x, L.image
    nodes[-1].output[0] = "y"
    in_shape = ["N", model.input_shape[2], model.input_shape[0], model.input_shape[1]] if len(model.input_shape) == 3 else ["N", model.n_inputs]
    graph = helper.make_graph(
        nodes, model.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", model.n_outputs])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="kofn",
                              ir_version=ONNX_IR_VERSION)
    bound = onnx_exactness_bound(model)
    layers_meta = {
        f"l{i}": {"name": L.name, "k": L.k, "granularity": getattr(L, "granularity", "weight"),
                  "weight_fmt": L.weight_fmt.to_dict(), "bias_fmt": L.bias_fmt.to_dict()} if L.weighted else {"name": L.name}
        for i, L in enumerate(model.layers)
    }
    for k, v in {"kofn.input_fmt": model.input_fmt.to_dict(), "kofn.output_fmt": model.output_fmt.to_dict(),
                 "kofn.exact_float32": bound["exact"], "kofn.widest_accumulator_bits": bound["widest"],
                 "kofn.layers": layers_meta}.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=k, value=json.dumps(v)))
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, str(path))
    return proto


def run_onnx(model: Model, proto_or_path, x_codes: np.ndarray) -> np.ndarray:
    """Output codes of the ONNX model under onnxruntime for input codes ``x_codes``."""
    import onnxruntime as ort

    data = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") else str(proto_or_path)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    y = sess.run(["y"], {"x": nchw_inputs(model, x_codes).astype(np.float32)})[0].astype(np.float64)
    return np.round(y * 2.0 ** model.output_fmt.frac).astype(np.int64)
