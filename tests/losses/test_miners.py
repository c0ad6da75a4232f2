"""Miners against brute-force Python loops over every (anchor, positive, negative) of the batch."""

from __future__ import annotations

import pytest
import torch

from sbert_siamese.distances import distance_matrix
from sbert_siamese.losses.miners import batch_all_triplets, batch_hard_triplets, batch_semi_hard_triplets

# ---------------------------------------------------------------------------------------------------------
# batches: (distance matrix, labels); some with real distances, some with integer distances full of ties
# ---------------------------------------------------------------------------------------------------------


def real_batch(labels: list[int], seed: int, distance: str = "euclidean"):
    embeddings = torch.randn(
        len(labels), 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return distance_matrix(distance, embeddings), torch.tensor(labels)


def tied_batch(labels: list[int], seed: int):
    # Symmetric integer distances in {1, 2, 3} with a zero diagonal: many exact ties for max / min.
    g = torch.Generator().manual_seed(seed)
    b = len(labels)
    upper = torch.randint(1, 4, (b, b), generator=g).double().triu(1)
    return upper + upper.T, torch.tensor(labels)


def random_labels(b: int, classes: int, seed: int) -> list[int]:
    return torch.randint(0, classes, (b,), generator=torch.Generator().manual_seed(seed)).tolist()


LABELS = {
    "random-a": random_labels(8, 3, seed=0),
    "random-b": random_labels(10, 4, seed=1),
    "random-c": random_labels(12, 5, seed=2),
    "singleton-class": [0, 0, 1, 1, 1, 2, 3, 3],  # class 2 has a single item
    "two-singletons": [5, 7, 7, 9, 7, 5, 2],  # classes 9 and 2 have one item each
    "pk-3x2": [0, 0, 1, 1, 2, 2],
    "single-class": [4, 4, 4, 4, 4],
    "all-distinct": [0, 1, 2, 3, 4, 5],
}


def batches() -> list:
    params = []
    for name, labels in LABELS.items():
        for seed in (0, 1, 2):
            params.append(pytest.param(*real_batch(labels, seed), id=f"{name}-real-{seed}"))
            params.append(pytest.param(*tied_batch(labels, seed), id=f"{name}-tied-{seed}"))
        params.append(pytest.param(*real_batch(labels, 3, distance="cosine"), id=f"{name}-cosine"))
    return params


# ---------------------------------------------------------------------------------------------------------
# brute force, straight from the docstrings
# ---------------------------------------------------------------------------------------------------------


def brute_all(labels: list[int]) -> set[tuple[int, int, int]]:
    """Every (a, p, n) with label[a] == label[p], a != p, label[a] != label[n]."""
    b = len(labels)
    return {
        (a, p, n)
        for a in range(b)
        for p in range(b)
        for n in range(b)
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]
    }


def positives_of(a: int, labels: list[int]) -> list[int]:
    return [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]


def negatives_of(a: int, labels: list[int]) -> list[int]:
    return [n for n in range(len(labels)) if labels[n] != labels[a]]


def semi_hard_candidates(d: list[list[float]], labels: list[int], a: int, p: int, margin: float) -> list[int]:
    return [n for n in negatives_of(a, labels) if d[a][p] < d[a][n] < d[a][p] + margin]


def as_triplets(result) -> list[tuple[int, int, int]]:
    a, p, n = result
    assert a.dtype == p.dtype == n.dtype == torch.long
    assert a.shape == p.shape == n.shape and a.dim() == 1
    return list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))


def assert_valid(triplets, labels: list[int]) -> None:
    for a, p, n in triplets:
        assert a != p, f"anchor {a} is its own positive"
        assert labels[a] == labels[p], f"positive {p} has another label than anchor {a}"
        assert labels[a] != labels[n], f"negative {n} has the label of anchor {a}"


# ---------------------------------------------------------------------------------------------------------
# batch all
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d,labels", batches())
def test_batch_all_equals_brute_force(d, labels):
    triplets = as_triplets(batch_all_triplets(d, labels))
    assert len(triplets) == len(set(triplets)), "duplicate triplets"
    assert set(triplets) == brute_all(labels.tolist())
    assert_valid(triplets, labels.tolist())


def test_batch_all_hand_counted():
    # labels [0, 0, 1]: anchors 0 and 1 (class 0) each have one positive and one negative (item 2);
    # item 2 has no positive -> exactly (0, 1, 2) and (1, 0, 2).
    d, labels = real_batch([0, 0, 1], seed=0)
    assert set(as_triplets(batch_all_triplets(d, labels))) == {(0, 1, 2), (1, 0, 2)}
    # P=2 classes x K=2: each of 4 anchors has 1 positive and 2 negatives -> 8 triplets
    d, labels = real_batch([0, 0, 1, 1], seed=0)
    assert len(as_triplets(batch_all_triplets(d, labels))) == 8


# ---------------------------------------------------------------------------------------------------------
# batch hard
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d,labels", batches())
def test_batch_hard_equals_brute_force(d, labels):
    lab, dist = labels.tolist(), d.tolist()
    triplets = as_triplets(batch_hard_triplets(d, labels))
    assert_valid(triplets, lab)
    expected_anchors = [a for a in range(len(lab)) if positives_of(a, lab) and negatives_of(a, lab)]
    assert sorted(a for a, _, _ in triplets) == expected_anchors  # one triplet per eligible anchor
    for a, p, n in triplets:
        # ties: compare the chosen distance with the extreme, not the index
        assert dist[a][p] == max(dist[a][q] for q in positives_of(a, lab))
        assert dist[a][n] == min(dist[a][m] for m in negatives_of(a, lab))


def test_batch_hard_hand_example():
    # points on a line: 0.0 (class 0), 1.0 (class 0), 3.0 (class 0), 2.5 (class 1), 10.0 (class 1)
    # anchor 0: positives at 1.0 (d=1) and 3.0 (d=3) -> farthest 2; negatives 2.5 (d=2.5), 10 -> closest 3
    # anchor 1: positives d=1 (item 0), d=2 (item 2) -> 2; negatives d=1.5 (3), 9 (4) -> 3
    # anchor 2: positives d=3 (item 0), d=2 (item 1) -> 0; negatives d=0.5 (3), 7 (4) -> 3
    # anchor 3: positive item 4 (d=7.5) -> 4; negatives d=2.5, 1.5, 0.5 -> item 2
    # anchor 4: positive item 3 -> 3; negatives d=10, 9, 7 -> item 2
    x = torch.tensor([[0.0], [1.0], [3.0], [2.5], [10.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1])
    triplets = as_triplets(batch_hard_triplets(distance_matrix("euclidean", x), labels))
    assert sorted(triplets) == [(0, 2, 3), (1, 2, 3), (2, 0, 3), (3, 4, 2), (4, 3, 2)]


# ---------------------------------------------------------------------------------------------------------
# batch semi-hard
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.5, 1.5])
@pytest.mark.parametrize("d,labels", batches())
def test_batch_semi_hard_equals_brute_force(d, labels, margin):
    lab, dist = labels.tolist(), d.tolist()
    triplets = as_triplets(batch_semi_hard_triplets(d, labels, margin))
    assert_valid(triplets, lab)
    # one triplet per positive pair (a, p) that has at least one semi-hard negative
    expected_pairs = {
        (a, p)
        for a in range(len(lab))
        for p in positives_of(a, lab)
        if semi_hard_candidates(dist, lab, a, p, margin)
    }
    pairs = [(a, p) for a, p, _ in triplets]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == expected_pairs
    for a, p, n in triplets:
        candidates = semi_hard_candidates(dist, lab, a, p, margin)
        assert n in candidates
        assert dist[a][n] == min(dist[a][m] for m in candidates)


def test_batch_semi_hard_hand_example():
    # same line as above; margin 1.
    # (0, 1): d_ap=1, negatives d=2.5, 10 -> need 1 < d < 2: none
    # (0, 2): d_ap=3, negatives 2.5 (not > 3), 10 (not < 4): none
    # (1, 0): d_ap=1, negatives d=1.5 (item 3) in (1, 2) -> (1, 0, 3)
    # (1, 2): d_ap=2, negatives 1.5 (not > 2), 9: none
    # (2, 0): d_ap=3, negatives 0.5, 7: none;  (2, 1): d_ap=2, negatives 0.5, 7: none
    # (3, 4): d_ap=7.5, negatives d=2.5, 1.5, 0.5: none
    # (4, 3): d_ap=7.5, negatives d=10, 9, 7 -> 9 in (7.5, 8.5)? no; none
    x = torch.tensor([[0.0], [1.0], [3.0], [2.5], [10.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1])
    d = distance_matrix("euclidean", x)
    assert as_triplets(batch_semi_hard_triplets(d, labels, margin=1.0)) == [(1, 0, 3)]
    # margin 2: (0, 1) gains item 3 (1 < 2.5 < 3); (4, 3) gains item 1 (7.5 < 9 < 9.5; 10 is too far)
    got = sorted(as_triplets(batch_semi_hard_triplets(d, labels, margin=2.0)))
    assert got == [(0, 1, 3), (1, 0, 3), (4, 3, 1)]


def test_batch_semi_hard_margin_zero_yields_nothing():
    d, labels = real_batch(LABELS["random-b"], seed=0)
    a, p, n = batch_semi_hard_triplets(d, labels, margin=0.0)  # d_ap < d_an < d_ap is empty
    assert a.numel() == p.numel() == n.numel() == 0


# ---------------------------------------------------------------------------------------------------------
# batches without any valid triplet
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [LABELS["single-class"], LABELS["all-distinct"], [3]], ids=str)
@pytest.mark.parametrize("miner", ["all", "hard", "semi_hard"])
def test_no_triplets_without_both_a_positive_and_a_negative(labels, miner):
    d, lab = real_batch(labels, seed=0)
    if miner == "all":
        result = batch_all_triplets(d, lab)
    elif miner == "hard":
        result = batch_hard_triplets(d, lab)
    else:
        result = batch_semi_hard_triplets(d, lab, margin=100.0)  # any negative would qualify
    assert all(t.numel() == 0 and t.dtype == torch.long for t in result)
