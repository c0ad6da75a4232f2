"""Triplet losses, explicit and batch-mined: hand-computed values, brute-force loops over every triplet of the
batch (mining done from the definitions), gradcheck in float64, finite gradients with duplicate embeddings,
batches without a valid triplet, negative margins."""

from __future__ import annotations

import pytest
import torch

from sbert_siamese.errors import ConfigError
from sbert_siamese.losses.triplet import (
    TripletParams,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
    triplet_loss,
)

from .helpers import ALL, check_finite_backward, py_distance, rand, rand_labels, relu

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


def test_triplet_params_check_the_margin():
    assert TripletParams() == TripletParams(0.5, "cosine")
    assert TripletParams(0.0, "dot").margin == 0.0  # any distance; margin 0 is allowed
    with pytest.raises(ConfigError) as info:
        TripletParams(margin=-1.0)
    assert (info.value.key, str(info.value)) == ("margin", "margin must be >= 0, got -1.0")
