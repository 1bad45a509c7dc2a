"""Bad inputs and interrupted runs (issue 16): every user mistake is one line, ``kofn: <what>:
<culprit>: <why>``, exit 2, and leaves nothing behind; a failed or interrupted run leaves an
existing build byte-identical; a damaged build folder is refused before it is used."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kofn.app.cli import main
from kofn.app.config import default_config_text
from kofn.app.data import write_idx
from kofn.app.fuzz import INVALID_CASES, invalid_config


def _tree(p: Path) -> dict[str, str]:
    """Every file under ``p`` (relative path -> sha256): byte-identical means equal dicts."""
    return {str(f.relative_to(p)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(p.rglob("*"))
            if f.is_file() or f.is_symlink()}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.kofn-"))


def _user_error(capsys, what: str, culprit: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"kofn: {what}: "), last
    assert culprit in last, last
    return last


def _fast_config(**sim) -> str:
    text = default_config_text()
    text = re.sub(r"^epochs = \d+", "epochs = 1", text, count=1, flags=re.M)
    text = re.sub(r"^random_vectors = \d+", "random_vectors = 20", text, count=1, flags=re.M)
    text = re.sub(r"^test_vectors = -?\d+", "test_vectors = 20", text, count=1, flags=re.M)
    for k, v in sim.items():
        text = re.sub(rf"^{k} = \w+", f"{k} = {v}", text, count=1, flags=re.M)
    return text


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
    _user_error(capsys, "config", key)
    assert not out.exists() and _leftovers(out) == []


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
        _user_error(capsys, "config", key)
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
    _user_error(capsys, "config", culprit)
    assert main(["flow", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    _user_error(capsys, "config", "missing.toml: no such config file")
    assert not (tmp_path / "o").exists()


def test_size_bound_refuses_before_work(tmp_path, capsys):
    text = re.sub(r"^out_features = 32", "out_features = 100000", default_config_text(), count=1, flags=re.M)
    text = text.replace('dataset = "digits"', 'dataset = "mnist"\npath = "/nowhere"', 1)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    assert main(["flow", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    last = _user_error(capsys, "config", "layers[0].out_features")
    assert "78,400,000" in last and "16,777,216" in last


def test_stream_wider_than_a_frame_refuses_before_work(tmp_path, capsys, monkeypatch):
    """Issue 26: hw.stream_in = 100000 on 64 inputs was accepted and the Verilator build of its
    100000-lane tdata crawled for minutes; now one line names the key and the largest value."""
    _refuse_work(monkeypatch)
    cfg = tmp_path / "c.toml"
    cfg.write_text(re.sub(r"^stream_in = 0", "stream_in = 100000", default_config_text(), count=1, flags=re.M))
    out = tmp_path / "o"
    assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2
    last = _user_error(capsys, "config", "hw.stream_in")
    assert last == "kofn: config: hw.stream_in: must be at most 64 (a frame holds 64 input values), got 100,000"
    assert not out.exists() and _leftovers(out) == []


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
    _user_error(capsys, "config", "hw.stream_in: must be at most 42 (42 lanes of 24 bits fill the 1,024-bit tdata "
                                  "limit), got 43")
    assert not out.exists() and _leftovers(out) == []


def test_stream_of_a_float_onnx_model_is_checked_on_the_config(tmp_path, capsys, monkeypatch):
    _float_onnx(tmp_path / "m.onnx", nan=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text('model = "m.onnx"\n' + re.sub(r"^stream_out = 0", "stream_out = 11", default_config_text(),
                                                 count=1, flags=re.M))
    _no_training(monkeypatch)
    out = tmp_path / "o"
    assert main(["flow", str(cfg), "--out", str(out), "--quiet"]) == 2
    _user_error(capsys, "config", "hw.stream_out: must be at most 10 (a frame holds 10 output values), got 11")
    assert not out.exists() and _leftovers(out) == []


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
    _user_error(capsys, "data", "data.path: ")
    assert not out.exists() and _leftovers(out) == []
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
    _user_error(capsys, "ONNX import", culprit)
    assert not out.exists()


# --- --out ----------------------------------------------------------------------------------

def test_out_that_cannot_be_a_build_folder(tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("keep me")
    assert main(["flow", "--out", str(f), "--quiet"]) == 2
    _user_error(capsys, "output", "exists and is not a folder")
    assert f.read_text() == "keep me"
    assert main(["flow", "--out", "", "--quiet"]) == 2
    _user_error(capsys, "output", "--out: an empty path")
    assert main(["flow", "--out", str(f / "below"), "--quiet"]) == 2
    _user_error(capsys, "output", "is not a folder")
    # kofn replaces its --out as a whole: never a folder it did not write, never the current one
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"\xff\xd8")
    assert main(["flow", "--out", str(mine), "--quiet"]) == 2
    _user_error(capsys, "output", "is a folder that kofn did not write (it holds cat.jpg")
    assert (mine / "cat.jpg").read_bytes() == b"\xff\xd8"
    monkeypatch.chdir(mine)
    for out in (".", str(tmp_path)):
        assert main(["flow", "--out", out, "--quiet"]) == 2
        _user_error(capsys, "output", "is the current folder or holds it")


def test_a_second_run_into_a_busy_out_stops_at_once(tmp_path, capsys):
    from kofn.app.outdir import atomic_dir

    out = tmp_path / "busy"
    with atomic_dir(out):  # a first run holds it
        t = time.perf_counter()
        assert main(["flow", "--out", str(out), "--quiet"]) == 2
        assert time.perf_counter() - t < 30
    last = _user_error(capsys, "output", "is being written by another kofn run (pid ")
    assert str(out) in last
    assert out.is_dir() and list(out.iterdir()) == []  # the holder's (empty) run landed, nothing of the refused one


# --- a real build: atomicity and untrusted build folders ------------------------------------

@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """A complete `kofn flow` build (HLS C simulation only, one epoch: seconds)."""
    d = tmp_path_factory.mktemp("robust")
    cfg = d / "fast.toml"
    cfg.write_text(_fast_config(rtl="false"))
    assert main(["flow", str(cfg), "--out", str(d / "good"), "--quiet"]) == 0
    return d / "good", cfg


def _copy(build: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "build"
    shutil.copytree(build, dst, symlinks=True)
    return dst


@pytest.mark.slow
def test_failed_run_into_a_good_build_leaves_it_identical(small_build, tmp_path, capsys, monkeypatch):
    good = _copy(small_build[0], tmp_path)
    before = _tree(good)
    import kofn.app.flow as flow

    def broken(*a, **k):
        raise RuntimeError("a stage failed")

    monkeypatch.setattr(flow, "build_and_verify", broken)
    assert main(["flow", str(small_build[1]), "--out", str(good), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: a stage failed" in err and "internal error" in err
    assert _tree(good) == before and _leftovers(good) == []
    # a bad config into the good build: refused before anything is touched
    bad = tmp_path / "bad.toml"
    bad.write_text(re.sub(r"^k = 16", "k = 0", default_config_text(), count=1, flags=re.M))
    assert main(["flow", str(bad), "--out", str(good), "--quiet"]) == 2
    assert _tree(good) == before and _leftovers(good) == []
    # --keep-failed keeps the temporary folder, says where, and still leaves the build alone
    assert main(["flow", str(small_build[1]), "--out", str(good), "--keep-failed"]) == 1
    err = capsys.readouterr().err
    kept = _leftovers(good)
    assert len(kept) == 1 and kept[0] in err and "--keep-failed" in err
    assert (good.parent / kept[0] / "config.toml").is_file() and _tree(good) == before


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["train ...", "build (Verilator + g++, in parallel) ..."])
def test_interrupted_run_leaves_a_good_build_identical(stage, small_build, tmp_path):
    """SIGINT to the kofn process alone (not its process group), during training and during the
    simulators' build: exit 130 within seconds, the build byte-identical, nothing left behind."""
    good = _copy(small_build[0], tmp_path)
    before = _tree(good)
    cfg = tmp_path / "slow.toml"
    cfg.write_text(re.sub(r"^epochs = 60", "epochs = 400", default_config_text(), count=1, flags=re.M)
                   if stage.startswith("train")
                   else _fast_config(rtl="true"))
    p = subprocess.Popen([sys.executable, "-m", "kofn", "flow", str(cfg), "--out", str(good)],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if stage in line:
            break
    time.sleep(1.5)
    t = time.perf_counter()
    p.send_signal(signal.SIGINT)
    rest = p.stderr.read()
    rc = p.wait(timeout=120)
    took = time.perf_counter() - t
    assert rc == 130, "".join(lines) + rest
    assert "Traceback" not in rest and "kofn: interrupted (SIGINT)" in rest
    assert took < 20, f"{took:.1f} s from SIGINT to exit"
    assert _tree(good) == before and _leftovers(good) == []


@pytest.mark.slow
def test_sim_replaces_a_build_only_on_success(small_build, tmp_path, capsys):
    b = _copy(small_build[0], tmp_path)
    assert main(["sim", str(b), "--quiet"]) == 0
    r = json.loads((b / "report.json").read_text())
    assert r["bitexact"]["hls"]["mismatches"] == 0 and _leftovers(b) == []


def _damage(build: Path, how: str) -> str:
    """Damage a copy of a build; returns the text the error must contain."""
    m = build / "model"
    if how == "no_config":
        (build / "config.toml").unlink()
        return "config.toml: missing"
    if how == "truncated_npz":
        raw = (m / "model.npz").read_bytes()
        (m / "model.npz").write_bytes(raw[: len(raw) // 2])
        return "BadZipFile"
    if how in ("code_range", "not_k_of_n", "index_range"):
        with np.load(m / "model.npz") as z:
            arrays = dict(z)
        if how == "code_range":
            arrays["l0_weights"] = arrays["l0_weights"].copy()
            arrays["l0_weights"][0, 0] = 1000
            msg = "outside"
        elif how == "not_k_of_n":
            arrays["l0_indices"] = arrays["l0_indices"].copy()
            arrays["l0_indices"][0, 1] = arrays["l0_indices"][0, 0]
            msg = "strictly ascending"
        else:
            arrays["l0_indices"] = arrays["l0_indices"].copy()
            arrays["l0_indices"][0, -1] = 64
            msg = "outside 0..63"
        np.savez(m / "model.npz", **arrays)
        return msg
    if how == "bad_name":
        doc = json.loads((m / "model.json").read_text())
        doc["name"] = "../pwned"
        (m / "model.json").write_text(json.dumps(doc))
        return "'../pwned' is not a valid Verilog/C++ identifier"
    if how == "json":
        (m / "model.json").write_text("{ not json")
        return "JSONDecodeError"
    if how == "no_model":
        shutil.rmtree(m)
        return "model.json: missing"
    if how == "vectors":
        x = np.load(build / "vectors" / "inputs.npy")
        x[0, 0] = 10_000
        np.save(build / "vectors" / "inputs.npy", x)
        return "fall outside"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["no_config", "truncated_npz", "code_range", "not_k_of_n", "index_range", "bad_name",
                                 "json", "no_model", "vectors"])
@pytest.mark.parametrize("command", ["sim", "export onnx", "synth"])
def test_damaged_build_is_refused_and_left_alone(command, how, small_build, tmp_path, capsys):
    if how == "no_config" and command != "sim" or how == "vectors" and command == "synth":
        pytest.skip("this command does not read that file")
    b = _copy(small_build[0], tmp_path)
    culprit = _damage(b, how)
    before = _tree(b)
    rc = main([*command.split(), str(b)] + (["--quiet"] if command == "sim" else []))
    assert rc == 2
    _user_error(capsys, "build", culprit)
    assert _tree(b) == before and _leftovers(b) == []
    assert not (tmp_path / "pwned.onnx").exists()


def test_missing_build_folder(tmp_path, capsys):
    for cmd in (["sim"], ["export", "onnx"], ["synth"]):
        assert main([*cmd, str(tmp_path / "none")]) == 2
        _user_error(capsys, "build", "no such folder")


def test_synth_refuses_roms_that_do_not_match_the_ir(small_build, tmp_path, capsys):
    b = _copy(small_build[0], tmp_path)
    rom = sorted((b / "rom").glob("*.mem"))[0]
    lines = rom.read_text().splitlines()
    lines[0] = "0" * len(lines[0]) if set(lines[0]) != {"0"} else "1" * len(lines[0])
    rom.write_text("\n".join(lines) + "\n")
    assert main(["synth", str(b), "--family", "xc7"]) == 2
    _user_error(capsys, "build", f"{rom}: does not match the IR in model/ (first difference on line 1)")
    rom.unlink()
    assert main(["synth", str(b), "--family", "xc7"]) == 2
    _user_error(capsys, "build", f"{rom}: missing")


def test_export_onnx_is_atomic(small_build, tmp_path, capsys, monkeypatch):
    b = _copy(small_build[0], tmp_path)
    target = tmp_path / "m.onnx"
    target.write_bytes(b"an earlier export")
    import kofn.app.export as export

    def broken(model, path):
        Path(path).write_bytes(b"half")
        raise RuntimeError("disk hiccup")

    monkeypatch.setattr(export, "to_onnx", broken)
    assert main(["export", "onnx", str(b), "-o", str(target), "--no-check"]) == 1
    assert target.read_bytes() == b"an earlier export"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.onnx")] == []
