"""Triplet accuracy against hand-computed values and brute force on random data."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese.evaluation.triplet import TripletEvaluator
from tests.evaluation.fakes import FakeEncoder


def test_triplet_hand_computed_ties_count_as_wrong():
    a = np.array([[1.0, 0.0]] * 4)
    p = np.array([[0.0, 1.0], [1.0, 0.1], [-1.0, 0.0], [10.0, 0.0]])
    n = np.array([[0.0, -1.0], [5.0, 5.0], [1.0, 0.0], [0.5, 0.5]])
    # 1: p and n mirror each other: every measure ties -> wrong under all four.
    # 2: p is near a; n = (5, 5) has the larger dot (5 > 1): right except dot.
    # 3: p opposite, n = a: wrong everywhere.
    # 4: p = 10 a: cosine 1 > 0.71, dot 10 > 0.5 right; euclidean 9 > 0.71, manhattan 9 > 1 wrong.
    evaluator = TripletEvaluator(["a"] * 4, ["p"] * 4, ["n"] * 4, name="tri")
    m = evaluator.compute(a, p, n)
    assert m == {
        "tri_accuracy_cosine": 0.5,
        "tri_accuracy_euclidean": 0.25,
        "tri_accuracy_manhattan": 0.25,
        "tri_accuracy_dot": 0.25,
    }
    assert evaluator.primary_metric == "tri_accuracy_cosine"
    only = TripletEvaluator(["a"] * 4, ["p"] * 4, ["n"] * 4, name="tri", distances=("manhattan",))
    assert only.compute(a, p, n) == {"tri_accuracy_manhattan": 0.25}
    assert only.primary_metric == "tri_accuracy_manhattan"


def test_triplet_matches_brute_force_on_random_data():
    rng = np.random.default_rng(7)
    a, p, n = (rng.normal(size=(60, 3)) for _ in range(3))  # continuous: no ties (the hand test has them)
    m = TripletEvaluator(["x"] * 60, ["y"] * 60, ["z"] * 60).compute(a, p, n)
    expected = {"cosine": 0, "euclidean": 0, "manhattan": 0, "dot": 0}
    for u, v, w in zip(a, p, n, strict=True):
        expected["dot"] += float(u @ v > u @ w)
        cos = lambda x, y: x @ y / (np.linalg.norm(x) * np.linalg.norm(y))  # noqa: E731
        expected["cosine"] += float(cos(u, v) > cos(u, w))
        expected["euclidean"] += float(np.linalg.norm(u - v) < np.linalg.norm(u - w))
        expected["manhattan"] += float(np.abs(u - v).sum() < np.abs(u - w).sum())
    for name, count in expected.items():
        assert m[f"triplets_accuracy_{name}"] == pytest.approx(count / 60)


def test_triplet_call_encodes_positives_and_negatives_once():
    vectors = {"anchor": [1.0, 0.0], "near": [0.9, 0.1], "far": [0.0, 1.0]}
    encoder = FakeEncoder(vectors, untied=True)
    evaluator = TripletEvaluator(["anchor", "anchor"], ["near", "far"], ["far", "near"], distances=["cosine"])
    assert evaluator(encoder) == {"triplets_accuracy_cosine": 0.5}
    assert encoder.calls == [(["anchor", "anchor"], "a"), (["near", "far"], "b")]


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((["a"], ["b"], []), {}, "same length"),
        (([], [], []), {}, "no triplets"),
        ((["a"], ["b"], ["c"]), {"distances": ("cosine", "hamming")}, "distances must be among"),
        ((["a"], ["b"], ["c"]), {"distances": ()}, "distances must be among"),
    ],
)
def test_triplet_input_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TripletEvaluator(*args, **kwargs)
