"""The Koch et al. verification objective: the weighted-L1 head's logit and probability by hand, binary
cross-entropy by hand, gradcheck through head and embeddings, symmetry, finite gradients at u == v, the
head's state dict round trip."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

from sbert_siamese.losses.verification import verification_loss
from sbert_siamese.models.heads import WeightedL1Head

from .helpers import check_finite_backward, check_state_dict_round_trip, rand


def test_weighted_l1_head_initial_parameters():
    head = WeightedL1Head(3)
    assert head.alpha.tolist() == [-1.0, -1.0, -1.0]
    assert head.bias.item() == 0.0


def set_weighted_l1(head: WeightedL1Head, alpha: list[float], bias: float) -> WeightedL1Head:
    with torch.no_grad():
        head.alpha.copy_(torch.tensor(alpha))
        head.bias.fill_(bias)
    return head


def test_weighted_l1_head_logit_and_probability_by_hand():
    head = set_weighted_l1(WeightedL1Head(2).double(), [-0.5, 2.0], 0.25)
    u = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([[4.0, 1.5], [0.0, 0.0]], dtype=torch.float64)
    # row 0: |u - v| = [3, 0.5] -> -0.5*3 + 2*0.5 + 0.25 = -1.5 + 1 + 0.25 = -0.25
    # row 1: u == v -> just the bias 0.25
    logits = head(u, v)
    torch.testing.assert_close(logits, torch.tensor([-0.25, 0.25], dtype=torch.float64), rtol=0, atol=1e-12)
    # probability of "same": sigmoid(-0.25) = 1 / (1 + e^0.25) ~ 0.437823
    assert torch.sigmoid(logits)[0].item() == pytest.approx(1 / (1 + math.exp(0.25)), rel=1e-12)


def test_verification_loss_is_bce_by_hand():
    logits = torch.tensor([-0.25, 0.25, 2.0], dtype=torch.float64)
    labels = torch.tensor([1, 0, 1])

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    # -[y log s + (1 - y) log(1 - s)] per pair, then the mean
    expected = -(math.log(sig(-0.25)) + math.log(1 - sig(0.25)) + math.log(sig(2.0))) / 3
    assert verification_loss(logits, labels).item() == pytest.approx(expected, rel=1e-12)


def test_weighted_l1_head_with_verification_loss_gradcheck():
    head = set_weighted_l1(WeightedL1Head(3).double(), [-0.7, 0.4, -1.3], 0.2)
    u, v = rand(4, 3, seed=90).requires_grad_(), rand(4, 3, seed=91).requires_grad_()
    alpha = head.alpha.detach().clone().requires_grad_()
    bias = head.bias.detach().clone().requires_grad_()
    labels = torch.tensor([1, 0, 1, 0])

    def f(u_, v_, alpha_, bias_):
        return verification_loss(functional_call(head, {"alpha": alpha_, "bias": bias_}, (u_, v_)), labels)

    assert torch.autograd.gradcheck(f, (u, v, alpha, bias))


def test_weighted_l1_head_is_symmetric():
    head = set_weighted_l1(WeightedL1Head(4).double(), [0.3, -1.2, 0.8, -0.1], -0.4)
    u, v = rand(5, 4, seed=92), rand(5, 4, seed=93)
    torch.testing.assert_close(head(u, v), head(v, u), rtol=0, atol=0)


def test_weighted_l1_head_finite_gradient_when_u_equals_v():
    head = WeightedL1Head(3).double()
    base = rand(2, 3, seed=94)
    u, v = base.clone().requires_grad_(), base.clone().requires_grad_()
    check_finite_backward(verification_loss(head(u, v), torch.tensor([1, 0])), u, v, head.alpha, head.bias)


def test_weighted_l1_head_state_dict_round_trip():
    # moved off the constant initialisation (alpha = -1, b = 0), so that the round trip means something
    check_state_dict_round_trip(
        lambda: WeightedL1Head(4), lambda head: set_weighted_l1(head, [0.5, -2.0, 1.5, 0.1], 0.7)
    )
