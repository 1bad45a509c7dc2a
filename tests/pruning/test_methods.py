"""Every method, every granularity: exactly k-of-n masks on random shapes, and each
method's defining mechanics (gradients, schedules, exact budget)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kofn.app.config import DTPConfig, GradualConfig, MagnitudeConfig, PSPConfig, TrainConfig
from kofn.pruning import (
    DPPPruner,
    DTPPruner,
    FixedPruner,
    GradualPruner,
    Grouping,
    KofnMaskError,
    MagnitudePruner,
    PSPPruner,
    SRSTEPruner,
    check_kofn,
    kofn_topk,
    make_pruner,
    masks_from_torch_ao,
    relaxed_khot,
    selection_metrics,
    sinkhorn_kofn,
)

def relaxed_khot_tail_reference(scores: torch.Tensor, k: int, tau: float, candidates: int) -> torch.Tensor:
    """The candidate + tail relaxation written with plain autograd ops (the reference for its hand-written backward)."""
    idx = scores.detach().topk(candidates, dim=-1).indices
    a = scores / tau
    tail = a.scatter(-1, idx, float("-inf"))
    log_tail = torch.logsumexp(tail, dim=-1, keepdim=True)
    ext = torch.cat([a.gather(-1, idx), log_tail], dim=-1)
    khot = torch.zeros_like(ext)
    p = torch.zeros_like(ext)
    frozen = torch.zeros_like(ext)
    frozen[..., -1] = 1.0
    s = ext
    for _ in range(k):
        s = s + torch.log1p(-p.clamp(max=1 - 1e-6)) * (1 - frozen) / tau
        p = torch.softmax(s, dim=-1)
        khot = khot + p
    soft = torch.exp(tail - log_tail) * khot[..., -1:]
    return soft.scatter(-1, idx, khot[..., :-1])


def relaxed_khot_reference(scores: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """:func:`relaxed_khot` written with plain autograd ops (the reference for its hand-written backward)."""
    khot = torch.zeros_like(scores)
    p = torch.zeros_like(scores)
    s = scores
    for _ in range(k):
        s = s + torch.log1p(-p.clamp(max=1 - 1e-6))
        p = torch.softmax(s / tau, dim=-1)
        khot = khot + p
    return khot


METHODS = ("dpp", "psp", "dtp", "magnitude", "gradual", "srste", "random")


def _random_cases(seed: int = 0, count: int = 12):
    """(shape, granularity, block, k) drawn at random, Linear and Conv2d, every granularity
    (``bank``: ``block`` carries the banks P, a divisor of the fan-in)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    cases = []
    for i in range(count):
        conv = i % 2 == 1
        shape = (r(1, 9), r(1, 6), r(1, 3), r(1, 3)) if conv else (r(1, 12), r(2, 40))
        fan_in = math.prod(shape[1:])
        grans = ["weight", "feature_map", "block", "bank"] + (["kernel"] if conv else [])
        for gran in grans:
            block = None
            if gran in ("block", "bank"):
                divisors = [d for d in range(1, fan_in + 1) if fan_in % d == 0]
                block = divisors[r(0, len(divisors) - 1)]
            grouping = _grouping(shape, gran, block)
            cases.append((shape, gran, block, r(1, grouping.n)))
    return cases


def _grouping(shape, gran, block) -> Grouping:
    return Grouping(shape, gran, banks=block) if gran == "bank" else Grouping(shape, gran, block)


CASES = _random_cases()


def _drive(pruner: nn.Module, w: torch.Tensor, steps: int = 6) -> None:
    """Run a short fake training: forward/backward with random losses over the whole schedule."""
    pruner.set_total_steps(steps)
    opt = torch.optim.SGD([p for p in pruner.parameters()] + [w], lr=0.1)
    pruner.train()
    for s in range(steps):
        pruner.set_progress(s / (steps - 1))
        wq = pruner.pre_quant(w)
        out = pruner(wq)
        (out * torch.randn_like(out)).sum().backward()
        opt.step()
        opt.zero_grad()
    pruner.eval()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape, gran, block, k", CASES, ids=[f"{c[1]}-{c[0]}-k{c[3]}" for c in CASES])
def test_every_method_is_exactly_k_of_n(method, shape, gran, block, k):
    torch.manual_seed(1)
    w = torch.randn(shape, requires_grad=True)
    grouping = _grouping(shape, gran, block)
    pruner = make_pruner(method, w.detach(), k, grouping, TrainConfig(), seed=3)
    _drive(pruner, w)
    m = pruner.hard_mask(w.detach())
    check_kofn(m, k, where=method)
    # the eval-mode parametrization applies exactly that mask, expanded to whole structures
    out = pruner(w.detach())
    assert torch.equal(out, w.detach() * grouping.expand(m))
    kept = grouping.structures((out != 0).float()).amax(-1)  # a structure shows if any weight survives
    assert torch.all(kept <= m)
    if gran == "bank":  # in the hardware's input order: exactly k of every bank of every row
        p = block
        full = grouping.expand(m).reshape(shape[0], -1)
        if len(shape) == 4:  # torch (c, ky, kx) -> window (ky, kx, c)
            full = grouping.expand(m).permute(0, 2, 3, 1).reshape(shape[0], -1)
        per_bank = full.reshape(shape[0], -1, p).sum(1)  # input i in bank i % P
        assert torch.all(per_bank == k)


@pytest.mark.parametrize("shape, gran, block", [((6, 8), "weight", None), ((4, 3, 2, 2), "kernel", None),
                                                ((5, 12), "block", 4), ((6, 2, 3, 3), "feature_map", None),
                                                ((5, 12), "bank", 3), ((4, 2, 3, 3), "bank", 6)])
def test_grouping_round_trip_and_expand(shape, gran, block):
    grouping = _grouping(shape, gran, block)
    w = torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape)
    if gran == "bank":  # a gather: expand inverts it
        assert torch.equal(grouping.expand(grouping.structures(w)[..., 0]), w)
    else:
        assert torch.equal(grouping.structures(w).reshape(shape), w)
    g, n, s = grouping.view
    assert g * n * s == w.numel()
    m = kofn_topk(torch.rand(g, n), 1)
    e = grouping.expand(m)
    assert e.shape == w.shape and e.sum() == g * s  # one whole structure per group


def test_bank_groups_are_the_hardware_banks():
    """By hand: input i of a row (a dense column; a conv window index (ky*K + kx)*C + c) is in
    bank i % P, and group o*P + p holds row o's bank p in ascending order."""
    w = torch.arange(12.0).reshape(2, 6)
    st = Grouping((2, 6), "bank", banks=3).structures(w)[..., 0]
    assert st.tolist() == [[0, 3], [1, 4], [2, 5], [6, 9], [7, 10], [8, 11]]
    # conv [1 filter, C=2, 1x2]: torch column c*2 + t, window index f = t*2 + c; P = 2 banks by f % 2 = c
    w = torch.tensor([[[[10.0, 11.0]], [[20.0, 21.0]]]])  # w[0, c, 0, t] = 10 (c+1) + t
    st = Grouping((1, 2, 1, 2), "bank", banks=2).structures(w)[..., 0]
    assert st.tolist() == [[10, 11], [20, 21]]  # bank 0: f = 0, 2 (c = 0, taps 0, 1); bank 1: c = 1
    with pytest.raises(ValueError, match="banks P=4 do not divide the fan-in 6"):
        Grouping((2, 6), "bank", banks=4)


def test_grouping_rejects_impossible_layouts():
    with pytest.raises(ValueError, match="kernel"):
        Grouping((4, 8), "kernel")
    with pytest.raises(ValueError, match="does not divide"):
        Grouping((4, 10), "block", 4)
    with pytest.raises(ValueError, match="granularity"):
        Grouping((4, 10), "channel")


def test_check_kofn_names_the_bad_group():
    with pytest.raises(KofnMaskError, match=r"m: group 1 keeps 1 of n=3, expected exactly k=2"):
        check_kofn(torch.tensor([[1.0, 1, 0], [0, 1, 0]]), 2, where="m")
    with pytest.raises(KofnMaskError, match="other than 0 and 1"):
        check_kofn(torch.tensor([[0.5, 1, 0]]), 2)


def test_relaxed_khot_backward_equals_autograd_of_the_definition():
    torch.manual_seed(2)
    for tau in (5.0, 0.5, 0.05):
        s = torch.randn(7, 13, dtype=torch.float64, requires_grad=True)
        g = torch.randn(7, 13, dtype=torch.float64)
        fast = relaxed_khot(s, 4, tau)
        (fast * g).sum().backward()
        g_fast, s.grad = s.grad.clone(), None
        ref = relaxed_khot_reference(s, 4, tau)
        (ref * g).sum().backward()
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-10)
        torch.testing.assert_close(g_fast, s.grad, rtol=0, atol=1e-9)
        torch.testing.assert_close(fast.sum(-1), torch.full((7,), 4.0, dtype=torch.float64), rtol=0, atol=1e-6)


def test_dpp_straight_through_and_temperature_schedule():
    torch.manual_seed(3)
    w = torch.randn(3, 8)
    p = DPPPruner(w, 2, Grouping((3, 8)))
    p.train()
    out = p(w)
    check_kofn(p.last_mask.detach(), 2)  # the forward mask is a hard sample
    (out * torch.randn(3, 8)).sum().backward()
    assert p.logits.grad.abs().sum() > 0  # the relaxed k-hot carries gradient to every logit
    p.set_progress(0.0)
    assert p.tau == 5.0
    p.set_progress(1.0)
    assert p.tau == 0.5


def test_psp_alpha_gradient_is_the_sum_over_its_structure():
    torch.manual_seed(4)
    w = torch.randn(4, 3, 2, 2)
    p = PSPPruner(w, 2, Grouping(w.shape, "kernel"), PSPConfig(ste_start=1.0))
    p.train()
    g = torch.randn_like(w)
    (p(p.pre_quant(w)) * g).sum().backward()
    expected = (g * w).reshape(4, 3, 4).sum(-1)  # d/d alpha of sum(g * alpha * w) over each kernel
    torch.testing.assert_close(p.alpha.grad, expected)


def test_srste_gradient_adds_decay_on_pruned_weights():
    w = torch.tensor([[3.0, -1.0, 2.0, 0.5]], requires_grad=True)
    p = SRSTEPruner(w.detach(), 2, Grouping((1, 4)), TrainConfig().srste)
    p.train()
    p(w).sum().backward()
    lam = TrainConfig().srste.decay
    torch.testing.assert_close(w.grad, torch.tensor([[1.0, 1.0 + lam * -1.0, 1.0, 1.0 + lam * 0.5]]))


def test_dtp_budget_is_exact_and_annealing_hardens():
    torch.manual_seed(5)
    w = torch.randn(6, 20)
    p = DTPPruner(w, 5, Grouping((6, 20)), DTPConfig(eps=0.01))
    p.set_total_steps(200)
    p.train()
    first = None
    for s in range(200):
        p.set_progress(s / 199)
        m = p.train_mask(w)
        torch.testing.assert_close(m.detach().double().sum(-1), torch.full((6,), 5.0, dtype=torch.float64), rtol=0, atol=1e-5)
        first = m.detach() if first is None else first
    hardness = lambda m: float((m * (1 - m)).mean())  # noqa: E731
    assert hardness(m.detach()) < 0.1 * hardness(first)  # the plan sharpens on its own
    check_kofn(p.hard_mask(w), 5)
    assert torch.equal(p.hard_mask(w), kofn_topk(m.detach(), 5))


def test_sinkhorn_matches_the_dual_condition():
    z = torch.randn(4, 30, dtype=torch.float64) * 10
    theta, plan = sinkhorn_kofn(z, 7)
    torch.testing.assert_close(torch.sigmoid(z - theta).sum(-1), torch.full((4,), 7.0, dtype=torch.float64))
    torch.testing.assert_close(plan.sum(-1), torch.full((4,), 7.0, dtype=torch.float64), rtol=0, atol=1e-12)


def test_magnitude_prunes_once_and_freezes():
    w = torch.tensor([[1.0, -4.0, 2.0, 3.0]])
    p = MagnitudePruner(w, 2, Grouping((1, 4)), MagnitudeConfig(prune_at=0.5))
    p.train()
    p.set_progress(0.2)
    assert p(w).eq(w).all()  # dense before prune_at
    p.set_progress(0.5)
    assert p(w).tolist() == [[0.0, -4.0, 0.0, 3.0]]
    p.set_progress(0.9)
    assert p(torch.tensor([[9.0, 0.0, 9.0, 1.0]])).tolist() == [[0.0, 0.0, 0.0, 1.0]]  # frozen


def test_gradual_schedule_is_monotone_and_ends_at_k():
    w = torch.randn(3, 16)
    p = GradualPruner(w, 2, Grouping((3, 16)), GradualConfig(start=0.1, end=0.7))
    p.train()
    kept = []
    for s in range(11):
        p.set_progress(s / 10)
        prev = p.mask.clone()
        p(w)
        assert torch.all(p.mask <= prev)  # never regrows
        kept.append(int(p.mask.sum(-1).max()))
    assert kept[0] == 16 and kept == sorted(kept, reverse=True) and kept[7:] == [2] * 4


def test_fixed_masks_and_torch_ao_interop():
    from torch.ao.pruning import WeightNormSparsifier

    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    sp = WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, 4), zeros_per_block=3)
    sp.prepare(model, [{"tensor_fqn": "0.weight"}, {"tensor_fqn": "2.weight"}])
    sp.step()
    masks = masks_from_torch_ao(model, k=1, n=4)
    assert [tuple(m.shape) for m in masks] == [(8, 16), (4, 8)]
    p = FixedPruner(torch.randn(8, 16), 1, Grouping((8, 16), "block", 4), masks[0])
    check_kofn(p.hard_mask(None), 1)

    half = nn.Sequential(nn.Linear(16, 8))
    sp = WeightNormSparsifier(sparsity_level=0.5, sparse_block_shape=(1, 4), zeros_per_block=3)
    sp.prepare(half, [{"tensor_fqn": "0.weight"}])
    sp.step()
    with pytest.raises(KofnMaskError, match="sparsity_level=1.0"):
        masks_from_torch_ao(half, k=1, n=4)


def test_selection_metrics_extremes():
    hot = kofn_topk(torch.randn(5, 10), 3)
    assert selection_metrics(hot, 3)["confidence"] == 0.0
    uniform = torch.full((5, 10), 0.3)
    m = selection_metrics(uniform, 3)
    assert m["confidence"] == pytest.approx(1.0) and m["diversity"] == pytest.approx(1.0)
    assert m["mutual_information"] == pytest.approx(0.0, abs=1e-12)
    same = kofn_topk(torch.arange(10.0).expand(5, 10), 3)  # every group keeps the same 3
    m = selection_metrics(same, 3)
    assert m["diversity"] == pytest.approx(math.log(3) / math.log(10))
    assert m["mutual_information"] == pytest.approx(0.0, abs=1e-12)
    disjoint = torch.zeros(2, 6)
    disjoint[0, :3] = 1
    disjoint[1, 3:] = 1
    assert selection_metrics(disjoint, 3)["mutual_information"] == pytest.approx(math.log(2))


def test_relaxed_khot_candidates_approximates_the_full_recursion():
    """The candidate set + aggregated tail: rows still sum to k, values and gradients
    stay close to the full recursion, and tail entries keep a gradient."""
    torch.manual_seed(7)
    s = torch.randn(5, 200, dtype=torch.float64) * 2
    for tau in (5.0, 1.0, 0.3):
        x = s.clone().requires_grad_()
        g = torch.randn_like(s)
        full = relaxed_khot(x, 6, tau)
        (full * g).sum().backward()
        g_full, x.grad = x.grad.clone(), None
        part = relaxed_khot(x, 6, tau, candidates=40)
        (part * g).sum().backward()
        torch.testing.assert_close(part.sum(-1), torch.full((5,), 6.0, dtype=torch.float64), rtol=0, atol=1e-9)
        assert (part - full).abs().max() < 5e-3
        assert (x.grad - g_full).abs().max() < 5e-3 * g_full.abs().max()
        tail = torch.ones_like(s, dtype=torch.bool).scatter(-1, s.topk(40, -1).indices, False)
        assert x.grad[tail].abs().max() > 0


def test_tail_relaxation_backward_equals_autograd_of_its_definition():
    torch.manual_seed(8)
    for tau in (5.0, 1.0, 0.3):
        s = (torch.randn(5, 200, dtype=torch.float64) * 2).requires_grad_()
        g = torch.randn(5, 200, dtype=torch.float64)
        fast = relaxed_khot(s, 6, tau, candidates=40)
        (fast * g).sum().backward()
        g_fast, s.grad = s.grad.clone(), None
        ref = relaxed_khot_tail_reference(s, 6, tau, 40)
        (ref * g).sum().backward()
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-10)
        torch.testing.assert_close(g_fast, s.grad, rtol=0, atol=1e-10)


def test_dpp_hard_sample_from_the_candidate_set_is_its_top_k():
    torch.manual_seed(9)
    w = torch.randn(6, 400)
    p = DPPPruner(w, 5, Grouping((6, 400)))
    assert p.candidates == 42  # 2k + 32 <= n / 2
    p.train()
    torch.manual_seed(10)
    p(w)
    torch.manual_seed(10)
    expected = kofn_topk((p.logits + torch.rand_like(p.logits).clamp_(1e-10, 1.0 - 1e-7).log_().neg_().log_().neg_()).detach(), 5)
    assert torch.equal(p.last_mask.detach(), expected)
