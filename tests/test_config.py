"""Config validation: every impossible value is an error naming its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kofn.config import ConfigError, default_config_text, load_config, parse_config

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
        (r"^lanes = 8", "lanes = 17", r"layers\[0\]\.lanes: must be in 1\.\.16 \(entries per row\)"),
        (r"^method = \"dpp\"", "method = \"obd\"", r"train\.method: must be one of dense, dpp"),
        (r"^granularity = \"weight\"", "granularity = \"kernel\"", r"layers\[0\]\.granularity: 'kernel' applies to Conv2d"),
        (r"^granularity = \"weight\"", "granularity = \"block\"\nblock = 5", r"layers\[0\]\.block: .*dividing the layer's 64"),
        (r"^granularity = \"weight\"", "granularity = \"block\"\nblock = 8", r"layers\[0\]\.k: must be in 1\.\.8 \(the block M\)"),
        (r"^granularity = \"weight\"", "granularity = \"weight\"\nblock = 8", r"layers\[0\]\.block: only meaningful"),
        (r"^k = 8", "k = 8\ngranularity = \"feature_map\"", r"layers\[1\]\.granularity: the last layer"),
        (r"^tau_end = 0.5", "tau_end = 0", r"train\.dpp\.tau_end: must be > 0"),
        (r"^ste_start = 0.5", "ste_start = 1.5", r"train\.psp\.ste_start: must be in \[0, 1\]"),
        (r"^end = 0.6", "end = 0.6\nstop = 1", r"train\.gradual\.stop: unknown key"),
        (r"^lanes = 8", "lanes = 0", r"layers\[0\]\.lanes"),
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


def test_missing_required_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"layers\[0\]\.k: missing required key"):
        parse_config("[[layers]]\nout_features = 4\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_config("[[layers]\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_examples_are_valid(path):
    cfg = load_config(path)
    assert cfg.layers
