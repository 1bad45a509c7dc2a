"""Flow configuration: a TOML file mapped onto frozen dataclasses, validated before any work.

Every key is checked: an unknown key, a missing required key, a wrong type or an
impossible value (k > n, k < 1, a width smaller than its integer bits, lanes outside
1..k ...) raises :class:`ConfigError` naming the key, e.g. ``layers[0].k``.  Nothing
falls back silently.  ``kofn/default.toml`` is the embedded default and documents
every key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.errors import fail as _fail
from ..core.fixed import FixedFormat
from ..core.names import check_identifier
from ..core.layers import INPUT, LAYER_SPECS, LayerSpec, arity, check_size, validate_graph, wiring
from ..pruning.hparams import (  # noqa: F401  (re-exported: the [train] table's types)
    GRANULARITIES,
    METHODS,
    DPPConfig,
    DTPConfig,
    GradualConfig,
    MagnitudeConfig,
    PSPConfig,
    SRSTEConfig,
    TrainConfig,
)

__all__ = [
    "METHODS",
    "GRANULARITIES",
    "ConfigError",
    "DataConfig",
    "TrainConfig",
    "LayerSpec",
    "SimConfig",
    "HwConfig",
    "FlowConfig",
    "check_beats",
    "load_config",
    "read_config_text",
    "parse_config",
    "default_config_text",
]


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # "digits" (bundled), "mnist" (IDX folder in `path`) or "cifar10" (python batches in `path`)
    path: str = ""  # folder of MNIST IDX files or CIFAR-10 batches; relative paths are relative to the config file
    test_fraction: float = 0.2  # digits only: share of the 1797 images held out for test

    @property
    def n_features(self) -> int:
        """Inputs per image: 64 for the 8x8 digits, 784 for 28x28 MNIST, 3072 for 32x32x3 CIFAR-10."""
        return {"digits": 64, "mnist": 784, "cifar10": 3072}[self.dataset]

    @property
    def n_classes(self) -> int:
        """Classes the labels take: ten digits for both datasets."""
        return 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image: 8x8x1 digits, 28x28x1 MNIST, 32x32x3 CIFAR-10."""
        return {"digits": (8, 8, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}[self.dataset]

    def validate(self, key: str) -> None:
        if self.dataset not in ("digits", "mnist", "cifar10"):
            _fail(f"{key}.dataset", f"must be 'digits', 'mnist' or 'cifar10', got {self.dataset!r}")
        if self.dataset in ("mnist", "cifar10") and not self.path:
            what = "IDX files" if self.dataset == "mnist" else "CIFAR-10's python batches"
            _fail(f"{key}.path", f"is required for dataset {self.dataset!r} (a folder of {what})")
        if not 0.0 < self.test_fraction < 1.0:
            _fail(f"{key}.test_fraction", f"must be in (0, 1), got {self.test_fraction}")


MAX_VECTORS = 1_000_000  # random vectors a flow simulates at most (each is kept in memory several times)


@dataclass(frozen=True)
class SimConfig:
    rtl: bool = True  # run the cocotb + Verilator simulation
    hls: bool = True  # run the HLS C simulation (g++)
    random_vectors: int = 1000  # random input vectors, uniform over the input format
    test_vectors: int = -1  # test-split vectors to simulate; -1 = all
    rtl_test_vectors: int = -1  # of those, how many the RTL simulation streams too; -1 = all
    stall_prob: float = 0.25  # per-cycle probability of a tvalid gap / tready stall
    timing_vectors: int = 12  # stall-free vectors streamed first to measure latency and II
    seed: int = 0

    def validate(self, key: str) -> None:
        if not (self.rtl or self.hls):
            _fail(f"{key}.rtl", "rtl = false and hls = false: nothing would check the generated hardware against "
                                "the reference (a flow exits 0 only when its simulations matched); enable one")
        if not 0 <= self.random_vectors <= MAX_VECTORS:
            _fail(f"{key}.random_vectors", f"must be in 0..{MAX_VECTORS:,}, got {self.random_vectors:,}")
        for name in ("test_vectors", "rtl_test_vectors"):
            if getattr(self, name) < -1:
                _fail(f"{key}.{name}", f"must be -1 (all) or >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.stall_prob < 1.0:
            _fail(f"{key}.stall_prob", f"must be in [0, 1), got {self.stall_prob}")
        if self.random_vectors == 0 and self.test_vectors == 0:
            _fail(f"{key}.test_vectors", "random_vectors = 0 and test_vectors = 0 leave nothing to simulate")
        if self.rtl and self.random_vectors == 0 and self.rtl_test_vectors == 0:
            _fail(f"{key}.rtl_test_vectors", "random_vectors = 0 and rtl_test_vectors = 0 leave the RTL simulation "
                                             "nothing to stream")
        if not 10 <= self.timing_vectors <= 1000:
            _fail(f"{key}.timing_vectors", f"must be in 10..1000 (the steady II is measured over back-to-back "
                                           f"inferences after the pipeline fills), got {self.timing_vectors}")


@dataclass(frozen=True)
class HwConfig:
    top: str = "kofn_top"  # RTL top module and HLS top function name
    part: str = "xc7z020clg400-1"  # FPGA part written into the Vitis HLS Tcl
    clock_mhz: float = 100.0
    schedule: str = "dataflow"  # "dataflow": layers overlap across inferences; "sequential": one at a time
    stream_in: int = 0  # input values per s_axis beat (0: auto, the fewest that do not bind the II)
    stream_out: int = 0  # output values per m_axis beat (0: auto, likewise)
    target_ii: int = 0  # lanes = "auto": the fewest multipliers whose stages all fit this II ...
    max_dsp: int = 0  # ... or the lowest II within this many multipliers (0: unset)

    def validate(self, key: str) -> None:
        try:
            check_identifier(self.top, "top module name")
        except ValueError as e:
            _fail(f"{key}.top", str(e))
        from ..codegen.kinds import reserved_module_names

        if self.top in reserved_module_names():
            _fail(f"{key}.top", f"{self.top!r} is the name of a module kofn generates "
                                f"({', '.join(sorted(reserved_module_names()))}); choose another")
        if not self.clock_mhz > 0:
            _fail(f"{key}.clock_mhz", f"must be > 0, got {self.clock_mhz}")
        if self.schedule not in ("dataflow", "sequential"):
            _fail(f"{key}.schedule", f"must be 'dataflow' or 'sequential', got {self.schedule!r}")
        for name in ("stream_in", "stream_out", "target_ii", "max_dsp"):
            if getattr(self, name) < 0:
                _fail(f"{key}.{name}", f"must be >= 0 (0: {'auto' if name.startswith('stream') else 'unset'}), "
                                       f"got {getattr(self, name)}")
        for name in ("stream_in", "stream_out"):
            if self.schedule == "sequential" and getattr(self, name) > 1:
                _fail(f"{key}.{name}", f"must be 0 or 1: the sequential schedule streams one value per beat, "
                                       f"got {getattr(self, name)}")
        if self.target_ii and self.max_dsp:
            _fail(f"{key}.max_dsp", "give hw.target_ii or hw.max_dsp, not both")


def check_beats(hw: HwConfig, limit_in: tuple[int, str], limit_out: tuple[int, str]) -> None:
    """:class:`ConfigError` naming ``hw.stream_in`` or ``hw.stream_out`` and the largest value
    allowed when either asks more values per beat than its limit
    (:func:`kofn.codegen.build.beat_limit`: the frame's values, 1024 bits of tdata, the first
    layer's banks, one value for an image model)."""
    from ..codegen.build import beat_error

    for name, limit in (("stream_in", limit_in), ("stream_out", limit_out)):
        if err := beat_error(getattr(hw, name), limit):
            _fail(f"hw.{name}", err)


@dataclass(frozen=True)
class FlowConfig:
    layers: tuple[LayerSpec, ...] = ()
    name: str = "kofn_mlp"
    model: str = ""  # an ONNX file (relative to the config): a float model is k-of-n pruned and fine-tuned
    #                  with the [[layers]] settings; a quantized k-of-n one goes straight to codegen
    seed: int = 0
    input: FixedFormat = FixedFormat(8, 1, signed=False)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    hw: HwConfig = field(default_factory=HwConfig)
    source: str = "<default>"  # where the config came from (not a TOML key)

    def validate(self) -> None:
        """Check every value, layer 0's k against the dataset's feature count included."""
        try:
            check_identifier(self.name, "model name")
        except ValueError as e:  # it names files (BUILD/<name>.onnx) and the IP: no path, no odd character
            _fail("name", str(e))
        self.data.validate("data")
        self.train.validate("train")
        self.sim.validate("sim")
        self.hw.validate("hw")
        if not self.layers:
            if self.model:
                return  # a quantized ONNX model brings its own layers (checked when it is read)
            _fail("layers", "at least one [[layers]] table is required")
        out_shape = validate_graph(self.layers, self.input_shape)
        if out_shape[0] != self.data.n_classes:
            last = len(self.layers) - 1
            _fail(f"layers[{last}].out_features", f"the last layer gives the logits of the {self.data.dataset} "
                                                  f"dataset's {self.data.n_classes} classes: must be {self.data.n_classes}, "
                                                  f"got {out_shape[0]}")
        check_size(self.layers, self.input_shape)
        self._check_accumulators()
        if any(layer.lanes == "auto" for layer in self.layers) and not (self.hw.target_ii or self.hw.max_dsp):
            _fail("hw.target_ii", 'lanes = "auto" needs hw.target_ii (fewest multipliers reaching it) or '
                                  "hw.max_dsp (lowest II within it)")
        if any(layer.weighted and layer.granularity == "bank" and layer.lanes == "auto" for layer in self.layers):
            # a bank layer's lanes are its banks, which training needs: fold them now
            from ..codegen.folding import resolve_bank_lanes

            try:
                layers = resolve_bank_lanes(self.layers, self.input_shape, self.hw.target_ii, self.hw.max_dsp)
            except ValueError as e:
                _fail("hw.max_dsp", str(e))
            object.__setattr__(self, "layers", layers)
            validate_graph(self.layers, self.input_shape)
        if not self.model:  # an ONNX model's formats may be its own: preflight checks them on its IR
            self.check_streams(out_shape[0])

    def check_buildable(self) -> None:
        """:class:`ConfigError` naming the first layer the hardware generator cannot build yet:
        an ``add`` layer, or one that does not read the layer before it (a residual graph).  Such a stack validates, trains (:class:`kofn.pruning.KofnNet`) and runs in the
        integer reference; ``kofn flow`` checks this before training so no time is lost."""
        w = wiring(self.layers, self.input_shape)
        prev = INPUT
        why = ("kofn flow builds chains of dense, conv, maxpool and gap layers into hardware; residual graphs "
               "train (kofn.pruning.KofnNet) and run in the integer reference but have no RTL yet")
        for i, (spec, srcs) in enumerate(zip(self.layers, w.inputs)):
            if arity(spec) > 1:  # a join
                _fail(f"layers[{i}].type", f"{spec.type!r}: {why}")
            if srcs != (prev,):
                _fail(f"layers[{i}].inputs", f"{list(srcs)} (not the layer before): {why}")
            prev = w.names[i]

    def check_streams(self, n_outputs: int) -> None:
        """``hw.stream_in`` / ``hw.stream_out`` against what one beat may carry
        (:func:`kofn.codegen.build.beat_limit`), from the layers' sizes and formats; ``n_outputs``:
        the last layer's."""
        from ..codegen.build import beat_limit

        first, n_in = self.layers[0], int(math.prod(self.input_shape))
        banks = 1 if first.image or not first.weighted else first.banks(n_in) or 1
        check_beats(self.hw, beat_limit(n_in, self.input, banks, first.image),
                    beat_limit(n_outputs, self.layers[-1].output, what="output"))

    def _check_accumulators(self) -> None:
        """Every weighted layer's bias aligns with its accumulator, whose width is bounded:
        :func:`kofn.core.fixed.accumulator_format` on the formats the layer will read."""
        from ..codegen.handler import requant_shift
        from ..core.fixed import accumulator_format

        wired = wiring(self.layers, self.input_shape)
        fmts = {INPUT: self.input}
        for i, layer in enumerate(self.layers):
            act, shape = fmts[wired.inputs[i][0]], wired.in_shapes[i][0]
            fmts[wired.names[i]] = act if layer.passthrough else layer.output
            if layer.weighted:
                row = layer.row_entries(shape)
                try:
                    acc = accumulator_format(act, layer.weight, layer.bias, row)
                except ValueError as e:
                    _fail(f"layers[{i}].bias", f"{e} (this layer reads {act.describe()} and has "
                                               f"{layer.weight.describe()} weights)")
                try:  # the hardware requantizes by a right shift
                    requant_shift(acc.frac, layer.output)
                except ValueError as e:
                    _fail(f"layers[{i}].output", f"{e}: {act.frac} of {act.describe()} + {layer.weight.frac} of "
                                                 f"{layer.weight.describe()}; narrow it or widen the weight or input")

    @property
    def is_image_model(self) -> bool:
        """True when a layer is a convolution or a pool (the model then takes HWC images)."""
        return any(layer.image for layer in self.layers)

    @property
    def input_shape(self) -> tuple:
        """What the first layer reads: the dataset's ``(H, W, C)`` image, or its features ``(n,)``."""
        return self.data.image_shape if self.is_image_model else (self.data.n_features,)


_FORMAT_KEYS = {"width", "int_bits", "signed"}


def _build_format(value: Any, key: str) -> FixedFormat:
    if not isinstance(value, dict):
        _fail(key, f"must be a table {{width, int_bits, signed}}, got {value!r}")
    unknown = set(value) - _FORMAT_KEYS
    if unknown:
        _fail(f"{key}.{sorted(unknown)[0]}", "unknown key (a format has width, int_bits, signed)")
    for req in ("width", "int_bits"):
        if req not in value:
            _fail(f"{key}.{req}", "missing")
        if not isinstance(value[req], int) or isinstance(value[req], bool):
            _fail(f"{key}.{req}", f"must be an integer, got {value[req]!r}")
    signed = value.get("signed", True)
    if not isinstance(signed, bool):
        _fail(f"{key}.signed", f"must be true or false, got {signed!r}")
    try:
        return FixedFormat(value["width"], value["int_bits"], signed)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{key}: {e}") from None


def _build_layer(table: Any, key: str) -> LayerSpec:
    """A ``[[layers]]`` table: its ``type`` (default ``dense``) picks the spec class."""
    if not isinstance(table, dict):
        _fail(key, f"must be a table, got {table!r}")
    table = dict(table)
    kind = table.pop("type", "dense")
    if kind not in LAYER_SPECS:
        _fail(f"{key}.type", f"must be one of {', '.join(LAYER_SPECS)}, got {kind!r}")
    cls = LAYER_SPECS[kind]
    own = {f.name for f in dataclasses.fields(cls)}
    for name in table:
        if name in own:
            continue
        if name == "lanes" and not cls.weighted:
            _fail(f"{key}.lanes", f"a {kind} layer has no MAC lanes")
        other = [t for t, c in LAYER_SPECS.items() if name in {f.name for f in dataclasses.fields(c)}]
        if other:
            _fail(f"{key}.{name}", f"only meaningful for type = {' or '.join(repr(o) for o in other)}, "
                                   f"not {kind!r}")
    return _build(cls, table, key)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is FixedFormat:
        return _build_format(value, key)
    if tp == LayerSpec:
        return _build_layer(value, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is tuple:  # tuple[X, ...]
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, list):
            _fail(key, f"must be an array, got {value!r}")
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(value, str) and str in args:  # e.g. lanes = "auto"
            return value
        return _coerce(value, args[0], key)
    if tp is bool:
        if not isinstance(value, bool):
            _fail(key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(key, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _fail(key, f"must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # pragma: no cover


def _build(cls: type, table: Any, prefix: str) -> Any:
    if not isinstance(table, dict):
        _fail(prefix or "config", f"must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    for key in table:
        if key not in fields:
            where = f"{prefix}.{key}" if prefix else key
            _fail(where, f"unknown key (allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        where = f"{prefix}.{name}" if prefix else name
        if name in table:
            kwargs[name] = _coerce(table[name], hints[name], where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            _fail(where, "missing required key")
    return cls(**kwargs)


def parse_config(text: str, source: str = "<string>") -> FlowConfig:
    """Parse and validate TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None
    cfg = _build(FlowConfig, doc, "")
    cfg = dataclasses.replace(cfg, source=source)
    cfg.validate()
    return cfg


def default_config_text() -> str:
    """The embedded default configuration (digits, 64-32-10, k/n = 1/4)."""
    return files("kofn").joinpath("default.toml").read_text()


def read_config_text(path: str | Path | None) -> str:
    """The TOML text of ``path`` (the embedded default when ``None``), or :class:`ConfigError`
    when it is missing, not a file, unreadable or not UTF-8."""
    if path is None:
        return default_config_text()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: " + ("is a folder, not a config file" if p.is_dir() else "no such config file"))
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read it: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          "TOML files are UTF-8") from None


def load_config(path: str | Path | None, text: str | None = None) -> FlowConfig:
    """Load ``path`` (or the embedded default when ``None``; ``text``: its already read
    contents); relative data and model paths are resolved against the config file's folder."""
    text = read_config_text(path) if text is None else text
    if path is None:
        return parse_config(text, "<default>")
    p = Path(path)
    cfg = parse_config(text, str(p))
    if cfg.data.path and not Path(cfg.data.path).is_absolute():
        data = dataclasses.replace(cfg.data, path=str((p.parent / cfg.data.path).resolve()))
        cfg = dataclasses.replace(cfg, data=data)
    if cfg.model and not Path(cfg.model).is_absolute():
        cfg = dataclasses.replace(cfg, model=str((p.parent / cfg.model).resolve()))
    if cfg.model and not Path(cfg.model).is_file():
        raise ConfigError(f"model: ONNX file {cfg.model} does not exist")
    return cfg
