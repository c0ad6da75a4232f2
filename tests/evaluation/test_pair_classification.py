"""Pair-classification metrics at the best threshold, against scikit-learn and brute force."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sbert_siamese.evaluation.pair_classification import (
    PairClassificationEvaluator,
    best_threshold_metrics,
    threshold_sweep,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def brute_force(scores, labels):
    """Try "same if score >= t" for every candidate t; return the best accuracy, F1, MCC."""
    candidates = np.r_[np.unique(scores), scores.max() + 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "accuracy": max(sklearn_metrics.accuracy_score(labels, scores >= t) for t in candidates),
            "f1": max(sklearn_metrics.f1_score(labels, scores >= t, zero_division=0) for t in candidates),
            "mcc": max(sklearn_metrics.matthews_corrcoef(labels, scores >= t) for t in candidates),
        }


def test_hand_computed_example():
    # scores sorted: 0.9(1) 0.8(1) 0.6(0) 0.4(1) 0.1(0)
    scores = np.array([0.1, 0.9, 0.4, 0.8, 0.6])
    labels = np.array([0, 1, 1, 1, 0])
    m = best_threshold_metrics(scores, labels)
    # t between 0.8 and 0.6 -> predict {0.9, 0.8}: tp=2 fp=0 fn=1 tn=2 -> acc 4/5, F1 = 4/5
    # t between 0.4 and 0.1 -> predict 4: tp=3 fp=1 fn=0 tn=1 -> acc 4/5, F1 = 6/7 (best F1)
    assert m["f1"] == pytest.approx(6 / 7)
    assert m["f1_threshold"] == pytest.approx(0.25)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["accuracy_threshold"] == pytest.approx(0.7)  # the first of the tied best cuts
    # AP = sum (R_k - R_{k-1}) P_k = 1/3*1 + 1/3*1 + 0 + 1/3*3/4 = 11/12
    assert m["ap"] == pytest.approx(11 / 12)


@pytest.mark.parametrize("seed", range(40))
def test_matches_sklearn_and_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    scores = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # rounding makes ties
    labels = rng.integers(0, 2, size=n)
    labels[0] = 1
    m = best_threshold_metrics(scores, labels)
    assert m["ap"] == pytest.approx(sklearn_metrics.average_precision_score(labels, scores), abs=1e-12)
    best = brute_force(scores, labels)
    for key in ("accuracy", "f1", "mcc"):
        assert m[key] == pytest.approx(best[key], abs=1e-12), key
    # each reported threshold really gives its metric
    assert sklearn_metrics.f1_score(labels, scores >= m["f1_threshold"]) == pytest.approx(m["f1"])
    assert sklearn_metrics.accuracy_score(labels, scores >= m["accuracy_threshold"]) == pytest.approx(
        m["accuracy"]
    )


def test_sweep_counts_are_consistent():
    scores = np.array([3.0, 3.0, 2.0, 1.0])
    labels = np.array([1, 0, 1, 0])
    sweep = threshold_sweep(scores, labels)
    assert sweep["tp"].tolist() == [0, 1, 2, 2]  # the tied 3.0s enter together
    assert sweep["fp"].tolist() == [0, 1, 1, 2]
    assert (sweep["tp"] + sweep["fn"] == 2).all() and (sweep["fp"] + sweep["tn"] == 2).all()
    assert sweep["threshold"][1:3].tolist() == [2.5, 1.5]


class FixedEncoder:
    def __init__(self, vectors):
        self.vectors = vectors

    def encode(self, texts, batch_size=64, show_progress_bar=False):
        return np.stack([self.vectors[t] for t in texts])


def test_evaluator_keys_units_and_values():
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.9, 0.1]), "c": np.array([0.0, 1.0]),
               "d": np.array([-1.0, 0.2])}  # fmt: skip
    s1, s2, labels = ["a", "a", "c", "b"], ["b", "c", "d", "d"], [1, 0, 0, 0]
    ev = PairClassificationEvaluator(s1, s2, labels, name="qqp-test")
    metrics = ev(FixedEncoder(vectors))
    assert ev.primary_metric == "qqp-test_ap_cosine"
    for sim in ("cosine", "dot", "euclidean", "manhattan"):
        for key in (
            "accuracy",
            "accuracy_threshold",
            "f1",
            "f1_threshold",
            "precision",
            "recall",
            "mcc",
            "ap",
        ):
            assert f"qqp-test_{key}_{sim}" in metrics
        assert metrics[f"qqp-test_ap_{sim}"] == pytest.approx(1.0)  # the one duplicate is the closest pair
    # euclidean thresholds are distances: the duplicate (a, b) is at distance sqrt(0.02) ~ 0.141,
    # the next pair (c, d) at sqrt(1.64) ~ 1.281; the best F1 cut lies between them.
    assert 0.141 < metrics["qqp-test_f1_threshold_euclidean"] < 1.281
    assert 0.0 < metrics["qqp-test_f1_threshold_cosine"] < 1.0


def test_evaluator_rejects_bad_labels():
    with pytest.raises(ValueError, match="0 or 1"):
        PairClassificationEvaluator(["a", "b"], ["c", "d"], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        PairClassificationEvaluator(["a"], ["c", "d"], [1, 0])
