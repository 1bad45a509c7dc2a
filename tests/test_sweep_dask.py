"""`kofn explore` and `kofn compare` on Dask distributed (kofn.app.sweep).

The same tiny sweep through the embedded LocalCluster, through a cluster started the way a
user starts one (``dask scheduler`` and two ``dask worker --nthreads 1`` processes) and through
the plain process pool gives the same points, front and trained IRs; a rerun into the same
``--out`` trains nothing; an interrupted run's finished points are reused; a point computed
from another config is not; a bad ``--scheduler`` is one line and exit 2; an error raised in a
task comes back as kofn's own error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kofn.app.cli import main
from sweep_dask import _stop  # benchmarks/: SIGTERM each process group, then SIGKILL what is left

#: A tiny sweep: 4 trainings of 2 epochs (about a second each on one core).
SWEEP = ["--ratios", "1/4,1/2", "--weight-bits", "4,8", "--lanes", "1,8", "--epochs", "2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args: str, log: Path) -> subprocess.Popen:
    """``dask ARGS`` (the venv's, as ``python -m dask``) in its own process group."""
    return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log.parent)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Dask cluster on localhost as a user starts one: ``dask scheduler`` writing a scheduler
    file, and two ``dask worker ADDRESS --nthreads 1``, each in a folder of its own (no shared
    files with the client: the workers get everything as task inputs)."""
    from distributed import Client

    base = tmp_path_factory.mktemp("cluster")
    sfile = base / "scheduler.json"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                   str(sfile), log=base / "scheduler.log")]
    try:
        deadline = time.monotonic() + 60
        while not sfile.exists() and time.monotonic() < deadline:
            assert procs[0].poll() is None, (base / "scheduler.log").read_text()
            time.sleep(0.2)
        address = json.loads(sfile.read_text())["address"]
        for i in range(2):
            wd = base / f"worker{i}"
            wd.mkdir()
            procs.insert(0, _dask("worker", address, "--nthreads", "1", "--no-dashboard", "--local-directory",
                                  str(wd), log=wd / "worker.log"))
        with Client(address, timeout=30, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=90)
        yield {"address": address, "file": sfile, "procs": procs}
    finally:
        _stop(procs)


def _explore(out: Path, *extra: str) -> tuple[int, dict | None]:
    rc = main(["explore", "--out", str(out), *SWEEP, "-q", *extra])
    doc = json.loads((out / "explore.json").read_text()) if (out / "explore.json").exists() else None
    return rc, doc


def _same_results(a: dict, b: dict) -> None:
    assert a["points"] == b["points"]
    assert a["pareto"] == b["pareto"]
    assert a["pick"] == b["pick"]


def _same_models(a: Path, b: Path) -> None:
    tags = sorted(p.name for p in (a / "models").iterdir())
    assert tags == sorted(p.name for p in (b / "models").iterdir()) and len(tags) == 4
    for tag in tags:
        assert (a / "models" / tag / "model.json").read_text() == (b / "models" / tag / "model.json").read_text()
        with np.load(a / "models" / tag / "model.npz") as za, np.load(b / "models" / tag / "model.npz") as zb:
            assert sorted(za.files) == sorted(zb.files)
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k], err_msg=f"{tag}/{k}")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ex"
    rc, doc = _explore(out, "--workers", "2")
    return rc, doc, out


@pytest.mark.slow
def test_local_cluster_external_cluster_and_process_pool_agree(local_run, cluster, tmp_path):
    rc, local, out_local = local_run
    assert rc == 0 and local["sweep"]["scheduler"] == "local" and local["sweep"]["jobs"] == 2
    assert (local["sweep"]["trained"], local["sweep"]["cached"]) == (4, 0)
    assert len(local["points"]) == 8 and local["pareto"]

    rc, ext = _explore(tmp_path / "ext", "--scheduler", cluster["address"])
    assert rc == 0 and ext["sweep"]["scheduler"] == cluster["address"] and ext["sweep"]["trained"] == 4
    _same_results(local, ext)
    _same_models(out_local, tmp_path / "ext")

    rc, pool = _explore(tmp_path / "pool", "--scheduler", "processes", "--workers", "2")
    assert rc == 0 and pool["sweep"]["scheduler"] == "processes"
    _same_results(local, pool)
    _same_models(out_local, tmp_path / "pool")

    # the scheduler file form, and every point's cache entry in the output folder
    rc, viafile = _explore(tmp_path / "file", "--scheduler", str(cluster["file"]))
    assert rc == 0
    _same_results(local, viafile)
    for p in local["points"]:
        entry = json.loads((out_local / "points" / f"{p['tag']}.json").read_text())
        assert entry["tag"] == p["tag"] and entry["result"]["accuracy"] == p["accuracy"]
        assert set(entry["files"]) == {"model.json", "model.npz"}
    assert not (out_local.parent / f".{out_local.name}.kofn-points").exists()  # the journal went with success


@pytest.mark.slow
def test_rerun_trains_nothing(local_run, tmp_path, capsys):
    """A rerun with the same arguments finds every training in --out: it does not even contact
    the scheduler (an address where nothing listens is never tried) and gives the same results."""
    _, first, out = local_run
    before = {p.name: p.read_bytes() for p in (out / "models").rglob("model.*")}
    dead = f"tcp://127.0.0.1:{_free_port()}"
    rc = main(["explore", "--out", str(out), *SWEEP, "--scheduler", dead])
    assert rc == 0
    err = capsys.readouterr().err
    assert "4 cached, 0 to train" in err and err.count("(cached)") == 4 and "] training " not in err
    doc = json.loads((out / "explore.json").read_text())
    assert (doc["sweep"]["trained"], doc["sweep"]["cached"]) == (0, 4)
    _same_results(first, doc)
    assert {p.name: p.read_bytes() for p in (out / "models").rglob("model.*")} == before


@pytest.mark.slow
def test_changed_config_is_not_reused(tmp_path):
    """The cache key covers the whole config: other epochs retrain; other lanes (hardware only)
    do not; a cache entry whose model files were replaced is not trusted."""
    out = tmp_path / "one"
    one = ["--ratios", "1/4", "--weight-bits", "8", "--act-bits", "8", "-q", "--workers", "1"]
    assert main(["explore", "--out", str(out), *one, "--lanes", "1", "--epochs", "2"]) == 0
    a = json.loads((out / "explore.json").read_text())
    assert main(["explore", "--out", str(out), *one, "--lanes", "1", "--epochs", "3"]) == 0
    b = json.loads((out / "explore.json").read_text())
    assert (b["sweep"]["trained"], b["sweep"]["cached"]) == (1, 0)
    assert b["points"][0]["tag"] == a["points"][0]["tag"]  # same tag, other key
    assert main(["explore", "--out", str(out), *one, "--lanes", "1,2", "--epochs", "3"]) == 0
    c = json.loads((out / "explore.json").read_text())
    assert (c["sweep"]["trained"], c["sweep"]["cached"]) == (0, 1) and len(c["points"]) == 2
    assert c["points"][0] == b["points"][0]
    # a model file that does not match its entry's digest: retrained
    npz = out / "models" / "r1-4_w8_a8" / "model.npz"
    npz.write_bytes(npz.read_bytes() + b"\0")
    assert main(["explore", "--out", str(out), *one, "--lanes", "1", "--epochs", "3"]) == 0
    d = json.loads((out / "explore.json").read_text())
    assert d["sweep"]["trained"] == 1 and d["points"][0] == b["points"][0]  # and training is deterministic
    # --fresh retrains what is cached
    assert main(["explore", "--out", str(out), *one, "--lanes", "1", "--epochs", "3", "--fresh"]) == 0
    assert json.loads((out / "explore.json").read_text())["sweep"]["trained"] == 1


def test_cache_key_covers_the_config():
    import dataclasses

    from kofn.app.config import load_config
    from kofn.app.explore import point_key

    cfg = load_config(None)
    key, inputs = point_key(cfg, "d", None)
    assert point_key(dataclasses.replace(cfg, seed=1), "d", None)[0] != key
    assert point_key(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=0.001)), "d", None)[0] != key
    assert point_key(cfg, "other data", None)[0] != key and point_key(cfg, "d", "init")[0] != key
    # what cannot change a training: the config file's path, the simulation settings
    assert point_key(dataclasses.replace(cfg, source="/elsewhere.toml"), "d", None)[0] == key
    assert point_key(dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, seed=7)), "d", None)[0] == key
    assert set(inputs["env"]) == {"kofn", "code", "torch", "numpy"}


def _descendants(pid: int) -> set[int]:
    parents = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    parents[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier and p not in out}
        out |= frontier
    return out


@pytest.mark.slow
def test_interrupted_run_resumes(tmp_path, local_run):
    """Ctrl-C during a sweep on the LocalCluster: exit 130 within seconds, no worker process
    left, no output folder, the finished points kept beside it; the same command then trains
    only the rest and gives what an uninterrupted run gives."""
    _, full, _ = local_run
    out = tmp_path / "ex"
    journal = tmp_path / ".ex.kofn-points"
    # one worker: the trainings finish one by one, so the interrupt lands between two of them
    cmd = [sys.executable, "-m", "kofn", "explore", "--out", str(out), *SWEEP, "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kids: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        kids |= _descendants(proc.pid)
        if (journal / "points").is_dir() and any((journal / "points").glob("*.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before the interrupt: " + proc.communicate()[1]
    kids |= _descendants(proc.pid)
    assert kids, "no worker process seen"
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 15
    assert "interrupted (SIGINT)" in err and "kept in" in err
    time.sleep(0.5)
    assert not [k for k in kids if Path(f"/proc/{k}").exists() and
                "zombie" not in Path(f"/proc/{k}/status").read_text().lower()], "worker processes left behind"
    assert not out.exists() and not list(tmp_path.glob(".ex.kofn-tmp-*"))
    kept = sorted(p.stem for p in (journal / "points").glob("*.json"))
    assert 1 <= len(kept) < 4

    rc, doc = _explore(out, "--workers", "2")
    assert rc == 0 and (doc["sweep"]["cached"], doc["sweep"]["trained"]) == (len(kept), 4 - len(kept))
    _same_results(full, doc)
    assert not journal.exists()


@pytest.mark.slow
def test_bad_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    import kofn.app.sweep as sweep

    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", 2.0)
    args = ["explore", "--ratios", "1/4", "--weight-bits", "8", "--lanes", "1", "--epochs", "1", "-q"]

    def run(scheduler: str) -> str:
        t0 = time.monotonic()
        rc = main([*args, "--out", str(tmp_path / "x"), "--scheduler", scheduler])
        assert time.monotonic() - t0 < 8
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x").exists()
        return err

    assert run(f"tcp://127.0.0.1:{_free_port()}").startswith("kofn: usage: --scheduler: ")
    assert "bogus" in run("bogus")
    (tmp_path / "sf.json").write_text("{}")
    assert "not a Dask scheduler file" in run(str(tmp_path / "sf.json"))
    # something listens but says nothing: the probe gives up after CONNECT_TIMEOUT
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        err = run(f"tcp://127.0.0.1:{srv.getsockname()[1]}")
        assert "not a Dask scheduler" in err
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()
    # --workers sizes the local cluster only
    rc = main([*args, "--out", str(tmp_path / "x"), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"])
    assert rc == 2 and "--workers" in capsys.readouterr().err


@pytest.mark.slow
def test_task_errors_come_back_as_kofn_errors(cluster):
    """A KofnError raised in a task is the same error on the client (the CLI: one line, exit 2),
    on the LocalCluster and on a cluster's workers alike."""
    from kofn.app.sweep import TaskRunner, parse_scheduler
    from kofn.core.errors import ConfigError, fail

    for where in ("local", cluster["address"], "processes"):
        with pytest.raises(ConfigError, match=r"^train\.epochs: boom$"):
            with TaskRunner(parse_scheduler(where), None if where.startswith("tcp") else 1, lambda m: None) as r:
                list(r.run(fail, "train.epochs", [("a", "boom")]))


@pytest.mark.slow
def test_workers_running_other_code_are_refused(cluster, monkeypatch):
    import kofn.app.sweep as sweep
    from kofn.core.errors import UsageError

    real = sweep.environment
    monkeypatch.setattr(sweep, "environment", lambda *a: {**real(*a), "code": "0" * 64})
    with pytest.raises(UsageError, match="runs other code than this kofn"):
        with sweep.TaskRunner(sweep.parse_scheduler(cluster["address"]), None, lambda m: None) as r:
            r.start(1)


@pytest.mark.slow
def test_compare_through_dask(cluster, tmp_path):
    args = ["compare", "--epochs", "1", "--ratios", "1/4", "--methods", "magnitude", "-q"]
    assert main([*args, "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    assert main([*args, "--out", str(tmp_path / "ext"), "--scheduler", cluster["address"]]) == 0
    a, b = (json.loads((tmp_path / d / "compare.json").read_text()) for d in ("local", "ext"))

    def figures(doc):
        return [{k: r[k] for k in ("method", "ratio", "granularity", "seed", "k", "accuracy", "accuracy_float",
                                   "mask", "rom_bits")} | {"loss": r["history"]["loss"]} for r in doc["runs"]]

    assert figures(a) == figures(b) and [r["method"] for r in a["runs"]] == ["dense", "magnitude"]
    assert sorted(p.name for p in (tmp_path / "local" / "points").iterdir()) == [
        "dense_r1-1_weight_s0.json", "magnitude_r1-4_weight_s0.json"]
    # a rerun trains nothing: an address where nothing listens is never contacted
    dead = f"tcp://127.0.0.1:{_free_port()}"
    assert main([*args, "--out", str(tmp_path / "local"), "--scheduler", dead]) == 0
    assert figures(json.loads((tmp_path / "local" / "compare.json").read_text())) == figures(a)


@pytest.mark.slow
def test_explore_synthesizes_the_front_on_the_workers(cluster, tmp_path):
    """``--synth``: every Pareto-front design is rendered and synthesized by Yosys on a worker
    (from the IR it is sent, in a folder of its own); the multipliers and block RAMs Yosys
    infers are the estimate's; a rerun takes them from the cache."""
    import shutil

    if shutil.which("yosys") is None:
        pytest.skip("yosys not installed (Debian package 'yosys')")
    out = tmp_path / "syn"
    args = ["explore", "--out", str(out), "--ratios", "1/4", "--weight-bits", "8", "--lanes", "1", "--epochs", "2",
            "--synth", "-q"]
    assert main([*args, "--scheduler", cluster["address"]]) == 0
    doc = json.loads((out / "explore.json").read_text())
    (row,) = doc["synth"]
    assert row["index"] == doc["pareto"][0] and row["lanes"] == 1 and row["family"] == "xc7"
    est, ys = row["estimate"], row["yosys"]
    assert (est["dsp"], est["bram18"]) == (ys["dsp"], ys["bram18"])
    assert abs(est["lut"] - ys["lut"]) <= 0.25 * ys["lut"] and ys["ff"] > 0
    assert main([*args, "--scheduler", f"tcp://127.0.0.1:{_free_port()}"]) == 0  # nothing to run: not contacted
    assert json.loads((out / "explore.json").read_text())["synth"] == doc["synth"]


def test_parse_scheduler(tmp_path):
    from kofn.app.sweep import parse_scheduler
    from kofn.core.errors import UsageError

    assert parse_scheduler(None).kind == parse_scheduler("local").kind == "local"
    assert parse_scheduler("processes").kind == "processes"
    assert parse_scheduler("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert parse_scheduler("node7:8786").address == "tcp://node7:8786"
    f = tmp_path / "scheduler.json"
    f.write_text(json.dumps({"type": "Scheduler", "address": "tcp://127.0.0.1:4321"}))
    s = parse_scheduler(str(f))
    assert (s.kind, s.address, s.source) == ("address", "tcp://127.0.0.1:4321", str(f))
    for bad in ("bogus", "node7", str(tmp_path)):
        with pytest.raises(UsageError, match="--scheduler"):
            parse_scheduler(bad)


def test_progress_lines_carry_an_eta(monkeypatch):
    import kofn.app.sweep as sweep

    now = [100.0]
    monkeypatch.setattr(sweep.time, "perf_counter", lambda: now[0])
    t = sweep.Tally(total=6, workers=2)
    assert t.cached("a") == "[1/6] a (cached)"
    t.start()
    now[0] += 10  # the first of 5 to compute, 2 at a time: 4 left, 2 rounds of about 10 s
    assert t.finished("b", 9.5) == "[2/6] b (9.5 s; 10 s elapsed, about 20 s left)"
    now[0] += 1
    assert t.finished("c", 10.0) == "[3/6] c (10.0 s; 11 s elapsed, about 16 s left)"  # 5.5 s each, 3 left
    for _ in range(3):
        now[0] += 5
        line = t.finished("d", 5.0)
    assert line == "[6/6] d (5.0 s; 26 s elapsed, done)"
