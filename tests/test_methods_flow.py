"""Every pruning method's trained digits MLP goes through `kofn flow` and simulates
bit-exactly (RTL under cocotb + Verilator and HLS C simulation), as do the block (N:M),
bank and feature-map granularities.  Short trainings: the hardware path is what is checked."""

from __future__ import annotations

import json
import re

import pytest

from kofn.app.cli import main
from kofn.app.config import METHODS, default_config_text

pytestmark = pytest.mark.slow


def _config(tmp_path, method: str, layer0: str = "") -> str:
    text = default_config_text()
    text = re.sub(r'^method = "\w+"', f'method = "{method}"', text, count=1, flags=re.M)
    text = re.sub(r"^epochs = \d+", "epochs = 3", text, count=1, flags=re.M)
    text = re.sub(r"^random_vectors = \d+", "random_vectors = 40", text, flags=re.M)
    text = re.sub(r"^test_vectors = -?\d+", "test_vectors = 40", text, flags=re.M)
    if layer0:
        text = text.replace('out_features = 32\nk = 16\ngranularity = "weight"', layer0, 1)
        old = 'lanes = "auto"               # parallel'
        assert old in text
        text = text.replace(old, "# lanes: default", 1)
    cfg = tmp_path / f"{method}.toml"
    cfg.write_text(text)
    return str(cfg)


def _check(out) -> dict:
    r = json.loads((out / "report.json").read_text())
    for sim in ("rtl", "hls"):
        assert r["bitexact"][sim]["vectors"] == 80
        assert r["bitexact"][sim]["mismatches"] == 0
    assert r["latency"]["measured_cycles"] == r["latency"]["estimated_cycles"]
    return r


@pytest.mark.parametrize("method", METHODS)
def test_method_through_flow_is_bit_exact(tmp_path, method):
    out = tmp_path / "o"
    assert main(["flow", _config(tmp_path, method), "--out", str(out), "--quiet"]) == 0
    r = _check(out)
    assert r["training"]["method"] == method
    ks = [layer["k"] for layer in r["layers"]]
    assert ks == ([64, 32] if method == "dense" else [16, 8])


def test_block_granularity_through_flow(tmp_path):
    """2:8 blocks on layer 0: 2 of every 8 consecutive inputs, 16 entries per row."""
    layer0 = 'out_features = 32\nk = 2\ngranularity = "block"\nblock = 8'
    out = tmp_path / "o"
    assert main(["flow", _config(tmp_path, "srste", layer0), "--out", str(out), "--quiet"]) == 0
    r = _check(out)
    assert r["layers"][0]["k"] == 16 and r["layers"][0]["n"] == 64


def test_bank_granularity_through_flow(tmp_path):
    """Layer 0 banked (4 lanes, 4 banks of 16 inputs, 4 of each), DTP; layer 1 banked with
    lanes = "auto" (folded at load among the P dividing 8 and 32).  The IR keeps k/P per bank
    (checked on load), and the dataflow build reads both layers' inputs from bank memories."""
    from kofn.core.ir import load

    layer0 = 'out_features = 32\nk = 16\ngranularity = "bank"\nlanes = 4'
    text = open(_config(tmp_path, "dtp", layer0)).read()
    text = text.replace('k = 8\nlanes = "auto"', 'k = 8\ngranularity = "bank"\nlanes = "auto"', 1)
    (tmp_path / "bank.toml").write_text(text)
    out = tmp_path / "o"
    assert main(["flow", str(tmp_path / "bank.toml"), "--out", str(out), "--quiet"]) == 0
    r = _check(out)
    m = load(out / "model")
    assert [L.banks for L in m.layers] == [r["layers"][0]["lanes"], r["layers"][1]["lanes"]]
    assert m.layers[0].banks == 4 and 8 % m.layers[1].banks == 0 and m.layers[1].banks > 1
    top = (out / "rtl" / "kofn_top.sv").read_text()
    assert top.count("kofn_bankbuf") == 2 and "kofn_vecbuf #" in top  # the output buffer stays a vector


def test_feature_map_granularity_through_flow(tmp_path):
    """Keep 12 of layer 0's 32 neurons: the hardware has 12 rows and layer 1 reads 12 inputs."""
    layer0 = 'out_features = 32\nk = 12\ngranularity = "feature_map"'
    out = tmp_path / "o"
    text = open(_config(tmp_path, "dpp", layer0)).read()
    assert 'k = 8\nlanes = "auto"' in text
    text = text.replace('k = 8\nlanes = "auto"', "k = 8\nlanes = 4", 1)
    (tmp_path / "fm.toml").write_text(text)
    assert main(["flow", str(tmp_path / "fm.toml"), "--out", str(out), "--quiet"]) == 0
    r = _check(out)
    assert (r["layers"][0]["rows"], r["layers"][0]["k"]) == (12, 64)
    assert (r["layers"][1]["n"], r["layers"][1]["k"]) == (12, 8)


def test_compare_cli(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--epochs", "1", "--ratios", "1/4,1/8", "--methods", "magnitude,dpp,dtp",
               "--out", str(out), "--quiet"])
    assert rc == 0
    doc = json.loads((out / "compare.json").read_text())
    rows = {(r["method"], r["ratio"]): r for r in doc["results"]}
    assert set(rows) == {("dense", "1/1")} | {(m, r) for m in ("magnitude", "dpp", "dtp") for r in ("1/4", "1/8")}
    for r in rows.values():
        assert 0.0 <= r["accuracy"] <= 1.0 and r["train_seconds"] > 0 and r["step_time_ratio_vs_dense"] > 0
    assert rows[("dpp", "1/8")]["k"] == [8, 4] and rows[("dense", "1/1")]["k"] == [64, 32]
    assert rows[("dense", "1/1")]["step_time_ratio_vs_dense"] == 1.0
    assert (out / "compare.png").stat().st_size > 10_000
    assert "| dpp | 1/8 |" in capsys.readouterr().out


def test_compare_rejects_unknown_method(tmp_path, capsys):
    assert main(["compare", "--methods", "dpp,bogus", "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert "bogus" in capsys.readouterr().err
