"""``[train] device``: the config key, a CUDA request on a machine without CUDA, and the
training code's device hygiene, checked on the CPU:

* a factory audit: during model build, training, metrics, accuracy and export, every tensor
  factory (``torch.zeros``, ``arange``, ``rand`` ...) called from kofn's training code names
  its device, and every ``.numpy()`` reads a tensor brought to the CPU first;
* the meta device: a trained model moved with ``.to("meta")`` keeps no tensor behind, and a
  training forward/backward and an eval forward run there, so no op mixes a tensor left on
  the CPU with the model's (meta raises on that as CUDA does);

each with a planted bug that it must catch.  The CUDA tests run only where
``torch.cuda.is_available()``: every method trains on CUDA, its IR is bit-exact with its own
integer reference, and the CPU IR of the same seed is compared (equal, or the differences
counted: float reduction order may flip a weight at a boundary)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import kofn.pruning.masks as masks_mod
import kofn.pruning.methods as methods_mod
from kofn.app.cli import main
from kofn.app.config import TrainConfig, default_config_text, parse_config
from kofn.app.training import build_model, load_data, train_to_ir
from kofn.core.errors import ConfigError
from kofn.core.fixed import quantize
from kofn.core.reference import run as reference_run
from kofn.pruning import accuracy, train
from kofn.pruning.device import device_settings, resolve_device

CUDA = torch.cuda.is_available()
METHODS = ("dense", "dpp", "psp", "dtp", "magnitude", "gradual", "srste", "random")
PRUNING = Path(methods_mod.__file__).resolve().parent
TRAINING_APP = Path(sys.modules["kofn.app.training"].__file__).resolve()
REPO = Path(__file__).resolve().parents[1]
CNN = (REPO / "examples" / "cnn_digits.toml").read_text()


def _text(device=None, method=None, epochs=None, text=None, gran=None) -> str:
    text = text or default_config_text()
    if method:
        text = re.sub(r'(?m)^method = "\w+"', f'method = "{method}"', text, count=1)
    if epochs:
        text = re.sub(r"(?m)^epochs = \d+", f"epochs = {epochs}", text, count=1)
    if gran:
        text = re.sub(r'(?m)^granularity = "weight"', f'granularity = "{gran}"', text, count=1)
    if device is not None:
        line = f"device = {json.dumps(device)}"  # a TOML string, integer or boolean
        text, n = re.subn(r'(?m)^device = "auto"', line, text, count=1)
        if not n:
            text = text.replace("[train]\n", f"[train]\n{line}\n", 1)
    return text


def _cfg(**kw):
    return parse_config(_text(**kw))


@pytest.fixture(scope="module")
def ds():
    return load_data(_cfg())


# ---------------------------------------------------------------------------------------- config
def test_device_defaults_to_auto():
    assert TrainConfig().device == "auto"
    assert _cfg().train.device == "auto"
    assert 'device = "auto"' in default_config_text()


@pytest.mark.parametrize("value", ["auto", "cpu"])
def test_device_accepted(value):
    assert _cfg(device=value).train.device == value


@pytest.mark.parametrize("value", ["gpu", "CPU", "Cuda", "cuda:", "cuda:-1", "cuda:01", "cuda:0:1", "cuda0", "",
                                   " cpu", "mps", 0, True])
def test_device_bad_values(value):
    with pytest.raises(ConfigError, match=r"^train\.device: ") as e:
        _cfg(device=value)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("value", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_config_error(value):
    with pytest.raises(ConfigError, match=rf'^train\.device: "{value}" requested but .*; use device = "auto" or '
                                          r'"cpu"$') as e:
        _cfg(device=value)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_without_cuda_cli_exit_2(tmp_path, capsys):
    cfg = tmp_path / "gpu.toml"
    cfg.write_text(_text(device="cuda"))
    out = tmp_path / "out"
    assert main(["flow", str(cfg), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kofn: config: train.device: \"cuda\" requested but"), err
    assert not out.exists()


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_without_cuda_raises_before_training(ds):
    """A TrainConfig built in code (not validated) asking for CUDA: train() and
    train_to_ir() refuse before any step, the model untouched."""
    cfg = _cfg(epochs=1)
    tc = dataclasses.replace(cfg.train, device="cuda")
    net = build_model(cfg, ds.n_features)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ConfigError, match=r"^train\.device: "):
        train(net, ds.x_train[:64], ds.y_train[:64], tc)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ConfigError, match=r"^train\.device: "):
        train_to_ir(dataclasses.replace(cfg, train=tc), ds, lambda m: None)
    with pytest.raises(ConfigError, match=r"^train\.device: "):
        resolve_device("cuda:0")


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_with_cuda_is_accepted():
    assert _cfg(device="cuda").train.device == "cuda"
    assert _cfg(device="cuda:0").train.device == "cuda:0"
    with pytest.raises(ConfigError, match=r"^train\.device: "):
        _cfg(device=f"cuda:{torch.cuda.device_count()}")
    assert resolve_device("auto").type == "cuda"


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    with pytest.raises(ConfigError, match=r"^train\.device: must be"):
        resolve_device("tpu")


def test_device_settings_set_and_restore():
    """CUDA runs switch TF32 off and cuDNN to deterministic while training, then restore the
    previous flags; a CPU run touches none of them (the flags need no GPU to be read or set)."""
    flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,  # noqa: E731
                     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    before = flags()
    with device_settings(torch.device("cpu")):
        assert flags() == before
    torch.backends.cudnn.allow_tf32 = True
    try:
        with device_settings(torch.device("cuda")):
            assert flags() == (False, False, True, False)
        assert flags() == (before[0], True, before[2], before[3])
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = before


def test_history_records_the_device(ds):
    cfg = _cfg(epochs=1, device="cpu")
    net = build_model(cfg, ds.n_features)
    hist = train(net, ds.x_train[:64], ds.y_train[:64], cfg.train, log_metrics=False)
    assert hist.device == "cpu" and hist.as_dict()["device"] == "cpu"
    assert {p.device.type for p in net.parameters()} == {"cpu"}


@pytest.mark.skipif(CUDA, reason='on this machine "auto" is CUDA')
def test_auto_is_the_cpu_here(ds):
    a = train_to_ir(_cfg(epochs=1, method="dpp"), ds, lambda m: None)
    c = train_to_ir(_cfg(epochs=1, method="dpp", device="cpu"), ds, lambda m: None)
    assert a.history.device == c.history.device == "cpu"
    assert a.history.loss == c.history.loss and a.accuracy_int == c.accuracy_int
    for la, lc in zip(a.ir.layers, c.ir.layers):
        assert np.array_equal(la.indices, lc.indices) and np.array_equal(la.weights, lc.weights)


# ---------------------------------------------------------------------------------------- audits
# the audited models: (method, config text (None: the default MLP), layer 0 granularity (None: as configured))
CASES = [(m, None, None) for m in METHODS] + [("dpp", None, "bank"), ("psp", None, "feature_map"),
                                              ("dpp", CNN, None), ("dtp", CNN, None), ("magnitude", CNN, None)]
CASE_IDS = [f"{m}{'-cnn' if t else ''}{'-' + g if g else ''}" for m, t, g in CASES]

FACTORIES = {torch.arange, torch.zeros, torch.ones, torch.full, torch.empty, torch.empty_strided, torch.rand,
             torch.randn, torch.randint, torch.randperm, torch.tensor, torch.as_tensor, torch.eye, torch.linspace,
             torch.logspace, torch.scalar_tensor}


def _caller() -> str | None:
    """``file:line`` of the call into torch when kofn's training code made it itself (a
    factory called inside torch, e.g. Adam's CPU step counter, is torch's business)."""
    f = sys._getframe(2)
    path = Path(f.f_code.co_filename)
    if PRUNING in path.parents or path == TRAINING_APP:
        return f"{path.name}:{f.f_lineno} ({f.f_code.co_name})"
    return None


class DeviceAudit(TorchFunctionMode):
    """Records factory calls without ``device=`` and ``.numpy()`` calls on tensors that did
    not come out of ``.cpu()`` / ``.to("cpu")``, made from kofn's training code."""

    def __init__(self) -> None:
        super().__init__()
        self.factories: list[str] = []
        self.numpy: list[str] = []
        self.calls = 0
        self._cpu: set[int] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls += 1
        if func in FACTORIES and "device" not in kwargs:
            where = _caller()
            if where:
                self.factories.append(f"torch.{func.__name__} at {where}")
        if func is torch.Tensor.numpy and id(args[0]) not in self._cpu:
            where = _caller()
            if where:
                self.numpy.append(where)
        out = func(*args, **kwargs)
        if func is torch.Tensor.cpu or (func is torch.Tensor.to and isinstance(out, torch.Tensor)
                                        and out.device.type == "cpu"
                                        and any(a in ("cpu", torch.device("cpu")) for a in (*args[1:2],
                                                                                            kwargs.get("device")))):
            self._cpu.add(id(out))
        return out


def _audited_run(ds, method, text, gran):
    cfg = _cfg(method=method, epochs=2, text=text, gran=gran)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=50))
    audit = DeviceAudit()
    with audit:
        net = build_model(cfg, ds.n_features)
        train(net, ds.x_train[:150], ds.y_train[:150], cfg.train, seed=cfg.seed)
        accuracy(net, ds.x_test[:50], ds.y_test[:50])
        net.to_ir("t")
    return audit


@pytest.mark.parametrize("method,text,gran", CASES, ids=CASE_IDS)
def test_factory_audit(ds, method, text, gran):
    audit = _audited_run(ds, method, text, gran)
    assert audit.calls > 100  # the mode saw the run
    assert audit.factories == [], "tensors made without device=: " + "; ".join(sorted(set(audit.factories)))
    assert audit.numpy == [], ".numpy() without .cpu(): " + "; ".join(sorted(set(audit.numpy)))


def _plant(monkeypatch, module, name: str, src: str) -> None:
    """Replace ``module.name`` by ``src`` compiled as if it were written in the module's file."""
    ns = dict(vars(module))
    exec(compile(src, module.__file__, "exec"), ns)
    monkeypatch.setattr(module, name, ns[name])


GUMBEL_ON_DEFAULT_DEVICE = '''
def gumbel_like(x):
    u = torch.rand(x.shape, dtype=x.dtype)  # planted: no device=, and never moved
    return u.clamp_(1e-10, 1.0 - 1e-7).log_().neg_().log_().neg_()
'''

NUMPY_WITHOUT_CPU = '''
def kofn_topk(scores, k):
    idx = scores.topk(k, dim=-1).indices
    idx.numpy()  # planted: fails for a CUDA tensor
    return torch.zeros_like(scores).scatter_(-1, idx, 1.0)
'''


def test_factory_audit_catches_planted_bugs(ds, monkeypatch):
    _plant(monkeypatch, methods_mod, "gumbel_like", GUMBEL_ON_DEFAULT_DEVICE)
    audit = _audited_run(ds, "dpp", None, None)
    assert audit.factories and all("methods.py" in f and "gumbel_like" in f for f in audit.factories)
    monkeypatch.undo()
    _plant(monkeypatch, methods_mod, "kofn_topk", NUMPY_WITHOUT_CPU)
    audit = _audited_run(ds, "psp", None, None)
    assert audit.numpy and all("kofn_topk" in f for f in audit.numpy)


def _meta_steps(net, n_inputs: int) -> None:
    """Every tensor of ``net`` follows ``.to("meta")``; a training forward/backward and an
    eval forward run on meta (DTP's Newton polish, which reads a value, is skipped)."""
    net.to("meta")
    left = [f"{type(m).__name__}.{k} on {v.device}" for m in net.modules() for k, v in vars(m).items()
            if isinstance(v, torch.Tensor) and v.device.type != "meta"]
    left += [f"{n} on {t.device}" for n, t in [*net.named_parameters(), *net.named_buffers()]
             if t.device.type != "meta"]
    assert left == [], f"tensors .to() did not move: {left}"
    x = torch.empty(8, n_inputs, device="meta")
    y = torch.zeros(8, dtype=torch.long, device="meta")
    net.train()
    net.set_progress(0.7)
    out = net(x)
    reg = net.regularizer()
    loss = nn.functional.cross_entropy(out, y)
    (loss if reg is None else loss + reg).backward()
    assert out.device.type == "meta"
    assert all(p.grad is None or p.grad.device.type == "meta" for p in net.parameters())
    net.eval()
    assert net(x).device.type == "meta"


def _trained(ds, method, text=None, gran=None):
    cfg = _cfg(method=method, epochs=2, text=text, gran=gran)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=50))
    net = build_model(cfg, ds.n_features)
    train(net, ds.x_train[:150], ds.y_train[:150], cfg.train, seed=cfg.seed)
    return net


@pytest.mark.parametrize("method,text,gran", CASES, ids=CASE_IDS)
def test_meta_device(ds, method, text, gran, monkeypatch):
    net = _trained(ds, method, text, gran)
    monkeypatch.setattr(methods_mod, "sinkhorn_kofn", functools.partial(methods_mod.sinkhorn_kofn, max_newton=0))
    _meta_steps(net, ds.n_features)


def test_meta_device_catches_planted_bugs(ds, monkeypatch):
    net = _trained(ds, "dpp")
    _plant(monkeypatch, methods_mod, "gumbel_like", GUMBEL_ON_DEFAULT_DEVICE)
    with pytest.raises(RuntimeError, match="device"):
        _meta_steps(net, ds.n_features)
    monkeypatch.undo()
    net = _trained(ds, "magnitude")
    pruner = net.pruners()[0]
    object.__setattr__(pruner, "stale", torch.ones(3))  # a plain attribute: .to() leaves it behind
    with pytest.raises(AssertionError, match="MagnitudePruner.stale on cpu"):
        _meta_steps(net, ds.n_features)


# ---------------------------------------------------------------------------------------- CUDA
def _eval_codes(net, m, x: np.ndarray, device: str) -> np.ndarray | None:
    """``net`` in float64 eval mode on ``device`` on the quantized ``x``: its output codes
    (float64 sums of integer products are exact on either device).  ``None`` when the eval
    masks recomputed on ``device`` are not the CPU's: exact ties among mask scores (e.g.
    equal quantized magnitudes for SR-STE) may be broken differently by the CUDA topk."""
    xq = quantize(x, m.input_fmt)
    cpu_masks = net.hard_masks()
    net = copy.deepcopy(net).double().eval().to(device)
    if any(a is not None and not torch.equal(a, b.cpu()) for a, b in zip(cpu_masks, net.hard_masks())):
        return None
    with torch.no_grad():
        y = net(torch.from_numpy(xq * m.input_fmt.scale).to(device)).cpu().numpy() * 2.0 ** m.output_fmt.frac
    assert np.all(y == np.round(y))
    return y.astype(np.int64)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gumbel_noise_is_the_cpu_noise():
    x = torch.zeros(7, 33)
    torch.manual_seed(5)
    a = masks_mod.gumbel_like(x)
    torch.manual_seed(5)
    b = masks_mod.gumbel_like(x.cuda())
    assert b.device.type == "cuda" and torch.equal(a, b.cpu())


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("method,text,gran", CASES, ids=CASE_IDS)
def test_cuda_training_is_bit_exact_with_its_reference(ds, method, text, gran):
    cfg = _cfg(method=method, epochs=3, text=text, gran=gran)
    runs = {}
    for device in ("cuda", "cpu"):
        c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device))
        t = train_to_ir(c, ds, lambda m: None)
        assert {p.device.type for p in t.net.parameters()} == {"cpu"}  # handed back on the CPU
        assert t.history.device.startswith(device)
        # the integer reference is computed from the IR; the trained torch model (eval,
        # float64) computes the same codes, on the CPU and on the GPU
        ref = reference_run(t.ir, quantize(ds.x_test, t.ir.input_fmt))
        np.testing.assert_array_equal(t.ref_test, ref)
        np.testing.assert_array_equal(_eval_codes(t.net, t.ir, ds.x_test, "cpu"), ref)
        on_gpu = _eval_codes(t.net, t.ir, ds.x_test, "cuda")
        if on_gpu is not None:
            np.testing.assert_array_equal(on_gpu, ref)
        runs[device] = t
    a, b = runs["cuda"].ir, runs["cpu"].ir
    assert [type(l).__name__ for l in a.layers] == [type(l).__name__ for l in b.layers]
    diffs = []
    for la, lb in zip(a.layers, b.layers):
        if hasattr(la, "weights"):
            assert la.weights.shape == lb.weights.shape and la.indices.shape == lb.indices.shape
            diffs.append((la.name, int((la.weights != lb.weights).sum()), int((la.indices != lb.indices).sum())))
    if method in ("dense", "random"):  # masks fixed before training (the random one from a CPU generator)
        assert all(np.array_equal(la.indices, lb.indices) for la, lb in zip(a.layers, b.layers)
                   if hasattr(la, "indices"))
    print(f"\n{method}: CUDA vs CPU IR (layer, weight codes differing, indices differing): {diffs}; "
          f"integer accuracy cuda {runs['cuda'].accuracy_int:.4f} cpu {runs['cpu'].accuracy_int:.4f}")
