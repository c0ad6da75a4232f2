"""STS evaluation against from-scratch correlations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from sbert_siamese.data.readers import PairExample
from sbert_siamese.evaluation.sts import STSEvaluator
from sbert_siamese.models.scoring import SIMILARITIES


# ---------------------------------------------------------------------------------------------- from scratch
def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    return float(np.sum(xc * yc) / math.sqrt(np.sum(xc * xc) * np.sum(yc * yc)))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(average_ranks(x), average_ranks(y))


def test_average_ranks_helper():
    np.testing.assert_array_equal(
        average_ranks(np.array([10.0, 30.0, 20.0, 30.0, 10.0])), [1.5, 4.5, 3, 4.5, 1.5]
    )


def brute_force_similarities(u, v):
    out = {name: [] for name in SIMILARITIES}
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        out["dot"].append(dot)
        out["cosine"].append(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))))
        out["euclidean"].append(-math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True))))
        out["manhattan"].append(-sum(abs(x - y) for x, y in zip(a, b, strict=True)))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("integer_vectors", [False, True], ids=["continuous", "ties"])
def test_compute_matches_scipy_and_from_scratch(integer_vectors):
    rng = np.random.default_rng(0)
    n, d = 40, 6
    if integer_vectors:  # small integer vectors: ties in dot and manhattan, and in the gold scores
        u = rng.integers(-2, 3, (n, d)).astype(np.float64)
        v = rng.integers(-2, 3, (n, d)).astype(np.float64)
        u[u.sum(axis=1) == 0, 0] = 1.0  # no zero vectors (cosine undefined)
        v[np.abs(v).sum(axis=1) == 0, 0] = 1.0
        u[np.abs(u).sum(axis=1) == 0, 0] = 1.0
    else:
        u = rng.normal(size=(n, d)).astype(np.float32)
        v = (0.5 * u + rng.normal(size=(n, d))).astype(np.float32)
    gold = rng.integers(0, 11, n) / 2.0  # 0, 0.5, ..., 5: many ties
    evaluator = STSEvaluator([f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)], gold, name="sts-dev")
    metrics = evaluator.compute(u, v)

    assert set(metrics) == {f"sts-dev_{c}_{s}" for c in ("pearson", "spearman") for s in SIMILARITIES}
    assert all(type(value) is float for value in metrics.values())
    sims = brute_force_similarities(u.astype(np.float64), v.astype(np.float64))
    for sim in SIMILARITIES:
        pearson_value, spearman_value = metrics[f"sts-dev_pearson_{sim}"], metrics[f"sts-dev_spearman_{sim}"]
        assert pearson_value == pytest.approx(pearsonr(gold, sims[sim])[0], abs=1e-9)
        assert spearman_value == pytest.approx(spearmanr(gold, sims[sim])[0], abs=1e-9)
        assert pearson_value == pytest.approx(pearson(gold, sims[sim]), abs=1e-9)
        assert spearman_value == pytest.approx(spearman(gold, sims[sim]), abs=1e-9)
    if integer_vectors:
        assert len(np.unique(sims["manhattan"])) < n  # the ties really are there


def test_primary_metric_and_default_name():
    assert STSEvaluator(["a", "b"], ["c", "d"], [0.0, 1.0]).primary_metric == "sts_spearman_cosine"
    evaluator = STSEvaluator(["a", "b", "c"], ["d", "e", "f"], [0.0, 1.0, 0.5], name="sts-test")
    assert evaluator.primary_metric == "sts-test_spearman_cosine"
    rng = np.random.default_rng(2)
    assert evaluator.primary_metric in evaluator.compute(rng.normal(size=(3, 4)), rng.normal(size=(3, 4)))


# ---------------------------------------------------------------------------------------------- __call__
class FakeEncoder:
    """Looks up fixed vectors; records every call."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors
        self.calls: list[tuple[list[str], int, bool]] = []

    def encode(self, texts, batch_size=32, show_progress_bar=False):
        self.calls.append((list(texts), batch_size, show_progress_bar))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_call_encodes_each_distinct_sentence_once():
    rng = np.random.default_rng(1)
    sentences1 = ["a cat", "a dog", "a cat", "the sun", "snow", "a dog"]
    sentences2 = ["a dog", "the moon", "snow", "the sun", "rain", "a cat"]
    scores = [0.5, 0.1, 0.3, 1.0, 0.6, 0.5]
    distinct = sorted(set(sentences1 + sentences2))
    vectors = {s: rng.normal(size=5).tolist() for s in distinct}
    encoder = FakeEncoder(vectors)
    evaluator = STSEvaluator(
        sentences1, sentences2, scores, name="dev", batch_size=7, show_progress_bar=False
    )
    metrics = evaluator(encoder)

    assert len(encoder.calls) == 1
    texts, batch_size, bar = encoder.calls[0]
    assert sorted(texts) == distinct and len(texts) == len(distinct)  # each once
    assert (batch_size, bar) == (7, False)
    u = np.array([vectors[s] for s in sentences1], dtype=np.float32)
    v = np.array([vectors[s] for s in sentences2], dtype=np.float32)
    expected = evaluator.compute(u, v)
    assert metrics.keys() == expected.keys()
    for key in expected:
        assert metrics[key] == pytest.approx(expected[key], abs=1e-12), key
    # ... and those are the from-scratch numbers for the looked-up vectors.
    sims = brute_force_similarities(u.astype(np.float64), v.astype(np.float64))
    assert metrics["dev_spearman_cosine"] == pytest.approx(
        spearman(np.array(scores), sims["cosine"]), abs=1e-9
    )


def test_perfect_encoder_gives_spearman_one():
    gold = [0.2, 0.9, 0.0, 0.55, 0.7, 0.35]
    sentences1 = [f"left {i}" for i in range(len(gold))]
    sentences2 = [f"right {i}" for i in range(len(gold))]
    vectors = {s: [1.0, 0.0] for s in sentences1}
    for s, g in zip(sentences2, gold, strict=True):
        angle = (1.0 - g) * math.pi / 2  # cosine = cos(angle) rises with the gold score
        vectors[s] = [math.cos(angle), math.sin(angle)]
    evaluator = STSEvaluator.from_examples(
        [PairExample(a, b, g) for a, b, g in zip(sentences1, sentences2, gold, strict=True)], name="sts-test"
    )
    metrics = evaluator(FakeEncoder(vectors))
    assert metrics["sts-test_spearman_cosine"] == pytest.approx(1.0)
    assert metrics["sts-test_spearman_euclidean"] == pytest.approx(1.0)  # unit vectors: same order
    assert metrics[evaluator.primary_metric] == pytest.approx(1.0)


def test_from_examples_keeps_order_and_kwargs():
    examples = [PairExample("a", "b", 0.25), PairExample("c", "d", 0.75)]
    evaluator = STSEvaluator.from_examples(examples, name="x", batch_size=3)
    assert (evaluator.sentences1, evaluator.sentences2) == (["a", "c"], ["b", "d"])
    np.testing.assert_array_equal(evaluator.scores, [0.25, 0.75])
    assert (evaluator.name, evaluator.batch_size) == ("x", 3)


@pytest.mark.parametrize(
    "args, match",
    [
        ((["a", "b"], ["c"], [0.1, 0.2]), "same length"),
        ((["a", "b"], ["c", "d"], [0.1]), "same length"),
        ((["a"], ["b"], [0.5]), "at least 2 pairs"),
        (([], [], []), "at least 2 pairs"),
    ],
)
def test_constructor_errors(args, match):
    with pytest.raises(ValueError, match=match):
        STSEvaluator(*args)
