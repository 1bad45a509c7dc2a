"""DPP masks: exactly k of n per row, relaxed k-hot, straight-through gradients, parametrize API."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from kofn.pruning import DPPMask, check_kofn, kofn_topk, relaxed_khot


@pytest.mark.parametrize("rows, n, k", [(1, 1, 1), (5, 7, 3), (16, 64, 16), (3, 50, 49)])
def test_masks_are_exactly_k_of_n(rows, n, k):
    torch.manual_seed(0)
    w = torch.randn(rows, n)
    m = DPPMask(w, k)
    for mode in (True, False):
        m.train(mode)
        for _ in range(5):
            check_kofn(m.mask(), k)
            check_kofn((m(w) != 0).float(), k)  # w has no zeros, so the kept entries show
    assert torch.equal(m(w), w * m.mask())  # eval mode is deterministic


def test_relaxed_khot_sums_to_k_and_sharpens():
    torch.manual_seed(1)
    s = torch.randn(4, 10)
    for tau in (5.0, 1.0, 0.1):
        r = relaxed_khot(s, 3, tau)
        torch.testing.assert_close(r.sum(-1), torch.full((4,), 3.0), rtol=0, atol=1e-4)
        assert (r >= 0).all()
    # with well-separated scores and a low temperature it approaches the hard top-k
    sep = torch.randperm(10).float().expand(4, 10) * 0.5
    assert torch.allclose(relaxed_khot(sep, 3, 0.01), kofn_topk(sep, 3), atol=1e-3)


def test_straight_through_gradient_reaches_the_logits():
    torch.manual_seed(2)
    w = torch.randn(3, 8)
    m = DPPMask(w, 2)
    m.train()
    (m(w) * torch.randn(3, 8)).sum().backward()
    assert m.logits.grad is not None and m.logits.grad.abs().sum() > 0


def test_eval_mask_is_topk_of_logits():
    m = DPPMask(torch.ones(2, 5), 2)
    with torch.no_grad():
        m.logits.copy_(torch.tensor([[0.0, 3, 1, 2, -1], [5, 4, 3, 2, 1]]))
    m.eval()
    assert m.mask().tolist() == [[0, 1, 0, 1, 0], [1, 1, 0, 0, 0]]


def test_parametrization_register_and_remove():
    lin = nn.Linear(6, 4)
    parametrize.register_parametrization(lin, "weight", DPPMask(lin.weight, 2))
    lin.eval()
    check_kofn((lin.weight != 0).float(), 2)
    parametrize.remove_parametrizations(lin, "weight", leave_parametrized=True)
    check_kofn((lin.weight != 0).float(), 2)


def test_check_kofn_messages():
    with pytest.raises(ValueError, match="row 1 keeps 1 inputs, expected exactly k=2"):
        check_kofn(torch.tensor([[1.0, 1, 0], [0, 1, 0]]), 2, where="m")
    with pytest.raises(ValueError, match="other than 0 and 1"):
        check_kofn(torch.tensor([[0.5, 1, 0]]), 2)
    with pytest.raises(ValueError, match="k=9 must be in 1..n=3"):
        DPPMask(torch.ones(2, 3), 9)
