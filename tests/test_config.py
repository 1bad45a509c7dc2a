"""Config validation: every impossible value is an error naming its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kofn.app.config import ConfigError, default_config_text, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]


def _edit(pattern: str, repl: str) -> str:
    text, n = re.subn(pattern, repl, default_config_text(), count=1, flags=re.M)
    assert n == 1, pattern
    return text


def test_default_is_valid():
    cfg = load_config(None)
    assert cfg.data.dataset == "digits"
    assert [l.k for l in cfg.layers] == [16, 8]
    assert all(l.k / n <= 0.25 for l, n in zip(cfg.layers, (64, 32)))


@pytest.mark.parametrize(
    "pattern, repl, key",
    [
        (r"^k = 16", "k = 65", r"layers\[0\]\.k: must be in 1\.\.64"),
        (r"^k = 8", "k = 33", r"layers\[1\]\.k: must be in 1\.\.32"),
        (r"^k = 16", "k = 0", r"layers\[0\]\.k"),
        (r"^k = 16", "kk = 16", r"layers\[0\]\.kk: unknown key"),
        (r"^weight = \{ width = 8, int_bits = 2 \}", "weight = { width = 2, int_bits = 3 }",
         r"layers\[0\]\.weight: width \(2\) is smaller than int_bits \(3\)"),
        (r'^lanes = "auto"', "lanes = 17", r"layers\[0\]\.lanes: must be \"auto\" or in 1\.\.16 \(entries per row\)"),
        (r'^lanes = "auto"', 'lanes = "fast"', r"layers\[0\]\.lanes: must be \"auto\""),
        (r"^target_ii = 32", "target_ii = 0", r"hw\.target_ii: lanes = \"auto\" needs"),
        (r"^target_ii = 32", "target_ii = 32\nmax_dsp = 20", r"hw\.max_dsp: give hw\.target_ii or hw\.max_dsp"),
        (r'^schedule = "dataflow"', 'schedule = "pipelined"', r"hw\.schedule"),
        (r'^schedule = "dataflow"(.*\n)+?stream_out = 0', 'schedule = "sequential"\nstream_out = 2',
         r"^hw\.stream_out: must be 0 or 1: the sequential schedule streams one value per beat, got 2$"),
        (r'^schedule = "dataflow"(.*\n)+?stream_in = 0', 'schedule = "sequential"\nstream_in = 3',
         r"^hw\.stream_in: must be 0 or 1: the sequential"),
        (r"^timing_vectors = 12", "timing_vectors = 4", r"sim\.timing_vectors: must be in 10..1000"),
        (r"^method = \"dpp\"", "method = \"obd\"", r"train\.method: must be one of dense, dpp"),
        (r"^granularity = \"weight\"", "granularity = \"kernel\"", r"layers\[0\]\.granularity: 'kernel' applies to Conv2d"),
        (r"^granularity = \"weight\"", "granularity = \"block\"\nblock = 5", r"layers\[0\]\.block: .*dividing the layer's 64"),
        (r"^granularity = \"weight\"", "granularity = \"block\"\nblock = 8", r"layers\[0\]\.k: must be in 1\.\.8 \(the block M\)"),
        (r"^granularity = \"weight\"", "granularity = \"weight\"\nblock = 8", r"layers\[0\]\.block: only meaningful"),
        (r"^k = 8", "k = 8\ngranularity = \"feature_map\"", r"layers\[1\]\.granularity: the last layer"),
        (r"^tau_end = 0.5", "tau_end = 0", r"train\.dpp\.tau_end: must be > 0"),
        (r"^ste_start = 0.5", "ste_start = 1.5", r"train\.psp\.ste_start: must be in \[0, 1\]"),
        (r"^end = 0.6", "end = 0.6\nstop = 1", r"train\.gradual\.stop: unknown key"),
        (r'^lanes = "auto"', "lanes = 0", r"layers\[0\]\.lanes"),
        (r"^epochs = 60", "epochs = 0", r"train\.epochs"),
        (r"^epochs = 60", "epochs = 'many'", r"train\.epochs: must be an integer"),
        (r"^dataset = \"digits\"", "dataset = \"cifar\"", r"data\.dataset"),
        (r"^dataset = \"digits\"", "dataset = \"mnist\"", r"data\.path: is required"),
        (r"^stall_prob = 0.25", "stall_prob = 1.5", r"sim\.stall_prob"),
        (r"^top = \"kofn_top\"", "top = \"2bad name\"", r"hw\.top"),
        (r"^seed = 0", "seed = 0\nbogus = 1", r"bogus: unknown key"),
        (r"^weight = \{ width = 8, int_bits = 2 \}", "weight = { width = 8, int_bits = 2, sign = true }",
         r"layers\[0\]\.weight\.sign: unknown key"),
        (r"^weight = \{ width = 8, int_bits = 2 \}", "weight = { width = 8, int_bits = 2, signed = false }",
         r"layers\[0\]\.weight\.signed: weights must be signed"),
    ],
)
def test_bad_values_name_the_key(pattern, repl, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(_edit(pattern, repl))


_BANK0 = r'^granularity = "weight"(.*\n)+?lanes = "auto"'  # layer 0's granularity .. lanes lines


@pytest.mark.parametrize(
    "pattern, repl, key",
    [
        # P must divide k: k/P of every bank
        (_BANK0, 'granularity = "bank"\nlanes = 3',
         r"layers\[0\]\.lanes: granularity 'bank' keeps k/P of every bank: P = 3 does not divide k = 16 "
         r"\(P dividing both k = 16 and n = 64: 1, 2, 4, 8, 16\)"),
        # P must divide n: the bank size names the problem (no padded bank)
        (r"^k = 16(.*\n)+?lanes = \"auto\"", 'k = 24\ngranularity = "bank"\nlanes = 3',
         r"layers\[0\]\.lanes: granularity 'bank' splits the 64 inputs into P banks of n/P: P = 3 does not divide "
         r"64 \(banks of 21\.33; banks are not padded"),
        (_BANK0, 'granularity = "bank"\nlanes = 17', r"layers\[0\]\.lanes: must be \"auto\" or in 1\.\.16"),
        (_BANK0, 'granularity = "bank"\nblock = 4\nlanes = 4', r"layers\[0\]\.block: only meaningful"),
    ],
)
def test_bad_banks_name_the_key(pattern, repl, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(_edit(pattern, repl))


_IN8 = r"^input = \{ width = 8, int_bits = 1, signed = false \}"


@pytest.mark.parametrize(
    "edits, key",
    [
        # more values per beat than a frame holds: 64 inputs, 10 outputs
        ([(r"^stream_in = 0", "stream_in = 100000")],
         r"^hw\.stream_in: must be at most 64 \(a frame holds 64 input values\), got 100,000$"),
        ([(r"^stream_in = 0", "stream_in = 65")], r"^hw\.stream_in: must be at most 64 "),
        ([(r"^stream_out = 0", "stream_out = 11")],
         r"^hw\.stream_out: must be at most 10 \(a frame holds 10 output values\), got 11$"),
        # wider than 1024 bits of tdata: a 24-bit input takes a 24-bit lane, 42 of them fit
        ([(_IN8, "input = { width = 24, int_bits = 1, signed = false }"), (r"^stream_in = 0", "stream_in = 43")],
         r"^hw\.stream_in: must be at most 42 \(42 lanes of 24 bits fill the 1,024-bit tdata limit\), got 43$"),
        # a banked first layer: one value per bank memory and beat, hand-set P and folded P alike
        ([(_BANK0, 'granularity = "bank"\nlanes = 8'), (r"^stream_in = 0", "stream_in = 9")],
         r"^hw\.stream_in: must be at most 8 \(the first layer keeps its inputs in 8 bank memories"),
        ([(_BANK0, 'granularity = "bank"\nlanes = "auto"'), (r"^stream_in = 0", "stream_in = 17")],
         r"^hw\.stream_in: must be at most 16 \(the first layer keeps its inputs in 16 bank memories"),
        # an image model's first layer (a pool here) takes one value per beat
        ([(r"^\[\[layers\]\]", '[[layers]]\ntype = "maxpool"\n\n[[layers]]'), (r"^stream_in = 0", "stream_in = 2")],
         r"^hw\.stream_in: must be at most 1 \(an image model's first layer takes one value per beat\), got 2$"),
    ],
)
def test_stream_wider_than_a_beat_can_carry(edits, key):
    text = default_config_text()
    for pattern, repl in edits:
        text, n = re.subn(pattern, repl, text, count=1, flags=re.M)
        assert n == 1, pattern
    with pytest.raises(ConfigError, match=key):
        parse_config(text)


@pytest.mark.parametrize("edits", [
    [(r"^stream_in = 0", "stream_in = 64"), (r"^stream_out = 0", "stream_out = 10")],
    [(_IN8, "input = { width = 24, int_bits = 1, signed = false }"), (r"^stream_in = 0", "stream_in = 42")],
    [(_BANK0, 'granularity = "bank"\nlanes = 8'), (r"^stream_in = 0", "stream_in = 8")],
    [(r"^\[\[layers\]\]", '[[layers]]\ntype = "maxpool"\n\n[[layers]]'), (r"^stream_in = 0", "stream_in = 1")],
])
def test_stream_at_its_limit_is_accepted(edits):
    text = default_config_text()
    for pattern, repl in edits:
        text = re.sub(pattern, repl, text, count=1, flags=re.M)
    parse_config(text)


def test_bank_after_feature_map_is_refused():
    text = _edit(_BANK0, 'granularity = "feature_map"\nlanes = "auto"')
    text = re.sub(r"^k = 8\n", 'k = 8\ngranularity = "bank"\n', text, count=1, flags=re.M)
    with pytest.raises(ConfigError, match=r"layers\[1\]\.granularity: 'bank' cannot read layers\[0\]"):
        parse_config(text)


def test_bank_lanes_auto_and_default():
    """lanes = "auto" on a bank layer is folded at load (training needs P): the fewest P
    dividing k and n whose period fits hw.target_ii; no lanes: the largest such P up to 8."""
    text = _edit(_BANK0, 'granularity = "bank"\nlanes = "auto"')  # k = 16 of 64, 32 rows, target_ii 32
    cfg = parse_config(text)
    assert cfg.layers[0].lanes == 16  # 32 rows * 16/P <= 32: P = 16
    assert cfg.layers[1].lanes == "auto"  # weight granularity: folded after training
    cfg = parse_config(text.replace("target_ii = 32", "target_ii = 128"))
    assert cfg.layers[0].lanes == 4  # 32 * 16/4 = 128
    cfg = parse_config(re.sub(r"^target_ii = 32", "target_ii = 0\nmax_dsp = 12", text, count=1, flags=re.M))
    p0 = cfg.layers[0].lanes  # with the second layer's auto lanes, at most 12 multipliers
    assert p0 in (1, 2, 4, 8) and 64 % p0 == 0 and 16 % p0 == 0
    cfg = parse_config(_edit(_BANK0, 'granularity = "bank"'))
    assert cfg.layers[0].lanes is None and cfg.layers[0].banks(64) == 8


def test_missing_required_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"layers\[0\]\.k: missing required key"):
        parse_config("[[layers]]\nout_features = 4\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_config("[[layers]\n")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_examples_are_valid(path):
    cfg = load_config(path)
    assert cfg.layers


def _cnn(layers: str) -> str:
    return 'input = { width = 8, int_bits = 1, signed = false }\n' + layers


_CONV = '[[layers]]\ntype = "conv"\nout_channels = 4\nkernel = 3\nk = 2\n'
_HEAD = '[[layers]]\nout_features = 10\nk = 4\nrelu = false\n'


def test_examples_parse():
    for path in sorted((REPO / "examples").glob("*.toml")):
        cfg = load_config(path)
        assert cfg.layers, path


def test_cnn_shapes_flow_through_validation():
    cfg = parse_config(_cnn(_CONV + 'padding = "same"\n[[layers]]\ntype = "maxpool"\n' + _HEAD))
    assert cfg.is_image_model
    assert [l.type for l in cfg.layers] == ["conv", "maxpool", "dense"]
    assert cfg.layers[0].pad == 1
    # 8x8x1 -> same conv -> 8x8x4 -> pool -> 4x4x4 = 64 inputs: k = 65 is out of range
    with pytest.raises(ConfigError, match=r"layers\[2\]\.k: must be in 1\.\.64"):
        parse_config(_cnn(_CONV + 'padding = "same"\n[[layers]]\ntype = "maxpool"\n' + _HEAD.replace("k = 4", "k = 65")))


@pytest.mark.parametrize(
    "layers, key",
    [
        (_CONV.replace("k = 2", 'k = 2\ngranularity = "kernel"') + _HEAD, r"layers\[0\]\.k: must be in 1\.\.1 \(C_in kernels\)"),
        (_CONV.replace("k = 2", "k = 10") + _HEAD,
         r"layers\[0\]\.k: must be in 1\.\.9 \(C_in\*K\*K weights\)"),
        (_CONV + 'padding = "full"\n' + _HEAD, r"layers\[0\]\.padding: must be 'valid' or 'same'"),
        (_CONV.replace("kernel = 3", "kernel = 4").replace("k = 2", "k = 1") + 'padding = "same"\n' + _HEAD,
         r"layers\[0\]\.padding: 'same' needs an odd kernel"),
        (_CONV.replace("kernel = 3", "kernel = 9") + _HEAD, r"layers\[0\]\.kernel: must be in 1\.\.7"),
        (_CONV.replace("k = 2", "k = 1") + "stride = 0\n" + _HEAD, r"layers\[0\]\.stride: must be in 1\.\.8 \(the input's larger side\)"),
        (_CONV.replace("k = 2", "k = 1") + "lanes = 2\n" + _HEAD, r"layers\[0\]\.lanes: must be \"auto\" or in 1\.\.1 \(weights per filter\)"),
        (_CONV.replace("k = 2", "k = 1") + 'granularity = "block"\n' + _HEAD, r"layers\[0\]\.granularity: a conv layer takes"),
        (_HEAD.replace("relu = false\n", "") + '[[layers]]\ntype = "maxpool"\n',
         r"layers\[1\]\.type: maxpool needs an image"),
        (_CONV.replace("k = 2", "k = 1"), r"layers\[0\]\.type: the last layer must be dense"),
        ('[[layers]]\ntype = "maxpool"\nlanes = 2\n' + _HEAD, r"layers\[0\]\.lanes: a maxpool layer has no MAC lanes"),
        ('[[layers]]\ntype = "conv"\nkernel = 3\nk = 1\n' + _HEAD, r"layers\[0\]\.out_channels: missing required key"),
        ('[[layers]]\ntype = "fc"\n' + _HEAD, r"layers\[0\]\.type: must be one of dense, conv, maxpool"),
        (_CONV.replace("k = 2", "k = 1") + "bn = true\n" + _HEAD.replace("k = 4", "k = 4\nbn = true"),
         r"layers\[1\]\.bn: only meaningful for type = 'conv'"),
    ],
)
def test_bad_cnn_layers_name_the_key(layers, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(_cnn(layers))
