"""Bad inputs (issue 16): every user mistake is one line, ``kofn: <what>: <culprit>: <why>``,
exit 2, and leaves nothing behind: invalid configs (every key of ``kofn.app.fuzz``'s cases),
unreadable config files, bad MNIST folders and ONNX files, an ``--out`` that cannot be a build
folder.  Failed and interrupted runs into a real build, and damaged build folders:
``tests/test_robust_builds.py``."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from kofn.app.cli import main
from kofn.app.config import default_config_text
from kofn.app.data import write_idx
from kofn.app.fuzz import INVALID_CASES, invalid_config
from robust_helpers import leftovers, user_error


# --- invalid configs: every key, exit 2, nothing written ------------------------------------

def _refuse_work(monkeypatch):
    """Anything the validation let through would start work: make that a loud failure."""
    import kofn.app.flow as flow

    def boom(*a, **k):
        raise AssertionError("an invalid config got past the validation")

    monkeypatch.setattr(flow, "preflight", boom)


@pytest.mark.parametrize("case", range(INVALID_CASES))
def test_invalid_config_names_its_key(case, tmp_path, capsys, monkeypatch):
    text, key = invalid_config(0, case)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    _refuse_work(monkeypatch)
    out = tmp_path / "out"
    assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2
    user_error(capsys, "config", key)
    assert not out.exists() and leftovers(out) == []


def test_invalid_configs_random_draws(tmp_path, capsys, monkeypatch, fuzz_seed):
    """A seeded draw (``pytest --fuzz-seed N``) of the same generator, through a subprocess-free
    main(): the property holds for whatever the seed picks."""
    _refuse_work(monkeypatch)
    for s in range(fuzz_seed, fuzz_seed + 10):
        text, key = invalid_config(s)
        cfg = tmp_path / f"c{s}.toml"
        cfg.write_text(text)
        out = tmp_path / f"out{s}"
        assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2, (s, key)
        user_error(capsys, "config", key)
        assert not out.exists()


@pytest.mark.parametrize("raw, culprit", [
    (b"\xff\xfe[[layers]]\n", "not UTF-8"),
    (b"", "layers: at least one [[layers]] table is required"),
    (b"[[layers]\n", "invalid TOML"),
])
def test_unreadable_config_files(raw, culprit, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(raw)
    assert main(["flow", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    user_error(capsys, "config", culprit)
    assert main(["flow", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    user_error(capsys, "config", "missing.toml: no such config file")
    assert not (tmp_path / "o").exists()


def test_size_bound_refuses_before_work(tmp_path, capsys):
    text = re.sub(r"^out_features = 32", "out_features = 100000", default_config_text(), count=1, flags=re.M)
    text = text.replace('dataset = "digits"', 'dataset = "mnist"\npath = "/nowhere"', 1)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    assert main(["flow", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    last = user_error(capsys, "config", "layers[0].out_features")
    assert "78,400,000" in last and "16,777,216" in last


def test_stream_wider_than_a_frame_refuses_before_work(tmp_path, capsys, monkeypatch):
    """Issue 26: hw.stream_in = 100000 on 64 inputs was accepted and the Verilator build of its
    100000-lane tdata crawled for minutes; now one line names the key and the largest value."""
    _refuse_work(monkeypatch)
    cfg = tmp_path / "c.toml"
    cfg.write_text(re.sub(r"^stream_in = 0", "stream_in = 100000", default_config_text(), count=1, flags=re.M))
    out = tmp_path / "o"
    assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2
    last = user_error(capsys, "config", "hw.stream_in")
    assert last == "kofn: config: hw.stream_in: must be at most 64 (a frame holds 64 input values), got 100,000"
    assert not out.exists() and leftovers(out) == []


def _no_training(monkeypatch):
    """An ONNX model's streams are checked in preflight, on its formats: before training or output."""
    import kofn.app.flow as flow

    def boom(*a, **k):
        raise AssertionError("an invalid stream width got past the preflight")

    monkeypatch.setattr(flow, "run_flow", boom)


def test_stream_of_a_quantized_onnx_model_is_checked_on_its_formats(tmp_path, capsys, monkeypatch):
    """The model's 24-bit input takes 24-bit lanes: 42 fit in 1024 bits (the config's default
    8-bit input would allow 64)."""
    from kofn.app.export import to_onnx
    from kofn.core.fixed import FixedFormat
    from kofn.core.testing import random_model

    to_onnx(random_model([64, 16, 10], [8, 4], seed=1, input_fmt=FixedFormat(24, 2)), tmp_path / "q.onnx")
    cfg = tmp_path / "c.toml"
    cfg.write_text('model = "q.onnx"\n[hw]\nstream_in = 43\n')
    _no_training(monkeypatch)
    out = tmp_path / "o"
    assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2
    user_error(capsys, "config", "hw.stream_in: must be at most 42 (42 lanes of 24 bits fill the 1,024-bit tdata "
                                  "limit), got 43")
    assert not out.exists() and leftovers(out) == []


def test_stream_of_a_float_onnx_model_is_checked_on_the_config(tmp_path, capsys, monkeypatch):
    _float_onnx(tmp_path / "m.onnx", nan=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text('model = "m.onnx"\n' + re.sub(r"^stream_out = 0", "stream_out = 11", default_config_text(),
                                                 count=1, flags=re.M))
    _no_training(monkeypatch)
    out = tmp_path / "o"
    assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2
    user_error(capsys, "config", "hw.stream_out: must be at most 10 (a frame holds 10 output values), got 11")
    assert not out.exists() and leftovers(out) == []


# --- bad data and model files ---------------------------------------------------------------

def _mnist_config(tmp_path: Path, data: Path) -> Path:
    text = default_config_text().replace('dataset = "digits"', f'dataset = "mnist"\npath = "{data}"', 1)
    cfg = tmp_path / "m.toml"
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize("damage, culprit", [
    ("no_folder", "no such folder"),
    ("no_files", "t10k-images-idx3-ubyte"),
    ("truncated", "truncated or padded"),
    ("magic", "not an unsigned-byte IDX file"),
    ("one_label_short", "9 labels for the 10 images"),
    ("label_range", "label 12"),
    ("gz_garbage", "cannot read it"),
    ("too_few_for_protocol", "MNIST-10k protocol"),
])
def test_bad_mnist_files(damage, culprit, tmp_path, capsys):
    d = tmp_path / "mnist"
    d.mkdir()
    imgs, labels = np.zeros((10, 28, 28)), np.arange(10) % 10
    if damage == "no_folder":
        d.rmdir()
    elif damage != "no_files":
        write_idx(d / "t10k-images-idx3-ubyte", imgs)
        write_idx(d / "t10k-labels-idx1-ubyte", labels[:9] if damage == "one_label_short" else labels)
        if damage == "truncated":
            raw = (d / "t10k-images-idx3-ubyte").read_bytes()
            (d / "t10k-images-idx3-ubyte").write_bytes(raw[:-100])
        if damage == "magic":
            write_idx(d / "t10k-images-idx3-ubyte", imgs, magic=0x12345678)
        if damage == "label_range":
            write_idx(d / "t10k-labels-idx1-ubyte", np.full(10, 12))
        if damage == "gz_garbage":
            (d / "t10k-images-idx3-ubyte").unlink()
            (d / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    out = tmp_path / "o"
    assert main(["flow", str(_mnist_config(tmp_path, d)), "--out", str(out), "--quiet"]) == 2
    user_error(capsys, "data", "data.path: ")
    assert not out.exists() and leftovers(out) == []
    capsys.readouterr()
    assert main(["flow", str(_mnist_config(tmp_path, d)), "--out", str(out), "--quiet"]) == 2
    assert culprit in capsys.readouterr().err


def _float_onnx(path: Path, nan: bool) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(32, 64)).astype(np.float32), rng.normal(size=(10, 32)).astype(np.float32)
    if nan:
        w2[3, 4] = np.nan
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(32, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(10, np.float32), "b2")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("damage, culprit", [
    ("garbage", "not a readable ONNX model"),
    ("truncated", "not a readable ONNX model"),
    ("nan", "m.onnx: node 'fc2' (Gemm): its weights hold 1 NaN or infinite value(s)"),
])
def test_bad_onnx_models(damage, culprit, tmp_path, capsys):
    m = tmp_path / "m.onnx"
    _float_onnx(m, nan=damage == "nan")
    if damage == "garbage":
        m.write_bytes(b"this is not protobuf" * 10)
    if damage == "truncated":
        m.write_bytes(m.read_bytes()[:300])
    cfg = tmp_path / "c.toml"
    cfg.write_text('model = "m.onnx"\n' + default_config_text())
    out = tmp_path / "o"
    assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2
    user_error(capsys, "ONNX import", culprit)
    assert not out.exists()


# --- --out ----------------------------------------------------------------------------------

def test_out_that_cannot_be_a_build_folder(tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("keep me")
    assert main(["flow", "--out", str(f), "--quiet"]) == 2
    user_error(capsys, "output", "exists and is not a folder")
    assert f.read_text() == "keep me"
    assert main(["flow", "--out", "", "--quiet"]) == 2
    user_error(capsys, "output", "--out: an empty path")
    assert main(["flow", "--out", str(f / "below"), "--quiet"]) == 2
    user_error(capsys, "output", "is not a folder")
    # kofn replaces its --out as a whole: never a folder it did not write, never the current one
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"\xff\xd8")
    assert main(["flow", "--out", str(mine), "--quiet"]) == 2
    user_error(capsys, "output", "is a folder that kofn did not write (it holds cat.jpg")
    assert (mine / "cat.jpg").read_bytes() == b"\xff\xd8"
    monkeypatch.chdir(mine)
    for out in (".", str(tmp_path)):
        assert main(["flow", "--out", out, "--quiet"]) == 2
        user_error(capsys, "output", "is the current folder or holds it")


def test_a_second_run_into_a_busy_out_stops_at_once(tmp_path, capsys):
    from kofn.app.outdir import atomic_dir

    out = tmp_path / "busy"
    with atomic_dir(out):  # a first run holds it
        t = time.perf_counter()
        assert main(["flow", "--out", str(out), "--quiet"]) == 2
        assert time.perf_counter() - t < 30
    last = user_error(capsys, "output", "is being written by another kofn run (pid ")
    assert str(out) in last
    assert out.is_dir() and list(out.iterdir()) == []  # the holder's (empty) run landed, nothing of the refused one
