"""Contrastive and online contrastive losses: hand-computed values and gradients, brute-force loops over
every pair, the hard-pair mask against its definition, gradcheck in float64, finite gradients at u == v,
margin edge cases, and the distances the loss refuses."""

from __future__ import annotations

import math

import pytest
import torch

from sbert_siamese.errors import ConfigError
from sbert_siamese.losses.contrastive import (
    CONTRASTIVE_DISTANCES,
    ContrastiveParams,
    contrastive_loss,
    hard_pair_mask,
    online_contrastive_loss,
)

from .helpers import ALL, NON_NEGATIVE, check_finite_backward, py_distance, rand, rand_labels, relu

# =========================================================================================================
# contrastive
# =========================================================================================================


def brute_contrastive(u, v, labels, margin: float, name: str) -> float:
    total = 0.0
    for ui, vi, y in zip(u.tolist(), v.tolist(), labels.tolist(), strict=True):
        d = py_distance(name, ui, vi)
        total += 0.5 * (y * d * d + (1 - y) * relu(margin - d) ** 2)
    return total / len(labels)


def test_contrastive_hand_computed_euclidean():
    # margin 2
    # pair 0, same:      [1, 0] vs [1, 1]    d = 1              -> 1^2 / 2           = 0.5
    # pair 1, different: [1, 2] vs [1, 2.5]  d = 0.5 < margin   -> (2 - 0.5)^2 / 2   = 1.125
    # pair 2, different: [1, 2] vs [4, -2]   d = sqrt(9+16) = 5 -> max(0, 2 - 5) = 0 -> 0
    # mean = (0.5 + 1.125 + 0) / 3 = 0.5416666...
    u = torch.tensor([[1.0, 0.0], [1.0, 2.0], [1.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 1.0], [1.0, 2.5], [4.0, -2.0]], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0])
    loss = contrastive_loss(u, v, labels, margin=2.0, distance="euclidean")
    assert loss.item() == pytest.approx(1.625 / 3, rel=1e-12)


def test_contrastive_hand_computed_cosine():
    # margin 0.5
    # pair 0, same:      [1, 0] vs [1, 1]   cos = 1/sqrt2, d = 1 - 1/sqrt2 ~ 0.29289
    #                    d^2 / 2 = (1 - sqrt2 + 1/2) / 2 = 0.75 - sqrt2/2 ~ 0.0428932
    # pair 1, different: [1, 0] vs [3, 4]   cos = 3/5, d = 0.4 < 0.5 -> (0.5 - 0.4)^2 / 2 = 0.005
    # pair 2, different: [1, 2] vs [4, -2]  cos = 0,   d = 1 > 0.5   -> 0
    # mean = (0.75 - sqrt2/2 + 0.005) / 3 ~ 0.0159644
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 1.0], [3.0, 4.0], [4.0, -2.0]], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0])
    expected = (0.75 - math.sqrt(2) / 2 + 0.005) / 3
    assert expected == pytest.approx(0.0159644, abs=1e-7)
    loss = contrastive_loss(u, v, labels, margin=0.5, distance="cosine")
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_contrastive_hand_computed_gradient_euclidean():
    # one "same" pair u=[3, 4], v=[0, 0]: loss = d^2 / 2 = ||u - v||^2 / 2 -> d loss / d u = u - v = [3, 4]
    u = torch.tensor([[3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    v = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    contrastive_loss(u, v, torch.tensor([1]), margin=1.0, distance="euclidean").backward()
    torch.testing.assert_close(u.grad, torch.tensor([[3.0, 4.0]], dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(v.grad, -u.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", CONTRASTIVE_DISTANCES)
def test_contrastive_matches_brute_force(name, seed):
    u, v = rand(9, 4, seed=seed), rand(9, 4, seed=seed + 50)
    labels = rand_labels(9, 2, seed=seed)
    margin = 5.0 if name in ("dot", "euclidean", "manhattan", "squared_euclidean") else 0.8
    expected = brute_contrastive(u, v, labels, margin, name)
    got = contrastive_loss(u, v, labels, margin=margin, distance=name)
    assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(
    "u,v,margin,name",
    [
        ([0.0, 0.0], [3.0, 4.0], 5.0, "euclidean"),  # d = 5 exactly
        ([1.0, 0.0], [0.0, 1.0], 1.0, "cosine"),  # cos = 0, d = 1 exactly
        ([1.0, 2.0], [4.0, -2.0], 7.0, "manhattan"),  # d = 3 + 4 = 7
    ],
)
def test_contrastive_negative_exactly_at_margin_contributes_nothing(u, v, margin, name):
    u = torch.tensor([u], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([v], dtype=torch.float64, requires_grad=True)
    loss = contrastive_loss(u, v, torch.tensor([0]), margin=margin, distance=name)
    assert loss.item() == 0.0
    loss.backward()
    assert u.grad.abs().max().item() == 0.0 and v.grad.abs().max().item() == 0.0


@pytest.mark.parametrize("name", NON_NEGATIVE)
def test_contrastive_margin_zero_ignores_negatives(name):
    u, v = rand(8, 3, seed=3), rand(8, 3, seed=4)
    labels = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0])
    assert contrastive_loss(u, v, torch.zeros(8), margin=0.0, distance=name).item() == 0.0
    # only the positives' d^2 / 2 remains, still averaged over the whole batch
    pos = labels == 1
    d = [py_distance(name, a, b) for a, b in zip(u[pos].tolist(), v[pos].tolist(), strict=True)]
    expected = sum(0.5 * x * x for x in d) / 8
    got = contrastive_loss(u, v, labels, margin=0.0, distance=name)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("loss_fn", [contrastive_loss, online_contrastive_loss])
def test_contrastive_negative_margin_is_config_error(loss_fn):
    u, v = rand(2, 3, seed=0), rand(2, 3, seed=1)
    with pytest.raises(ConfigError, match="margin"):
        loss_fn(u, v, torch.tensor([1, 0]), margin=-0.1)


def test_contrastive_labels_of_wrong_shape_rejected():
    u, v = rand(3, 2, seed=0), rand(3, 2, seed=1)
    with pytest.raises(ValueError, match="labels"):
        contrastive_loss(u, v, torch.tensor([1, 0]))


@pytest.mark.parametrize("loss_fn", [contrastive_loss, online_contrastive_loss])
@pytest.mark.parametrize("name", CONTRASTIVE_DISTANCES)
def test_contrastive_finite_gradients_when_u_equals_v(loss_fn, name):
    base = rand(4, 3, seed=5)
    labels = torch.tensor([1, 0, 1, 0])
    u, v = base.clone().requires_grad_(), base.clone().requires_grad_()
    check_finite_backward(loss_fn(u, v, labels, margin=0.5, distance=name), u, v)
    w = base.clone().requires_grad_()  # the very same tensor on both sides
    check_finite_backward(loss_fn(w, w, labels, margin=0.5, distance=name), w)


@pytest.mark.parametrize("loss_fn", [contrastive_loss, online_contrastive_loss])
@pytest.mark.parametrize("name", ["cosine", "euclidean", "manhattan", "squared_euclidean", "rbf"])
def test_contrastive_gradcheck(loss_fn, name):
    u = rand(5, 3, seed=6).requires_grad_()
    v = rand(5, 3, seed=7).requires_grad_()
    labels = torch.tensor([1, 0, 1, 0, 0])
    margin = 0.8 if name in ("cosine", "rbf") else 3.0
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, labels, margin=margin, distance=name), (u, v))


@pytest.mark.parametrize("loss_fn", [contrastive_loss, online_contrastive_loss])
@pytest.mark.parametrize("name", ALL)
def test_contrastive_same_pair_loss_is_lowest_at_u_equals_v(loss_fn, name):
    """Hadsell et al. assume d >= 0 with d(u, u) = 0: a "same" pair's loss y d^2 / 2 must not rise as v moves
    onto u. A distance that can be negative breaks this; rejecting it with ConfigError is a valid answer.

    dot: d = -u.v, so u = [1, 2]: d(u, u) = -5 -> loss 12.5, while v = [2, 0.5]: d = -3 -> loss 4.5; the
    loss then pulls duplicates towards orthogonal (u.v = 0) instead of together.
    """
    u = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[2.0, 0.5]], dtype=torch.float64)
    same = torch.tensor([1])
    try:
        at_u = loss_fn(u, u.clone(), same, margin=0.5, distance=name)
    except ConfigError:
        return
    apart = loss_fn(u, v, same, margin=0.5, distance=name)
    assert at_u.item() <= apart.item()


# ---------------------------------------------------------------------------------------------------------
# online contrastive
# ---------------------------------------------------------------------------------------------------------


def brute_hard_mask(d: list[float], labels: list[int]) -> list[bool]:
    pos = [x for x, y in zip(d, labels, strict=True) if y == 1]
    neg = [x for x, y in zip(d, labels, strict=True) if y == 0]
    if not pos or not neg:
        return [True] * len(d)
    return [(y == 1 and x > min(neg)) or (y == 0 and x < max(pos)) for x, y in zip(d, labels, strict=True)]


@pytest.mark.parametrize("seed", range(8))
def test_hard_pair_mask_matches_definition(seed):
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(10, generator=g, dtype=torch.float64)
    if seed % 2:  # quarter steps: exact ties between positives and negatives
        d = torch.randint(0, 4, (10,), generator=g).double() / 4
    labels = rand_labels(10, 2, seed=seed + 100)
    got = hard_pair_mask(d, labels)
    assert got.dtype == torch.bool
    assert got.tolist() == brute_hard_mask(d.tolist(), labels.tolist())


def test_hard_pair_mask_hand_example():
    # positives at 0.1, 0.6; negatives at 0.4, 0.9
    # closest negative 0.4: positive 0.6 is hard, 0.1 is not; farthest positive 0.6: negative 0.4 is hard
    d = torch.tensor([0.1, 0.6, 0.4, 0.9])
    labels = torch.tensor([1, 1, 0, 0])
    assert hard_pair_mask(d, labels).tolist() == [False, True, True, False]
    # ties are not hard: a positive exactly as far as the closest negative (and vice versa) is kept out
    d = torch.tensor([0.1, 0.4, 0.4, 0.9])
    assert hard_pair_mask(d, labels).tolist() == [False, False, False, False]


@pytest.mark.parametrize("name", ["cosine", "euclidean", "manhattan"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_online_contrastive_is_contrastive_over_hard_subset(name, seed):
    u, v = rand(10, 4, seed=seed), rand(10, 4, seed=seed + 10)
    labels = rand_labels(10, 2, seed=seed)
    margin = 0.8 if name == "cosine" else 4.0
    d = [py_distance(name, a, b) for a, b in zip(u.tolist(), v.tolist(), strict=True)]
    hard = torch.tensor(brute_hard_mask(d, labels.tolist()))
    assert hard.any()
    expected = brute_contrastive(u[hard], v[hard], labels[hard], margin, name)
    got = online_contrastive_loss(u, v, labels, margin=margin, distance=name)
    assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("kind", [0, 1])
def test_online_contrastive_with_one_kind_of_pair_is_plain_contrastive(kind):
    u, v = rand(6, 3, seed=20), rand(6, 3, seed=21)
    labels = torch.full((6,), kind)
    expected = brute_contrastive(u, v, labels, 3.0, "euclidean")
    assert expected > 0
    got = online_contrastive_loss(u, v, labels, margin=3.0, distance="euclidean")
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_online_contrastive_zero_when_no_pair_is_hard():
    # positives at distance 0.1 and 0.2, negatives at 1.0 and 2.0: every positive is closer than every
    # negative, so no pair is hard (although the negatives sit inside the margin 3 and plain contrastive > 0).
    u = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    v = torch.tensor(
        [[0.1, 0.0], [0.0, 0.2], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64, requires_grad=True
    )
    labels = torch.tensor([1, 1, 0, 0])
    d = torch.tensor([0.1, 0.2, 1.0, 2.0], dtype=torch.float64)
    assert not hard_pair_mask(d, labels).any()
    assert contrastive_loss(u, v, labels, margin=3.0, distance="euclidean").item() > 0
    loss = online_contrastive_loss(u, v, labels, margin=3.0, distance="euclidean")
    assert loss.item() == 0.0
    assert loss.requires_grad
    check_finite_backward(loss, u, v)
    assert u.grad.abs().max().item() == 0.0


def test_contrastive_params_check_distance_and_margin():
    assert ContrastiveParams() == ContrastiveParams(0.5, "cosine")
    with pytest.raises(ConfigError) as info:
        ContrastiveParams(distance="dot")
    assert info.value.key == "distance"
    assert str(info.value).startswith(
        "contrastive losses need a distance that is >= 0 and 0 at u == v; got 'dot'"
    )
    with pytest.raises(ConfigError) as info:
        ContrastiveParams(margin=-0.1)
    assert (info.value.key, str(info.value)) == ("margin", "margin must be >= 0, got -0.1")
