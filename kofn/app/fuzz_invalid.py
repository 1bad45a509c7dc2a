"""Invalid flow configs for the fuzzer (:mod:`kofn.app.fuzz`): the default config with one
value that is invalid by construction, and the key the validation's error must name.

:func:`invalid_config` draws one of :data:`INVALID_CASES` mutations from a seed; the test suite
(``tests/test_robust.py``) runs every one through ``kofn flow`` and checks exit 2, one line naming
the key, nothing written.
"""

from __future__ import annotations

import random
import re

__all__ = ["invalid_config", "INVALID_CASES"]

#: (TOML key line to replace, the value that breaks it, the key the error must name); each
#: invalid by construction against the default config (64-32-10 on digits).
_BAD: list[tuple[str, str, str]] = [
    ("name", '"../pwned"', "name"), ("name", '"a b"', "name"), ("name", '""', "name"), ("name", "3", "name"),
    ("seed", '"x"', "seed"), ("epochs", "-1", "train.epochs"), ("epochs", "0", "train.epochs"),
    ("epochs", '"ten"', "train.epochs"), ("batch_size", "0", "train.batch_size"), ("lr", "-0.1", "train.lr"),
    ("lr", "true", "train.lr"), ("method", '"sgd"', "train.method"), ("dataset", '"cifar"', "data.dataset"),
    ("test_fraction", "1.5", "data.test_fraction"), ("test_fraction", "0", "data.test_fraction"),
    ("out_features = 32", "0", "layers[0].out_features"), ("out_features = 32", "-3", "layers[0].out_features"),
    ("out_features = 32", "2000000", "layers[0].out_features"),
    ("out_features = 10", "7", "layers[1].out_features"), ("out_features = 10", "11", "layers[1].out_features"),
    ("k = 16", "0", "layers[0].k"), ("k = 16", "65", "layers[0].k"), ("k = 16", '"16"', "layers[0].k"),
    ("k = 16", "16.5", "layers[0].k"), ("k = 8", "33", "layers[1].k"), ("k = 8", "-1", "layers[1].k"),
    ("granularity", '"neuron"', "layers[0].granularity"), ("granularity", '"kernel"', "layers[0].granularity"),
    ("lanes", "0", "layers[0].lanes"), ("lanes", "17", "layers[0].lanes"), ("lanes", '"fast"', "layers[0].lanes"),
    ("relu", '"yes"', "layers[0].relu"), ("weight", "{ width = 1, int_bits = 1 }", "layers[0].weight"),
    ("weight", "{ width = 70, int_bits = 2 }", "layers[0].weight"),
    ("weight", "{ width = 8, int_bits = 9 }", "layers[0].weight"),
    ("weight", "{ width = 8, int_bits = 2, signed = false }", "layers[0].weight.signed"),
    ("weight", "{ width = 8 }", "layers[0].weight.int_bits"), ("weight", "8", "layers[0].weight"),
    ("weight", "{ width = 8, int_bits = 2, sign = true }", "layers[0].weight.sign"),
    ("bias", "{ width = 8, int_bits = 2, signed = false }", "layers[0].bias.signed"),
    ("random_vectors", "-1", "sim.random_vectors"), ("random_vectors", "1000000000000", "sim.random_vectors"),
    ("random_vectors", "1e9", "sim.random_vectors"), ("stall_prob", "1.0", "sim.stall_prob"),
    ("timing_vectors", "4", "sim.timing_vectors"), ("top", '"kofn_dense"', "hw.top"), ("top", '"module"', "hw.top"),
    ("top", '"a/b"', "hw.top"), ("top", '"../x"', "hw.top"), ("clock_mhz", "0", "hw.clock_mhz"),
    ("schedule", '"pipelined"', "hw.schedule"), ("target_ii", "-5", "hw.target_ii"),
    ("stream_in", "-1", "hw.stream_in"), ("stream_out", "-1", "hw.stream_out"),
    # more values per beat than a frame holds (64 inputs, 10 outputs)
    ("stream_in", "100000", "hw.stream_in"), ("stream_in", "65", "hw.stream_in"), ("stream_out", "11", "hw.stream_out"),
]

#: Whole-config mutations: (TOML appended or substituted, the key named).
_BAD_EXTRA: list[tuple[str, str, str]] = [
    ("append", "bogus_key = 1\n", "bogus_key"),
    ("sub", "rtl = true|rtl = false|hls = true|hls = false", "sim.rtl"),
    ("sub", "test_vectors = -1|test_vectors = 0|random_vectors = 1000|random_vectors = 0", "sim.test_vectors"),
    ("train_append", "bogus = 2\n", "train.bogus"),
    ("hw_append", "frequency = 100\n", "hw.frequency"),
    ("layer0_append", "stride = 2\n", "layers[0].stride"),
    ("layer0_append", "block = 4\n", "layers[0].block"),
    # wider than 1024 bits of tdata: 43 lanes of 24 bits
    ("sub", "input = { width = 8, int_bits = 1, signed = false }|input = { width = 24, int_bits = 1, signed = false }|"
            "stream_in = 0|stream_in = 43", "hw.stream_in"),
    # a banked first layer takes at most one value per bank memory and beat
    ("sub", 'granularity = "weight"|granularity = "bank"|lanes = "auto"|lanes = 8|stream_in = 0|stream_in = 9',
     "hw.stream_in"),
    # an image model's first layer (here a pool) takes one value per beat
    ("sub", '[[layers]]|[[layers]]\ntype = "maxpool"\n\n[[layers]]|stream_in = 0|stream_in = 2', "hw.stream_in"),
]


INVALID_CASES = len(_BAD) + len(_BAD_EXTRA)


def invalid_config(seed: int, case: int | None = None) -> tuple[str, str]:
    """The default config with one invalid value drawn from ``seed`` (or the ``case``-th of
    :data:`INVALID_CASES`); returns ``(toml, key)``, ``key`` being what the error must name."""
    from .config import default_config_text

    text = default_config_text()
    cases = _BAD + _BAD_EXTRA
    where, value, key = cases[random.Random(seed).randrange(len(cases)) if case is None else case]
    if where == "append":
        return value + text, key
    if where == "sub":  # old|new pairs, each the first such line
        parts = value.split("|")
        for old, new in zip(parts[::2], parts[1::2]):
            text, n = re.subn(rf"^{re.escape(old)}(?!\w)", new, text, count=1, flags=re.M)
            if n != 1:
                raise RuntimeError(f"fuzz: the default config has no line {old!r}")
        return text, key
    if where in ("train_append", "hw_append"):
        table = {"train_append": "[train]", "hw_append": "[hw]"}[where]
        return text.replace(f"\n{table}\n", f"\n{table}\n{value}", 1), key
    if where == "layer0_append":
        return re.sub(r"^\[\[layers\]\][^\n]*\n", lambda m: m.group(0) + value, text, count=1, flags=re.M), key
    if "=" in where:  # a specific line
        name, _ = where.split(" = ", 1)
        new, n = re.subn(rf"^{re.escape(where)}\b", f"{name} = {value}", text, count=1, flags=re.M)
    else:
        new, n = re.subn(rf"^{re.escape(where)} = [^#\n]*", f"{where} = {value} ", text, count=1, flags=re.M)
    if n != 1:
        raise RuntimeError(f"fuzz: the default config has no line {where!r}")
    return new, key
