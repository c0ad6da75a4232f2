"""In-batch negatives: hand-computed values, a brute-force cross-entropy loop over every candidate (hard
negatives, both directions, duplicate-text masking, additive margin), gradcheck in float64, finite gradients
when anchor equals positive."""

from __future__ import annotations

import math

import pytest
import torch

from sbert_siamese.errors import ConfigError
from sbert_siamese.losses.in_batch import InBatchParams, in_batch_negatives_loss

from .helpers import check_finite_backward, py_similarity, rand

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


@pytest.mark.parametrize("key", ["scale", "additive_margin"])
def test_in_batch_params_check_scale_and_margin(key):
    assert InBatchParams() == InBatchParams(20.0, "cosine", False, 0.0)
    assert InBatchParams(distance="dot", **{key: 0.0}).distance == "dot"  # every distance works here
    with pytest.raises(ConfigError) as info:
        InBatchParams(**{key: -0.5})
    assert (info.value.key, str(info.value)) == (key, f"{key} must be >= 0, got -0.5")
