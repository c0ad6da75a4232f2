"""Pair, triplet, in-batch and head objectives: hand-computed values, brute-force loops over every pair /
triplet (mined ones included), gradcheck in float64, finite gradients at u == v, margin edge cases."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.func import functional_call

from sbert_siamese.errors import ConfigError
from sbert_siamese.losses.contrastive import (
    CONTRASTIVE_DISTANCES,
    contrastive_loss,
    hard_pair_mask,
    online_contrastive_loss,
)
from sbert_siamese.losses.in_batch import in_batch_negatives_loss
from sbert_siamese.losses.triplet import (
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
    triplet_loss,
)
from sbert_siamese.models.heads import SoftmaxHead, WeightedL1Head, softmax_loss, verification_loss

ALL = ["cosine", "dot", "euclidean", "squared_euclidean", "manhattan", "rbf"]
NON_NEGATIVE = [name for name in ALL if name != "dot"]

# ---------------------------------------------------------------------------------------------------------
# plain-Python helpers
# ---------------------------------------------------------------------------------------------------------


def py_distance(name: str, u: list[float], v: list[float]) -> float:
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    sq = sum((x - y) ** 2 for x, y in zip(u, v, strict=True))
    return {
        "cosine": lambda: 1.0 - dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))),
        "dot": lambda: -dot,
        "euclidean": lambda: math.sqrt(sq),
        "squared_euclidean": lambda: sq,
        "manhattan": lambda: sum(abs(x - y) for x, y in zip(u, v, strict=True)),
        "rbf": lambda: 1.0 - math.exp(-sq),
    }[name]()


def py_similarity(name: str, u: list[float], v: list[float]) -> float:
    if name == "cosine":
        return 1.0 - py_distance(name, u, v)
    return -py_distance(name, u, v)  # dot: -(-u.v) = u.v


def rand(*shape: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rand_labels(b: int, high: int, seed: int) -> torch.Tensor:
    return torch.randint(0, high, (b,), generator=torch.Generator().manual_seed(seed))


def relu(x: float) -> float:
    return max(x, 0.0)


def check_finite_backward(loss: torch.Tensor, *leaves: torch.Tensor) -> None:
    assert torch.isfinite(loss)
    loss.backward()
    for leaf in leaves:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


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


# =========================================================================================================
# triplet
# =========================================================================================================


@pytest.mark.parametrize("name", ALL)
def test_triplet_loss_matches_loop(name):
    a, p, n = rand(7, 4, seed=30), rand(7, 4, seed=31), rand(7, 4, seed=32)
    margin = 0.3
    expected = (
        sum(
            relu(py_distance(name, ai, pi) - py_distance(name, ai, ni) + margin)
            for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True)
        )
        / 7
    )
    assert triplet_loss(a, p, n, margin=margin, distance=name).item() == pytest.approx(expected, rel=1e-10)


def test_triplet_loss_hand_computed():
    # anchor [0, 0]; euclidean, margin 1
    # triplet 0: p=[1, 0] (d=1), n=[3, 4] (d=5) -> max(1 - 5 + 1, 0) = 0
    # triplet 1: p=[0, 2] (d=2), n=[1, 0] (d=1) -> 2 - 1 + 1 = 2
    # mean = 1
    a = torch.zeros(2, 2, dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    n = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    assert triplet_loss(a, p, n, margin=1.0, distance="euclidean").item() == pytest.approx(1.0, rel=1e-12)


def brute_mined_losses(emb, labels, margin: float, name: str) -> dict[str, float]:
    """Mine every way with Python loops from the definitions, then apply the triplet loss."""
    x, lab = emb.tolist(), labels.tolist()
    b = len(lab)
    d = [[py_distance(name, x[i], x[j]) for j in range(b)] for i in range(b)]
    hard, semi, every = [], [], []
    for a in range(b):
        pos = [p for p in range(b) if p != a and lab[p] == lab[a]]
        neg = [n for n in range(b) if lab[n] != lab[a]]
        if pos and neg:
            hard.append(relu(max(d[a][p] for p in pos) - min(d[a][n] for n in neg) + margin))
        for p in pos:
            for n in neg:
                every.append(relu(d[a][p] - d[a][n] + margin))
            semi_negs = [d[a][n] for n in neg if d[a][p] < d[a][n] < d[a][p] + margin]
            if semi_negs:
                semi.append(relu(d[a][p] - min(semi_negs) + margin))
    active = [x for x in every if x > 0]
    return {
        "hard": sum(hard) / len(hard) if hard else 0.0,
        "semi_hard": sum(semi) / len(semi) if semi else 0.0,
        "all": sum(active) / len(active) if active else 0.0,
        "counts": (len(hard), len(semi), len(every), len(active)),
    }


MINED = {
    "hard": batch_hard_triplet_loss,
    "semi_hard": batch_semi_hard_triplet_loss,
    "all": batch_all_triplet_loss,
}


@pytest.mark.parametrize("kind", list(MINED))
@pytest.mark.parametrize("name", ["euclidean", "cosine", "squared_euclidean", "manhattan"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mined_triplet_losses_match_brute_force(kind, name, seed):
    emb = rand(12, 4, seed=seed)
    labels = rand_labels(12, 4, seed=seed + 7)
    margin = 0.3 if name == "cosine" else 1.0
    expected = brute_mined_losses(emb, labels, margin, name)
    n_hard, n_semi, n_all, n_active = expected["counts"]
    assert n_hard > 0 and n_all > 0  # the batch really has triplets
    got = MINED[kind](emb, labels, margin=margin, distance=name)
    assert got.item() == pytest.approx(expected[kind], rel=1e-9, abs=1e-12)


def test_batch_all_averages_over_active_triplets_only_hand_computed():
    # points on a line, euclidean, margin 1: labels [0, 0, 1]; x = 0, 1, 5
    # triplets (0, 1, 2): d_ap = 1, d_an = 5 -> max(1 - 5 + 1, 0) = 0  (inactive)
    #          (1, 0, 2): d_ap = 1, d_an = 4 -> 0                      (inactive)
    # with x = 0, 1, 1.5:
    #          (0, 1, 2): 1 - 1.5 + 1 = 0.5;  (1, 0, 2): 1 - 0.5 + 1 = 1.5  -> mean over 2 active = 1.0
    labels = torch.tensor([0, 0, 1])
    far = torch.tensor([[0.0], [1.0], [5.0]], dtype=torch.float64)
    assert batch_all_triplet_loss(far, labels, margin=1.0).item() == 0.0
    near = torch.tensor([[0.0], [1.0], [1.5]], dtype=torch.float64)
    assert batch_all_triplet_loss(near, labels, margin=1.0).item() == pytest.approx(1.0, rel=1e-9)
    # with x = 0, 1, 1.5, 10 (4th is class 1, far): adds (0,1,3), (1,0,3) inactive -> still 1.0, not 2/4
    more = torch.tensor([[0.0], [1.0], [1.5], [10.0]], dtype=torch.float64)
    labels4 = torch.tensor([0, 0, 1, 1])
    # class-1 anchors: (2, 3, n): d_ap = 8.5; n=0: 8.5 - 1.5 + 1 = 8, n=1: 8.5 - 0.5 + 1 = 9
    #                  (3, 2, n): d_ap = 8.5; n=0: 8.5 - 10 + 1 = -0.5 -> 0, n=1: 8.5 - 9 + 1 = 0.5
    # active: 0.5, 1.5, 8, 9, 0.5 -> 19.5 / 5 = 3.9
    assert batch_all_triplet_loss(more, labels4, margin=1.0).item() == pytest.approx(3.9, rel=1e-9)


@pytest.mark.parametrize("kind", list(MINED))
@pytest.mark.parametrize("labels", [[2, 2, 2, 2], [0, 1, 2, 3], [7]], ids=str)
def test_mined_losses_zero_and_backward_without_valid_triplets(kind, labels):
    emb = rand(len(labels), 3, seed=40).requires_grad_()
    loss = MINED[kind](emb, torch.tensor(labels), margin=0.5)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    assert loss.requires_grad
    check_finite_backward(loss, emb)
    assert emb.grad.abs().max().item() == 0.0


def test_semi_hard_zero_when_no_negative_is_semi_hard():
    # x = 0, 1 (class 0), 10 (class 1): d_ap = 1, negatives at 10 / 9, never within (1, 1.5)
    emb = torch.tensor([[0.0], [1.0], [10.0]], dtype=torch.float64, requires_grad=True)
    loss = batch_semi_hard_triplet_loss(emb, torch.tensor([0, 0, 1]), margin=0.5)
    assert loss.item() == 0.0
    check_finite_backward(loss, emb)


@pytest.mark.parametrize("fn", [triplet_loss, *MINED.values()])
def test_triplet_negative_margin_is_config_error(fn):
    x = rand(4, 2, seed=0)
    args = (x, x, x) if fn is triplet_loss else (x, torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ConfigError, match="margin"):
        fn(*args, margin=-1.0)


@pytest.mark.parametrize("name", ["euclidean", "cosine", "manhattan"])
def test_triplet_loss_gradcheck(name):
    a, p, n = (rand(5, 3, seed=s).requires_grad_() for s in (50, 51, 52))
    assert torch.autograd.gradcheck(
        lambda x, y, z: triplet_loss(x, y, z, margin=5.0, distance=name), (a, p, n)
    )


@pytest.mark.parametrize("name", ["euclidean", "cosine"])
def test_batch_hard_triplet_loss_gradcheck(name):
    # generic random points: no ties in the farthest-positive / closest-negative choice; margin large
    # enough that every hinge is active (no kink within the finite-difference step).
    emb = rand(8, 3, seed=53).requires_grad_()
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    assert torch.autograd.gradcheck(
        lambda x: batch_hard_triplet_loss(x, labels, margin=5.0, distance=name), (emb,)
    )


def test_batch_all_triplet_loss_gradcheck():
    emb = rand(6, 3, seed=54).requires_grad_()
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda x: batch_all_triplet_loss(x, labels, margin=10.0), (emb,))


@pytest.mark.parametrize("kind", list(MINED))
def test_mined_losses_finite_gradients_with_duplicate_embeddings(kind):
    # items 0 and 1 are identical (u == v inside the distance matrix) and are each other's positive
    base = rand(6, 3, seed=55)
    base[1] = base[0]
    emb = base.clone().requires_grad_()
    check_finite_backward(MINED[kind](emb, torch.tensor([0, 0, 1, 1, 2, 2]), margin=2.0), emb)


# =========================================================================================================
# in-batch negatives
# =========================================================================================================


def py_log_softmax_ce(scores: list[float], target: int, skip: set[int]) -> float:
    kept = [s for j, s in enumerate(scores) if j not in skip]
    top = max(kept)
    return -(scores[target] - top - math.log(sum(math.exp(s - top) for s in kept)))


def brute_in_batch(
    anchor, positive, negative=None, scale=20.0, name="cosine", symmetric=False, ids=None, margin=0.0
):
    a, p = anchor.tolist(), positive.tolist()
    cands = p + (negative.tolist() if negative is not None else [])
    b = len(a)
    pid = ids.tolist() if ids is not None else list(range(b))

    def skip(i: int) -> set[int]:  # another positive column holding the same text as row i's own positive
        return {j for j in range(b) if j != i and pid[j] == pid[i]}

    forward = (
        sum(
            py_log_softmax_ce(
                [
                    scale * (py_similarity(name, a[i], c) - (margin if j == i else 0))
                    for j, c in enumerate(cands)
                ],
                i,
                skip(i),
            )
            for i in range(b)
        )
        / b
    )
    if not symmetric:
        return forward
    backward = (
        sum(
            py_log_softmax_ce(
                [scale * (py_similarity(name, p[i], x) - (margin if j == i else 0)) for j, x in enumerate(a)],
                i,
                skip(i),
            )
            for i in range(b)
        )
        / b
    )
    return (forward + backward) / 2


def test_in_batch_hand_computed():
    # anchors [1, 0], [0, 1]; positives [1, 0], [1, 1]; cosine, scale 1
    # row 0: cos to positives = [1, 1/sqrt2] -> -log(e / (e + e^(1/sqrt2)))
    # row 1: cos to positives = [0, 1/sqrt2] -> -log(e^(1/sqrt2) / (1 + e^(1/sqrt2)))
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    r = 1 / math.sqrt(2)
    row0 = -math.log(math.e / (math.e + math.exp(r)))
    row1 = -math.log(math.exp(r) / (1 + math.exp(r)))
    got = in_batch_negatives_loss(a, p, scale=1.0, distance="cosine")
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-12)


@pytest.mark.parametrize("scale", [1.0, 20.0])
@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
@pytest.mark.parametrize("seed", [0, 1])
def test_in_batch_matches_loop(name, scale, seed):
    a, p = rand(6, 4, seed=seed), rand(6, 4, seed=seed + 1)
    expected = brute_in_batch(a, p, scale=scale, name=name)
    got = in_batch_negatives_loss(a, p, scale=scale, distance=name)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean"])
def test_in_batch_with_hard_negatives_matches_loop(name):
    a, p, n = rand(5, 4, seed=60), rand(5, 4, seed=61), rand(5, 4, seed=62)
    scale = 20.0 if name == "cosine" else 1.0
    expected = brute_in_batch(a, p, n, scale=scale, name=name)
    got = in_batch_negatives_loss(a, p, n, scale=scale, distance=name)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    # hard negatives only add candidates: the loss can only grow
    assert got.item() > in_batch_negatives_loss(a, p, scale=scale, distance=name).item()


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("with_negatives", [False, True])
def test_in_batch_additive_margin_matches_loop(with_negatives, symmetric):
    a, p, n = rand(5, 4, seed=70), rand(5, 4, seed=71), rand(5, 4, seed=72)
    neg = n if with_negatives else None
    ids = torch.tensor([1, 2, 3, 2, 5])  # a duplicate positive text is masked with or without the margin
    p[3] = p[1]
    expected = brute_in_batch(a, p, neg, 20.0, "cosine", symmetric, ids, margin=0.3)
    got = in_batch_negatives_loss(a, p, neg, 20.0, "cosine", symmetric, ids, additive_margin=0.3)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    # the margin handicaps the positive: the loss grows, and margin 0 is the plain loss
    plain = in_batch_negatives_loss(a, p, neg, 20.0, "cosine", symmetric, ids)
    assert got.item() > plain.item()
    assert in_batch_negatives_loss(a, p, neg, 20.0, "cosine", symmetric, ids, 0.0).item() == plain.item()


def test_in_batch_additive_margin_hand_computed():
    # anchors [1, 0], [0, 1]; positives [1, 0], [1, 1]; cosine, scale 1, margin 0.5
    # row 0: [1 - 0.5, 1/sqrt2] -> -log(e^0.5 / (e^0.5 + e^(1/sqrt2)))
    # row 1: [0, 1/sqrt2 - 0.5] -> -log(e^(1/sqrt2 - 0.5) / (1 + e^(1/sqrt2 - 0.5)))
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    r = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(0.5) / (math.exp(0.5) + math.exp(r)))
    row1 = -math.log(math.exp(r - 0.5) / (1 + math.exp(r - 0.5)))
    got = in_batch_negatives_loss(a, p, scale=1.0, distance="cosine", additive_margin=0.5)
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-12)


@pytest.mark.parametrize("with_negatives", [False, True])
@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean"])
def test_in_batch_symmetric_is_mean_of_both_directions(name, with_negatives):
    a, p, n = rand(5, 4, seed=63), rand(5, 4, seed=64), rand(5, 4, seed=65)
    neg = n if with_negatives else None
    scale = 20.0 if name == "cosine" else 1.0
    expected = brute_in_batch(a, p, neg, scale=scale, name=name, symmetric=True)
    got = in_batch_negatives_loss(a, p, neg, scale=scale, distance=name, symmetric=True)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    if not with_negatives:
        # the backward direction alone is the forward loss with the roles swapped
        back = in_batch_negatives_loss(p, a, scale=scale, distance=name)
        forward = in_batch_negatives_loss(a, p, scale=scale, distance=name)
        assert got.item() == pytest.approx((forward.item() + back.item()) / 2, rel=1e-12)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("with_negatives", [False, True])
@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean"])
def test_in_batch_positive_ids_mask_duplicate_texts(name, with_negatives, symmetric):
    # positives 1 and 3 are the same text (same id, same embedding); so are 0 and 4
    a, p, n = rand(6, 4, seed=66), rand(6, 4, seed=67), rand(6, 4, seed=68)
    p[3] = p[1]
    p[4] = p[0]
    ids = torch.tensor([10, 11, 12, 11, 10, 13])
    neg = n if with_negatives else None
    scale = 20.0 if name == "cosine" else 1.0
    a.requires_grad_()
    loss = in_batch_negatives_loss(
        a, p, neg, scale=scale, distance=name, symmetric=symmetric, positive_ids=ids
    )
    expected = brute_in_batch(a.detach(), p, neg, scale=scale, name=name, symmetric=symmetric, ids=ids)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    check_finite_backward(loss, a)
    # without the ids, rows 1 and 3 see their own text as a negative: a different (larger) loss
    unmasked = in_batch_negatives_loss(a.detach(), p, neg, scale=scale, distance=name, symmetric=symmetric)
    assert unmasked.item() > loss.item()


def test_in_batch_positive_ids_all_distinct_change_nothing():
    a, p = rand(5, 3, seed=69), rand(5, 3, seed=70)
    plain = in_batch_negatives_loss(a, p)
    masked = in_batch_negatives_loss(a, p, positive_ids=torch.arange(5))
    assert masked.item() == plain.item()


def test_in_batch_duplicate_text_row_loss_hand_computed():
    # two anchors whose positives are the same text: without masking each row is a 50/50 guess
    # (loss log 2 at any scale); with positive_ids the duplicate column is gone and the loss is 0.
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    assert in_batch_negatives_loss(a, p).item() == pytest.approx(math.log(2), rel=1e-12)
    masked = in_batch_negatives_loss(a, p, positive_ids=torch.tensor([7, 7]))
    assert masked.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean"])
def test_in_batch_finite_gradients_when_anchor_equals_positive(name):
    base = rand(4, 3, seed=71)
    a, p = base.clone().requires_grad_(), base.clone().requires_grad_()
    check_finite_backward(in_batch_negatives_loss(a, p, distance=name, scale=1.0, symmetric=True), a, p)


@pytest.mark.parametrize("name", ["cosine", "euclidean"])
def test_in_batch_gradcheck(name):
    a, p, n = (rand(4, 3, seed=s).requires_grad_() for s in (72, 73, 74))
    assert torch.autograd.gradcheck(
        lambda x, y, z: in_batch_negatives_loss(x, y, z, scale=2.0, distance=name, symmetric=True), (a, p, n)
    )


# =========================================================================================================
# heads
# =========================================================================================================


def test_softmax_head_features_are_u_v_absdiff():
    u = torch.tensor([[1.0, -2.0]])
    v = torch.tensor([[3.0, 1.0]])
    head = SoftmaxHead(2, 3)
    # [u, v, |u - v|] = [1, -2, 3, 1, |1-3|, |-2-1|] = [1, -2, 3, 1, 2, 3]
    assert head.features(u, v).tolist() == [[1.0, -2.0, 3.0, 1.0, 2.0, 3.0]]
    # with u * v appended: [1*3, -2*1] = [3, -2]
    head = SoftmaxHead(2, 3, use_product=True)
    assert head.features(u, v).tolist() == [[1.0, -2.0, 3.0, 1.0, 2.0, 3.0, 3.0, -2.0]]
    assert head.classifier.in_features == 8


@pytest.mark.parametrize("use_product", [False, True])
def test_softmax_head_logits_equal_manual_linear_layer(use_product):
    torch.manual_seed(0)
    head = SoftmaxHead(4, 3, use_product=use_product).double()
    u, v = rand(5, 4, seed=80), rand(5, 4, seed=81)
    parts = [u, v, (u - v).abs()] + ([u * v] if use_product else [])
    features = torch.cat(parts, dim=1)
    w, b = head.classifier.weight.detach(), head.classifier.bias.detach()
    expected = [
        [sum(f * wk for f, wk in zip(row, w[k].tolist(), strict=True)) + b[k].item() for k in range(3)]
        for row in features.tolist()
    ]
    torch.testing.assert_close(
        head(u, v), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )


def test_softmax_head_rejects_fewer_than_two_labels():
    with pytest.raises(ValueError, match="num_labels"):
        SoftmaxHead(4, 1)


def test_softmax_loss_is_cross_entropy_by_hand():
    # logits [2, 0, -1], label 0: -log(e^2 / (e^2 + 1 + e^-1)); logits [0, 1], ... 3 classes
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    row0 = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
    row1 = -math.log(1 / (math.exp(0.5) + math.exp(1.5) + 1))
    assert softmax_loss(logits, labels).item() == pytest.approx((row0 + row1) / 2, rel=1e-12)
    # float labels are accepted as class indices
    assert softmax_loss(logits, labels.double()).item() == pytest.approx((row0 + row1) / 2, rel=1e-12)


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


def round_trip(head: torch.nn.Module, fresh: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    torch.save(head.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


@pytest.mark.parametrize(
    "make",
    [
        lambda: SoftmaxHead(4, 2),
        lambda: SoftmaxHead(4, 3, use_product=True),
        lambda: WeightedL1Head(4),
    ],
)
def test_heads_state_dict_round_trip(make):
    torch.manual_seed(1)
    head = make()
    if isinstance(head, WeightedL1Head):  # move off the constant initialisation so the test means something
        set_weighted_l1(head, [0.5, -2.0, 1.5, 0.1], 0.7)
    torch.manual_seed(2)
    fresh = make()
    u, v = rand(3, 4, seed=95, dtype=torch.float32), rand(3, 4, seed=96, dtype=torch.float32)
    assert not torch.equal(head(u, v), fresh(u, v))
    loaded = round_trip(head, fresh)
    assert torch.equal(loaded(u, v), head(u, v))
    assert loaded.config() == head.config()
