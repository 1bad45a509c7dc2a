"""Every bad input we know of, given to the ``kofn`` command as a user would: the exit code, the
last line on stderr and the state of the output folder afterwards, as a markdown table.

    python benchmarks/bad_inputs.py [--work DIR] [--only NAME,...] > bad_inputs.md

It builds one small good build first (about a minute) and points many of the bad runs at a copy
of it, checking that the copy is byte-identical afterwards.  Root-only cases (a read-only and a
full file system, by tmpfs mounts) are reported as skipped when the mounts are not allowed.
Takes about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
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

from kofn.app.data import write_idx

KOFN = [sys.executable, "-m", "kofn"]


def interrupt_at(argv: list[str], stage: str, sig: int, delay: float, cwd: Path | None = None,
                 timeout: float | None = None) -> tuple[int, str, str, float]:
    """Run ``argv``, wait until its stderr shows ``stage``, ``delay`` seconds more, then send
    ``sig``: ``(exit code, stderr up to the stage line, the rest of stderr, seconds from the
    signal to the exit)``.  Also used by ``tests/test_robust_builds.py``."""
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=cwd)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if stage in line:
            break
    time.sleep(delay)
    t = time.perf_counter()
    p.send_signal(sig)
    rest = p.stderr.read()
    rc = p.wait(timeout=timeout)
    return rc, "".join(seen), rest, time.perf_counter() - t


def tree(p: Path) -> str | None:
    if not p.exists():
        return None
    if p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(p)).encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def default_text() -> str:
    return subprocess.run([*KOFN, "default-config"], capture_output=True, text=True, check=True).stdout


def fast(text: str, epochs: int = 1, rtl: bool = True) -> str:
    text = re.sub(r"^epochs = \d+", f"epochs = {epochs}", text, count=1, flags=re.M)
    text = re.sub(r"^random_vectors = \d+", "random_vectors = 40", text, count=1, flags=re.M)
    text = re.sub(r"^test_vectors = -?\d+", "test_vectors = 40", text, count=1, flags=re.M)
    return text if rtl else re.sub(r"^rtl = true", "rtl = false", text, count=1, flags=re.M)


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.rows: list[tuple[str, str, int | str, str, str]] = []
        self.default = default_text()
        self.good: Path | None = None

    def cfg(self, name: str, text: str | bytes) -> Path:
        p = self.work / f"{name}.toml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    def good_copy(self, name: str) -> Path:
        dst = self.work / f"good_{name}"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(self.good, dst, symlinks=True)
        return dst

    def run(self, name: str, what: str, argv: list[str], out: Path | None, *, interrupt: tuple[str, int] | None = None,
            note: str = "") -> None:
        before = tree(out) if out is not None else None
        t0 = time.perf_counter()
        if interrupt is None:
            r = subprocess.run(argv, capture_output=True, text=True, cwd=self.work, timeout=1800)
            rc, err = r.returncode, r.stderr
        else:
            stage, sig = interrupt
            rc, seen, rest, took = interrupt_at(argv, stage, sig, 2.0, cwd=self.work)
            err = seen + rest
            note = (note + "; " if note else "") + f"exited {took:.1f} s after the signal"
        lines = [l for l in err.strip().splitlines() if l.strip()]
        last = lines[-1] if lines else "(nothing)"
        if "Traceback" in err:
            last = "TRACEBACK: " + last
        state = "-"
        if out is not None:
            after = tree(out)
            left = [q.name for q in out.parent.iterdir() if q.name.startswith(f".{out.name}.kofn-")]
            if before is None:
                state = "not created" if after is None else "created"
            else:
                state = "byte-identical" if after == before else "CHANGED"
            if left:
                state += f", leftovers {left}"
        self.rows.append((name, what, rc, last.replace("|", "\\|"), state + (f" ({note})" if note else "")))
        print(f"{name}: rc {rc} {time.perf_counter() - t0:.0f}s | {last[:160]} | {state}", file=sys.stderr, flush=True)

    def table(self) -> str:
        out = ["| # | bad input | exit | message (last stderr line) | --out afterwards |", "|---|---|---|---|---|"]
        for i, (name, what, rc, msg, st) in enumerate(self.rows, 1):
            out.append(f"| {i} | {what} | {rc} | `{msg}` | {st} |")
        return "\n".join(out) + "\n"


def cases(b: Bench, only: set[str] | None) -> None:
    w, d = b.work, b.default

    def want(n: str) -> bool:
        return only is None or n in only

    def sub(pattern: str, repl: str, text: str | None = None, count: int = 1) -> str:
        new, n = re.subn(pattern, repl, text if text is not None else d, count=count, flags=re.M)
        assert n, pattern
        return new

    # a good build to aim bad runs at
    good_cfg = b.cfg("good", fast(d))
    b.good = w / "good"
    if not b.good.exists():
        r = subprocess.run([*KOFN, "flow", str(good_cfg), "--out", str(b.good), "-q"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    flow = lambda name, text, out=None, **kw: b.run(  # noqa: E731
        name, kw.pop("what"), [*KOFN, "flow", str(b.cfg(name, text)), "--out", str(out or w / f"o_{name}"), "-q"],
        out or w / f"o_{name}", **kw)

    def mnist(name: str, images, labels, magic: int | None = None) -> Path:
        """A folder of t10k IDX files (``images``/``labels``: arrays, or bytes for a raw .gz)."""
        m = w / name
        m.mkdir(exist_ok=True)
        if isinstance(images, bytes):
            (m / "t10k-images-idx3-ubyte.gz").write_bytes(images)
        else:
            write_idx(m / "t10k-images-idx3-ubyte", images, magic=magic)
        write_idx(m / "t10k-labels-idx1-ubyte", labels)
        return m

    # --- the list
    if want("k0"):
        flow("k0", sub(r"^k = 16", "k = 0"), what="`k = 0` in a layer")
    if want("out7"):
        flow("out7", sub(r"^out_features = 10", "out_features = 7"), what="last layer `out_features = 7` (10 classes)")
    mn = lambda path: sub(r'^dataset = "digits"', f'dataset = "mnist"\npath = "{path}"')  # noqa: E731
    if want("mnist_missing"):
        flow("mnist_missing", mn("/no/such/mnist"), what="`dataset = \"mnist\"`, path does not exist")
    for kind, data in (("onnx_garbage", b"not an onnx model" * 20), ("onnx_truncated", None)):
        if want(kind):
            m = w / f"{kind}.onnx"
            if data is None:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
                from test_robust import _float_onnx  # noqa: PLC0415

                _float_onnx(m, nan=False)
                m.write_bytes(m.read_bytes()[:300])
            else:
                m.write_bytes(data)
            flow(kind, f'model = "{m.name}"\n' + d, what=f"`model` = {'a truncated' if data is None else 'a non-'} ONNX file")
    if want("sim_code_range"):
        g = b.good_copy("code")
        with np.load(g / "model" / "model.npz") as z:
            a = dict(z)
        a["l0_weights"] = a["l0_weights"].copy()
        a["l0_weights"][0, 0] = 1000
        np.savez(g / "model" / "model.npz", **a)
        b.run("sim_code_range", "`kofn sim` on a build whose model.npz holds a weight code outside its format",
              [*KOFN, "sim", str(g), "-q"], g)
    if want("labels_short"):
        flow("labels_short", mn(mnist("mnist_short", np.zeros((10000, 28, 28)), np.arange(9999) % 10)), what="MNIST labels file with one label fewer than images")
    if want("onnx_nan"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from test_robust import _float_onnx  # noqa: PLC0415

        _float_onnx(w / "nan.onnx", nan=True)
        flow("onnx_nan", 'model = "nan.onnx"\n' + d, what="float ONNX model with a NaN weight")
    if want("qonnx_scale") or want("qonnx_ceil"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import onnx  # noqa: PLC0415
        from test_qonnx import _dense_qonnx, _weights  # noqa: PLC0415

        wq, bq = _weights(rows=10, n=64, k=16)
        for name, act, what in (("qonnx_scale", {"scale": 0.3}, "a QONNX model whose output Quant has scale 0.3"),
                                ("qonnx_ceil", {"mode": "CEIL"}, "a QONNX model whose output Quant rounds with CEIL")):
            if want(name):
                onnx.save(_dense_qonnx(wq, bq, act=act), str(w / f"{name}.onnx"))
                flow(name, f'model = "{name}.onnx"\n', what=what)
    if want("huge_mnist"):
        flow("huge_mnist", sub(r"^out_features = 32", "out_features = 100000", mn("/no/such/mnist")),
             what="`out_features = 100000` on MNIST")
    if want("huge_1e12"):
        flow("huge_1e12", sub(r"^out_features = 32", "out_features = 1000000000000"), what="`out_features = 10**12`")
    if want("sigint_sim"):
        g = b.good_copy("sigint_sim")
        b.run("sigint_sim", "SIGINT (to kofn alone) during the RTL simulation, into a good build",
              [*KOFN, "flow", str(b.cfg("slow_sim", sub(r"^epochs = \d+", "epochs = 1"))), "--out", str(g)], g,
              interrupt=("RTL simulation (", signal.SIGINT))
    if want("out_is_file"):
        f = w / "a_file"
        f.write_text("keep me")
        b.run("out_is_file", "`--out` names an existing regular file", [*KOFN, "flow", "--out", str(f), "-q"], f)
    if want("out_readonly"):
        ro = Path("/mnt/kofn_ro")
        ro.mkdir(parents=True, exist_ok=True)
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,ro", "tmpfs", str(ro)], capture_output=True).returncode == 0
        if ok:
            b.run("out_readonly", "`--out` on a read-only file system (tmpfs mounted ro)",
                  [*KOFN, "flow", str(good_cfg), "--out", str(ro / "b"), "-q"], ro / "b")
            subprocess.run(["umount", str(ro)])
        else:
            b.rows.append(("out_readonly", "`--out` on a read-only file system", "skipped", "mount not allowed", "-"))
    if want("sim_missing"):
        b.run("sim_missing", "`kofn sim` on a folder that does not exist", [*KOFN, "sim", str(w / "nope")], w / "nope")
    if want("sim_truncated"):
        g = b.good_copy("trunc")
        raw = (g / "model" / "model.npz").read_bytes()
        (g / "model" / "model.npz").write_bytes(raw[: len(raw) // 2])
        b.run("sim_truncated", "`kofn sim` on a build with a truncated model.npz", [*KOFN, "sim", str(g), "-q"], g)
    if want("pwned"):
        flow("pwned", sub(r'^name = "digits_mlp"', 'name = "../pwned"'), what='`name = "../pwned"`')
        g = b.good_copy("pwned")
        doc = json.loads((g / "model" / "model.json").read_text())
        doc["name"] = "../pwned"
        (g / "model" / "model.json").write_text(json.dumps(doc))
        b.run("pwned_export", '`kofn export onnx` on a build whose model.json says `"name": "../pwned"`',
              [*KOFN, "export", "onnx", str(g)], g, note=f"{w / 'pwned.onnx'} exists: {(w / 'pwned.onnx').exists()}")
    if want("out_empty"):
        b.run("out_empty", '`--out ""`', [*KOFN, "flow", "--out", "", "-q"], None,
              note=f"config.toml in cwd: {(w / 'config.toml').exists()}")
    if want("sim_no_config"):
        g = b.good_copy("nocfg")
        (g / "config.toml").unlink()
        b.run("sim_no_config", "`kofn sim` on a build without config.toml", [*KOFN, "sim", str(g), "-q"], g)
    if want("no_sim"):
        flow("no_sim", sub(r"^hls = true", "hls = false", sub(r"^rtl = true", "rtl = false")),
             what="`[sim] rtl = false`, `hls = false`")
    if want("zero_vectors"):
        flow("zero_vectors", sub(r"^test_vectors = -1", "test_vectors = 0", sub(r"^random_vectors = 1000", "random_vectors = 0")),
             what="`random_vectors = 0`, `test_vectors = 0`")
    if want("top_clash"):
        flow("top_clash", sub(r'^top = "kofn_top"', 'top = "kofn_dense"'), what='`hw.top = "kofn_dense"` (a generated module)')
    if want("vectors_1e9"):
        flow("vectors_1e9", sub(r"^random_vectors = 1000", "random_vectors = 1000000000"), what="`random_vectors = 1000000000`")
        flow("vectors_1e9f", sub(r"^random_vectors = 1000", "random_vectors = 1e9"), what="`random_vectors = 1e9`")
    if want("not_utf8"):
        flow("not_utf8", b"\xff\xfe" + d.encode("utf-16-le"), what="config file in UTF-16 (not UTF-8)")
    if want("sigint_build"):
        g = b.good_copy("sigint_build")
        b.run("sigint_build", "SIGINT (to kofn alone) during the Verilator build, into a good build",
              [*KOFN, "flow", str(good_cfg), "--out", str(g)], g,
              interrupt=("build (Verilator + g++, in parallel) ...", signal.SIGINT))
    if want("bad_into_good"):
        g = b.good_copy("bad_into_good")
        b.run("bad_into_good", "a failing config (`k = 0`) pointed at a good build",
              [*KOFN, "flow", str(b.cfg("bad", sub(r"^k = 16", "k = 0"))), "--out", str(g), "-q"], g)
    # --- our own
    if want("concurrent"):
        g = b.good_copy("concurrent")
        first = subprocess.Popen([*KOFN, "flow", str(good_cfg), "--out", str(g), "-q"], cwd=w,
                                 stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        time.sleep(8)
        b.run("concurrent", "a second `kofn flow` into the `--out` a first run is writing",
              [*KOFN, "flow", str(good_cfg), "--out", str(g), "-q"], g, note="while the first runs")
        first.wait()
        b.rows.append(("concurrent_first", "... the first run of the two", first.returncode, "(completed)",
                       "replaced by the first run's build" if (g / "report.json").exists() else "?"))
    if want("disk_full"):
        full = Path("/mnt/kofn_full")
        full.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(full)], capture_output=True).returncode == 0:
            b.run("disk_full", "`--out` on a full file system (a 2 MiB tmpfs)",
                  [*KOFN, "flow", str(good_cfg), "--out", str(full / "b"), "-q"], full / "b",
                  note=f"left in the tmpfs: {sorted(p.name for p in full.iterdir())}")
            subprocess.run(["umount", str(full)])
        else:
            b.rows.append(("disk_full", "`--out` on a full file system", "skipped", "mount not allowed", "-"))
    if want("sigint_train"):
        g = b.good_copy("sigint_train")
        b.run("sigint_train", "SIGINT (to kofn alone) during training, into a good build",
              [*KOFN, "flow", str(b.cfg("long", sub(r"^epochs = 60", "epochs = 400"))), "--out", str(g)], g,
              interrupt=("train ...", signal.SIGINT))
    if want("sigterm_train"):
        g = b.good_copy("sigterm_train")
        b.run("sigterm_train", "SIGTERM during training, into a good build",
              [*KOFN, "flow", str(b.cfg("long", sub(r"^epochs = 60", "epochs = 400"))), "--out", str(g)], g,
              interrupt=("train ...", signal.SIGTERM))
    if want("empty"):
        flow("empty", "", what="an empty config file")
    if want("toml_syntax"):
        flow("toml_syntax", "[[layers]\nk = 3\n", what="a TOML syntax error")
    if want("unknown_key"):
        flow("unknown_key", sub(r"^\[train\]", "[train]\nlearning_rate = 0.1"), what="an unknown key (`train.learning_rate`)")
    if want("bias_frac"):
        flow("bias_frac", sub(r"^bias = \{ width = 16, int_bits = 6 \}", "bias = { width = 16, int_bits = 1 }"),
             what="a bias with more fraction bits than the accumulator (found by the fuzzer)")
    if want("output_frac"):
        flow("output_frac", sub(r"^output = \{ width = 8, int_bits = 3, signed = false \}",
                                "output = { width = 16, int_bits = 1, signed = false }"),
             what="an output format finer than the accumulator (found by the fuzzer)")
    if want("idx_magic"):
        m2 = mnist("mnist_magic", np.zeros((10, 28, 28)), np.arange(10) % 10, magic=0x12345678)
        flow("idx_magic", mn(m2), what="an MNIST images file with a wrong magic number")
    if want("idx_label_range"):
        m3 = mnist("mnist_labels", np.zeros((10000, 28, 28)), np.full(10000, 12))
        flow("idx_label_range", mn(m3), what="MNIST labels outside 0..9")
    if want("idx_gz"):
        m4 = mnist("mnist_gz", b"\x1f\x8b" + b"garbage" * 10, np.arange(10) % 10)
        flow("idx_gz", mn(m4), what="a corrupt gzip IDX file")
    if want("idx_small"):
        m5 = mnist("mnist_small", np.zeros((5000, 28, 28)), np.arange(5000) % 10)
        flow("idx_small", mn(m5), what="an MNIST test set of 5,000 images (the 10k protocol needs > 8,000)")
    if want("synth_rom"):
        g = b.good_copy("rom")
        rom = sorted((g / "rom").glob("*_w.mem"))[0]
        lines = rom.read_text().splitlines()
        lines[0] = "0" * len(lines[0]) if set(lines[0]) != {"0"} else "1" * len(lines[0])
        rom.write_text("\n".join(lines) + "\n")
        b.run("synth_rom", "`kofn synth` on a build whose ROM file was edited", [*KOFN, "synth", str(g)], g)
    if want("synth_filelist"):
        g = b.good_copy("flist")
        (g / "rtl" / "filelist.f").write_text("../../../etc/passwd\n")
        b.run("synth_filelist", "`kofn synth` with a filelist naming a file outside rtl/", [*KOFN, "synth", str(g)], g)
    if want("export_o_dir"):
        g = b.good_copy("exp")
        b.run("export_o_dir", "`kofn export onnx -o` naming a folder", [*KOFN, "export", "onnx", str(g), "-o", str(w)], g)
    if want("model_json"):
        g = b.good_copy("json")
        (g / "model" / "model.json").write_text("{ not json")
        b.run("model_json", "`kofn sim` on a build whose model.json is not JSON", [*KOFN, "sim", str(g), "-q"], g)
    if want("not_k_of_n"):
        g = b.good_copy("kofn")
        with np.load(g / "model" / "model.npz") as z:
            a = dict(z)
        a["l0_indices"] = a["l0_indices"].copy()
        a["l0_indices"][0, 1] = a["l0_indices"][0, 0]
        np.savez(g / "model" / "model.npz", **a)
        b.run("not_k_of_n", "`kofn export onnx` on a build whose row repeats an index (not k-of-n)",
              [*KOFN, "export", "onnx", str(g)], g)
    if want("vectors_range"):
        g = b.good_copy("vec")
        x = np.load(g / "vectors" / "inputs.npy")
        x[0, 0] = 10_000
        np.save(g / "vectors" / "inputs.npy", x)
        b.run("vectors_range", "`kofn sim` on a build whose input vectors leave the input format",
              [*KOFN, "sim", str(g), "-q"], g)
    if want("sim_on_file"):
        b.run("sim_on_file", "`kofn sim` on a regular file", [*KOFN, "sim", str(good_cfg)], good_cfg)
    if want("out_below_file"):
        f = w / "a_file2"
        f.write_text("x")
        b.run("out_below_file", "`--out` below a regular file", [*KOFN, "flow", "--out", str(f / "b"), "-q"], f)
    if want("lanes0"):
        flow("lanes0", sub(r'^lanes = "auto"', "lanes = 0"), what="`lanes = 0`")
    if want("width70"):
        flow("width70", sub(r"^weight = \{ width = 8, int_bits = 2 \}", "weight = { width = 70, int_bits = 2 }"),
             what="a 70-bit weight format")
    if want("compare_ratio"):
        b.run("compare_ratio", "`kofn compare --ratios 3/2`", [*KOFN, "compare", "--ratios", "3/2", "--out",
                                                              str(w / "cmp"), "-q"], w / "cmp")
    if want("explore_lanes"):
        b.run("explore_lanes", "`kofn explore --lanes 0`", [*KOFN, "explore", "--lanes", "0", "--out", str(w / "exp"), "-q"],
              w / "exp")
    if want("synth_family"):
        b.run("synth_family", "`kofn synth --family ice40`", [*KOFN, "synth", str(b.good), "--family", "ice40"], b.good)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="bad-inputs", help="scratch folder (default bad-inputs)")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(work)
    cases(b, set(args.only.split(",")) if args.only else None)
    print(b.table(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
