"""Real builds under failure (issue 16): a failed or interrupted run leaves an existing build
byte-identical with nothing beside it, ``kofn sim`` replaces a build only on success, and a
damaged build folder is refused by ``sim``, ``export`` and ``synth`` before it is used and
left alone.  Bad inputs that stop before any build: ``tests/test_robust.py``."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from kofn.app.cli import main
from kofn.app.config import default_config_text
from bad_inputs import interrupt_at
from robust_helpers import fast_config, leftovers, tree, user_error


# --- a real build: atomicity and untrusted build folders ------------------------------------

@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """A complete `kofn flow` build (HLS C simulation only, one epoch: seconds)."""
    d = tmp_path_factory.mktemp("robust")
    cfg = d / "fast.toml"
    cfg.write_text(fast_config(rtl="false"))
    assert main(["flow", str(cfg), "--out", str(d / "good"), "--quiet"]) == 0
    return d / "good", cfg


def _copy(build: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "build"
    shutil.copytree(build, dst, symlinks=True)
    return dst


@pytest.mark.slow
def test_failed_run_into_a_good_build_leaves_it_identical(small_build, tmp_path, capsys, monkeypatch):
    good = _copy(small_build[0], tmp_path)
    before = tree(good)
    import kofn.app.flow as flow

    def broken(*a, **k):
        raise RuntimeError("a stage failed")

    monkeypatch.setattr(flow, "build_and_verify", broken)
    assert main(["flow", str(small_build[1]), "--out", str(good), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: a stage failed" in err and "internal error" in err
    assert tree(good) == before and leftovers(good) == []
    # a bad config into the good build: refused before anything is touched
    bad = tmp_path / "bad.toml"
    bad.write_text(re.sub(r"^k = 16", "k = 0", default_config_text(), count=1, flags=re.M))
    assert main(["flow", str(bad), "--out", str(good), "--quiet"]) == 2
    assert tree(good) == before and leftovers(good) == []
    # --keep-failed keeps the temporary folder, says where, and still leaves the build alone
    assert main(["flow", str(small_build[1]), "--out", str(good), "--keep-failed"]) == 1
    err = capsys.readouterr().err
    kept = leftovers(good)
    assert len(kept) == 1 and kept[0] in err and "--keep-failed" in err
    assert (good.parent / kept[0] / "config.toml").is_file() and tree(good) == before


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["train ...", "build (Verilator + g++, in parallel) ..."])
def test_interrupted_run_leaves_a_good_build_identical(stage, small_build, tmp_path):
    """SIGINT to the kofn process alone (not its process group), during training and during the
    simulators' build: exit 130 within seconds, the build byte-identical, nothing left behind."""
    good = _copy(small_build[0], tmp_path)
    before = tree(good)
    cfg = tmp_path / "slow.toml"
    cfg.write_text(re.sub(r"^epochs = 60", "epochs = 400", default_config_text(), count=1, flags=re.M)
                   if stage.startswith("train")
                   else fast_config(rtl="true"))
    rc, lines, rest, took = interrupt_at([sys.executable, "-m", "kofn", "flow", str(cfg), "--out", str(good)],
                                         stage, signal.SIGINT, 1.5, timeout=120)
    assert rc == 130, lines + rest
    assert "Traceback" not in rest and "kofn: interrupted (SIGINT)" in rest
    assert took < 20, f"{took:.1f} s from SIGINT to exit"
    assert tree(good) == before and leftovers(good) == []


@pytest.mark.slow
def test_sim_replaces_a_build_only_on_success(small_build, tmp_path, capsys):
    b = _copy(small_build[0], tmp_path)
    assert main(["sim", str(b), "--quiet"]) == 0
    r = json.loads((b / "report.json").read_text())
    assert r["bitexact"]["hls"]["mismatches"] == 0 and leftovers(b) == []


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
    before = tree(b)
    rc = main([*command.split(), str(b)] + (["--quiet"] if command == "sim" else []))
    assert rc == 2
    user_error(capsys, "build", culprit)
    assert tree(b) == before and leftovers(b) == []
    assert not (tmp_path / "pwned.onnx").exists()


def test_missing_build_folder(tmp_path, capsys):
    for cmd in (["sim"], ["export", "onnx"], ["synth"]):
        assert main([*cmd, str(tmp_path / "none")]) == 2
        user_error(capsys, "build", "no such folder")


def test_synth_refuses_roms_that_do_not_match_the_ir(small_build, tmp_path, capsys):
    b = _copy(small_build[0], tmp_path)
    rom = sorted((b / "rom").glob("*.mem"))[0]
    lines = rom.read_text().splitlines()
    lines[0] = "0" * len(lines[0]) if set(lines[0]) != {"0"} else "1" * len(lines[0])
    rom.write_text("\n".join(lines) + "\n")
    assert main(["synth", str(b), "--family", "xc7"]) == 2
    user_error(capsys, "build", f"{rom}: does not match the IR in model/ (first difference on line 1)")
    rom.unlink()
    assert main(["synth", str(b), "--family", "xc7"]) == 2
    user_error(capsys, "build", f"{rom}: missing")


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
