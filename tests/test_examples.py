"""The shipped examples through `kofn flow` (examples/*.toml, the MNIST ones reduced to one
epoch): bit-exact RTL and HLS simulation, exact cycles, exact exports.  Apart from
tests/test_flow.py (the default build) so that two pytest-xdist workers share the suite's
longest flows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kofn.app.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _reduced_example(name: str, tmp_path: Path, keys: dict, mnist_dir: Path | None = None, replace=()) -> Path:
    """examples/<name> with ``keys`` set (a missing key is added to the last table, [sim]),
    ``replace`` applied once each, and the MNIST path pointed at ``mnist_dir``."""
    text = (REPO / "examples" / name).read_text()
    if mnist_dir is not None:
        text = text.replace('path = "../../shared/data/mnist"', f'path = "{mnist_dir}"')
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new, 1)
    for key, value in keys.items():
        text, n = re.subn(rf"^{key} = -?\d+", f"{key} = {value}", text, count=1, flags=re.M)
        if not n:
            text += f"{key} = {value}\n"
    path = tmp_path / name
    path.write_text(text)
    return path


def test_mnist_example_reduced(tmp_path, mnist_dir):
    """The examples/mnist_mlp.toml design, trained briefly, simulates bit-exactly."""
    cfg = _reduced_example("mnist_mlp.toml", tmp_path, dict(epochs=1, random_vectors=30, test_vectors=30), mnist_dir)
    assert main(["flow", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert r["bitexact"]["rtl"] == {**r["bitexact"]["rtl"], "vectors": 60, "mismatches": 0}
    assert r["bitexact"]["hls"]["mismatches"] == 0
    assert r["layers"][0]["k"] * 16 <= r["layers"][0]["n"]
    assert r["latency"]["measured_cycles"] == r["latency"]["estimated_cycles"]
    _assert_exports_exact(tmp_path / "o", 60)


def test_cnn_digits_example(tmp_path):
    """examples/cnn_digits.toml exactly as shipped: the whole digits test split through RTL
    and HLS C simulation, 0 mismatches, cycles estimated = measured, accuracy >= 90 %."""
    rc = main(["flow", str(REPO / "examples" / "cnn_digits.toml"), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    n_test = r["accuracy"]["test_images"]
    assert n_test >= 300
    for sim in ("rtl", "hls"):
        assert r["bitexact"][sim]["vectors"] == 200 + n_test
        assert r["bitexact"][sim]["mismatches"] == 0
    assert r["bitexact"]["rtl"]["tlast_errors"] == 0
    assert r["latency"]["measured_cycles"] == r["latency"]["estimated_cycles"]
    assert r["latency"]["measured_ii_cycles"] == r["latency"]["ii_cycles"]
    assert r["accuracy"]["integer"] >= 0.90
    assert r["accuracy"]["rtl_on_test"] == r["accuracy"]["integer"] == r["accuracy"]["hls_on_test"]
    assert r["efficiency"]["mac_efficiency"] >= 0.80  # issue 13's acceptance
    conv2 = r["layers"][2]
    assert (conv2["kind"], conv2["granularity"], conv2["k"]) == ("conv", "kernel", 4)
    assert r["memory"]["line_buffer_bits"] > 0
    _assert_exports_exact(tmp_path / "o", 200 + n_test)


def _assert_exports_exact(build: Path, vectors: int, hls4ml_vectors: int = -1) -> None:
    """hls4ml's C simulation and onnxruntime on the exported ONNX equal the reference
    on the build's vectors (printed as JSON by `kofn export`)."""
    import contextlib
    import io

    for target, n in (("onnx", vectors), ("hls4ml", vectors if hls4ml_vectors < 0 else hls4ml_vectors)):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["export", target, str(build), "--vectors", str(n)])
        r = json.loads(buf.getvalue())
        assert rc == 0 and (r["vectors"], r["mismatches"]) == (n, 0), r


def test_lenet5_example_reduced(tmp_path, mnist_dir):
    """examples/lenet5_mnist.toml, trained for one epoch: a few images through RTL, more
    through HLS, bit-exact, cycles estimated = measured."""
    cfg = _reduced_example("lenet5_mnist.toml", tmp_path, dict(epochs=1, random_vectors=2, test_vectors=100,
                                                               rtl_test_vectors=8, timing_vectors=10), mnist_dir)
    assert main(["flow", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert r["bitexact"]["rtl"] == {**r["bitexact"]["rtl"], "vectors": 10, "mismatches": 0}
    assert r["bitexact"]["hls"] == {"vectors": 102, "mismatches": 0}
    assert r["latency"]["measured_cycles"] == r["latency"]["estimated_cycles"]
    assert r["latency"]["measured_ii_cycles"] == r["latency"]["ii_cycles"]
    assert r["efficiency"]["mac_efficiency"] >= 0.80  # issue 13's acceptance, on the shipped folding
    assert [l["kind"] for l in r["layers"]] == ["conv", "maxpool", "conv", "maxpool", "dense", "dense"]
    assert (r["layers"][2]["granularity"], r["layers"][2]["k"], r["layers"][2]["n"]) == ("kernel", 5, 500)
    _assert_exports_exact(tmp_path / "o", 102, hls4ml_vectors=20)


def test_cnn_feature_map_and_weight_level_flow(tmp_path):
    """A CNN whose first conv keeps 6 of 8 filters (feature-map level: the IR and the RTL lose
    the other two, and the second conv's inputs with them) and whose second conv keeps 20 of
    its weights (weight level), trained briefly, is bit-exact in RTL and HLS simulation."""
    cfg = _reduced_example("cnn_digits.toml", tmp_path, dict(epochs=3, random_vectors=20, test_vectors=40), replace=[
        ('k = 9\nlanes = "auto"\nbn = true', 'granularity = "feature_map"\nk = 6\nlanes = 9\nbn = true'),
        ('granularity = "kernel"\nk = 4\nlanes = "auto"', 'granularity = "weight"\nk = 20\nlanes = 5'),
    ])
    assert main(["flow", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert r["bitexact"]["rtl"] == {**r["bitexact"]["rtl"], "vectors": 60, "mismatches": 0}
    assert r["bitexact"]["hls"] == {"vectors": 60, "mismatches": 0}
    assert r["latency"]["measured_cycles"] == r["latency"]["estimated_cycles"]
    l0, l2 = r["layers"][0], r["layers"][2]
    assert l0["rows"] == 6 and l2["in_shape"] == [4, 4, 6]
    assert (l2["granularity"], l2["k"], l2["n"]) == ("weight", 20, 54)


def test_a_global_average_pooling_config_flows_bit_exact(tmp_path):
    """conv -> conv (1x1, stride 2: a ResNet's projection shape) -> global average pooling over
    4x4 = 16 pixels (a power of two: the division is a shift) -> dense, from the config through
    training, the RTL and the HLS: bit-exact on every vector and cycle-exact."""
    cfg = tmp_path / "gap.toml"
    cfg.write_text('name = "gap_digits"\n[train]\nepochs = 1\n[sim]\nrandom_vectors = 20\ntest_vectors = 40\n'
                   '[[layers]]\ntype = "conv"\nout_channels = 4\nkernel = 3\npadding = "same"\nk = 4\n'
                   '[[layers]]\ntype = "conv"\nout_channels = 6\nkernel = 1\nstride = 2\nk = 2\n'
                   '[[layers]]\ntype = "gap"\noutput = { width = 10, int_bits = 3, signed = false }\n'
                   '[[layers]]\nout_features = 10\nk = 3\nrelu = false\noutput = { width = 12, int_bits = 6 }\n')
    assert main(["flow", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert r["bitexact"]["rtl"]["mismatches"] == 0 and r["bitexact"]["rtl"]["vectors"] == 60
    assert r["bitexact"]["hls"] == {"vectors": 60, "mismatches": 0}
    assert r["latency"]["measured_cycles"] == r["latency"]["estimated_cycles"]
    assert r["latency"]["measured_ii_cycles"] == r["latency"]["ii_cycles"]
    assert [l["kind"] for l in r["layers"]] == ["conv", "conv", "gap", "dense"]
    assert r["layers"][1]["out_shape"] == [4, 4, 6] and r["layers"][2]["out_shape"] == [1, 1, 6]
