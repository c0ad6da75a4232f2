"""Retrieval and the shared cosine top-k against hand-computed values on hand-made vectors and brute force on
random data; every ranking evaluator end to end on the tiny encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sbert_siamese.evaluation import DuplicateMiningEvaluator, OneShotEvaluator, TripletEvaluator
from sbert_siamese.evaluation.ranking import RetrievalEvaluator, cosine_top_k, ranking_metrics
from tests.evaluation.fakes import FakeEncoder, at_angles, unit


# ---------------------------------------------------------------------------------------------- top-k
def test_cosine_top_k_matches_full_sort():
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(23, 6)), rng.normal(size=(31, 6)) * rng.uniform(0.1, 5, (31, 1))  # any norms
    scores, indices = cosine_top_k(q, c, 5)
    sims = unit(q) @ unit(c).T
    expected = np.argsort(-sims, axis=1)[:, :5]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, expected, 1), atol=1e-6)


def test_cosine_top_k_excludes_self_caps_k_and_orders_ties_by_index():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 4))
    scores, indices = cosine_top_k(x, x, 100, exclude_self=True)
    assert indices.shape == (9, 8)  # k capped at the 8 other rows
    assert all(i not in row for i, row in enumerate(indices))
    sims = unit(x) @ unit(x).T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_array_equal(indices, np.argsort(-sims, axis=1)[:, :8])
    # three identical corpus vectors tie: listed by index
    corpus = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    _, order = cosine_top_k(np.array([[1.0, 0.0]]), corpus, 4)
    assert order.tolist() == [[1, 2, 3, 0]]


# ---------------------------------------------------------------------------------------------- retrieval
def hand_evaluator(**kwargs) -> RetrievalEvaluator:
    queries = {"q1": "query one", "q2": "query two", "q3": "query three"}
    corpus = {f"d{i}": f"document {i}" for i in range(5)}
    relevant = {"q1": {"d1", "d3"}, "q2": {"d4"}, "q3": {"d0", "d1", "d4"}}
    return RetrievalEvaluator(queries, corpus, relevant, name="ir", **kwargs)


# Documents at 0, 20, 40, 60, 80 degrees; queries at 0, 80 and 45 degrees. Rankings (best first):
#   q1 (0):  d0 d1 d2 d3 d4   relevant {d1, d3} -> relevant ranks 2, 4
#   q2 (80): d4 d3 d2 d1 d0   relevant {d4}     -> rank 1
#   q3 (45): d2 d3 d1 d4 d0   relevant {d0, d1, d4} -> ranks 3, 4, 5   (|45 - angle| = 45 25 5 15 35)
DOCS = at_angles(0, 20, 40, 60, 80)
QUERIES = at_angles(0, 80, 45)
L3, L5, L6 = math.log2(3), math.log2(5), math.log2(6)
HAND = {
    "ir_accuracy@1": (0 + 1 + 0) / 3,
    "ir_accuracy@3": (1 + 1 + 1) / 3,
    "ir_precision@1": (0 + 1 + 0) / 3,
    "ir_precision@3": (1 / 3 + 1 / 3 + 1 / 3) / 3,
    "ir_recall@1": (0 + 1 + 0) / 3,
    "ir_recall@3": (1 / 2 + 1 + 1 / 3) / 3,
    "ir_recall@5": 1.0,
    "ir_mrr@1": (0 + 1 + 0) / 3,
    "ir_mrr@3": (1 / 2 + 1 + 1 / 3) / 3,
    # DCG: sum 1/log2(rank + 1) over relevant ranks; IDCG: min(k, |relevant|) hits at the top.
    "ir_ndcg@3": ((1 / L3) / (1 + 1 / L3) + 1 + (1 / 2) / (1 + 1 / L3 + 1 / 2)) / 3,
    "ir_ndcg@5": ((1 / L3 + 1 / L5) / (1 + 1 / L3) + 1 + (1 / 2 + 1 / L5 + 1 / L6) / (1 + 1 / L3 + 1 / 2))
    / 3,
    # AP@k: sum of precision@rank at relevant ranks <= k, over min(k, |relevant|).
    "ir_map@3": ((1 / 2) / 2 + 1 + (1 / 3) / 3) / 3,
    "ir_map@5": ((1 / 2 + 2 / 4) / 2 + 1 + (1 / 3 + 2 / 4 + 3 / 5) / 3) / 3,
}


def test_retrieval_hand_computed():
    evaluator = hand_evaluator(
        mrr_at_k=(1, 3),
        ndcg_at_k=(3, 5),
        accuracy_at_k=(1, 3),
        precision_at_k=(1, 3),
        recall_at_k=(1, 3, 5),
        map_at_k=(3, 5),
    )
    metrics = evaluator.compute(QUERIES, DOCS)
    assert set(metrics) == set(HAND)
    for key, value in HAND.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key
    assert metrics["ir_ndcg@3"] == pytest.approx(0.54050, abs=1e-5)  # the numbers written out
    assert metrics["ir_map@5"] == pytest.approx(0.65926, abs=1e-5)
    assert evaluator.primary_metric == "ir_ndcg@5"  # no ndcg@10: the largest ndcg k


def test_retrieval_defaults_and_k_beyond_the_corpus():
    evaluator = hand_evaluator()
    metrics = evaluator.compute(QUERIES, DOCS)
    assert evaluator.primary_metric == "ir_ndcg@10" and "ir_ndcg@10" in metrics
    assert {"ir_mrr@10", "ir_map@100", "ir_recall@100", "ir_accuracy@10", "ir_precision@10"} <= set(metrics)
    # 5 documents: everything is retrieved by k = 10; precision still divides by k (sentence-transformers)
    assert metrics["ir_recall@10"] == metrics["ir_recall@100"] == 1.0
    assert metrics["ir_precision@10"] == pytest.approx((2 + 1 + 3) / 10 / 3)
    assert metrics["ir_ndcg@10"] == pytest.approx(HAND["ir_ndcg@5"])
    assert metrics["ir_map@100"] == pytest.approx(HAND["ir_map@5"])


def brute_force_retrieval(q, c, relevant_rows, k):
    """Per-query loops over an explicit full sort."""
    sims = unit(q) @ unit(c).T
    out = {m: [] for m in ("accuracy", "precision", "recall", "mrr", "ndcg", "map")}
    for row, rel in enumerate(relevant_rows):
        ranked = sorted(range(c.shape[0]), key=lambda j: -sims[row, j])[:k]
        found = [j in rel for j in ranked]
        out["accuracy"].append(float(any(found)))
        out["precision"].append(sum(found) / k)
        out["recall"].append(sum(found) / len(rel))
        first = next((r for r, f in enumerate(found, start=1) if f), None)
        out["mrr"].append(0.0 if first is None else 1 / first)
        dcg = sum(1 / math.log2(r + 1) for r, f in enumerate(found, start=1) if f)
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(k, len(rel)) + 1))
        out["ndcg"].append(dcg / idcg)
        hits, precisions = 0, []
        for r, f in enumerate(found, start=1):
            if f:
                hits += 1
                precisions.append(hits / r)
        out["map"].append(sum(precisions) / min(k, len(rel)))
    return {m: float(np.mean(v)) for m, v in out.items()}


def test_retrieval_matches_brute_force_on_random_data():
    rng = np.random.default_rng(3)
    n_q, n_c = 20, 30
    q, c = rng.normal(size=(n_q, 8)), rng.normal(size=(n_c, 8))
    relevant_rows = [
        set(rng.choice(n_c, size=rng.integers(1, 6), replace=False).tolist()) for _ in range(n_q)
    ]
    ks = (1, 3, 5, 10, 50)  # 50 > corpus size
    evaluator = RetrievalEvaluator(
        {f"q{i}": f"query {i}" for i in range(n_q)},
        {f"c{j}": f"doc {j}" for j in range(n_c)},
        {f"q{i}": {f"c{j}" for j in rel} for i, rel in enumerate(relevant_rows)},
        name="r",
        mrr_at_k=ks,
        ndcg_at_k=ks,
        accuracy_at_k=ks,
        precision_at_k=ks,
        recall_at_k=ks,
        map_at_k=ks,
    )
    metrics = evaluator.compute(q, c)
    assert len(metrics) == 6 * len(ks)
    for k in ks:
        expected = brute_force_retrieval(q, c, relevant_rows, k)
        for metric, value in expected.items():
            assert metrics[f"r_{metric}@{k}"] == pytest.approx(value, abs=1e-12), f"{metric}@{k}"


def test_retrieval_ndcg_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    q, c = rng.normal(size=(12, 5)), rng.normal(size=(15, 5))
    truth = np.zeros((12, 15))
    for row in truth:
        row[rng.choice(15, size=rng.integers(1, 5), replace=False)] = 1
    evaluator = RetrievalEvaluator(
        {i: "q" for i in range(12)},
        {j: "c" for j in range(15)},
        {i: set(np.flatnonzero(truth[i]).tolist()) for i in range(12)},
        ndcg_at_k=(3, 10),
    )
    metrics = evaluator.compute(q, c)
    sims = unit(q) @ unit(c).T
    for k in (3, 10):
        assert metrics[f"retrieval_ndcg@{k}"] == pytest.approx(sklearn_metrics.ndcg_score(truth, sims, k=k))


def test_ranking_metrics_on_explicit_hits():
    # one query, ranks 1..4 = miss hit miss hit, 3 relevant documents in all
    hits = np.array([[False, True, False, True]])
    m = ranking_metrics(hits, np.array([3]), {"mrr": [4], "map": [4], "recall": [2], "ndcg": [2]})
    assert m["mrr@4"] == 0.5
    assert m["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert m["recall@2"] == pytest.approx(1 / 3)
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    with pytest.raises(ValueError, match="needs at least 5 ranks"):
        ranking_metrics(hits, np.array([3]), {"mrr": [5]})


def test_retrieval_call_uses_query_and_document_towers():
    vectors = {"query one": QUERIES[0], "query two": QUERIES[1], "query three": QUERIES[2]}
    vectors.update({f"document {i}": DOCS[i] for i in range(5)})
    evaluator = hand_evaluator(ndcg_at_k=(3,), map_at_k=(5,))
    for untied, sides in ((False, [None, None]), (True, ["a", "b"])):
        encoder = FakeEncoder({k: list(v) for k, v in vectors.items()}, untied=untied)
        metrics = evaluator(encoder)
        assert [side for _, side in encoder.calls] == sides
        assert metrics["ir_ndcg@3"] == pytest.approx(HAND["ir_ndcg@3"], abs=1e-6)
        assert metrics["ir_map@5"] == pytest.approx(HAND["ir_map@5"], abs=1e-6)


def test_retrieval_skips_queries_without_relevant_documents():
    evaluator = RetrievalEvaluator(
        {"a": "qa", "b": "qb", "c": "qc"}, {"x": "dx", "y": "dy"}, {"a": {"x"}, "b": set()}
    )
    assert evaluator.query_ids == ["a"] and evaluator.queries == ["qa"]


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (({}, {"d": "t"}, {}), {}, "no queries"),
        (({"q": "t"}, {}, {}), {}, "corpus is empty"),
        (({"q": "t"}, {"d": "t"}, {"zz": {"d"}}), {}, r"unknown query id\(s\): \['zz'\]"),
        (({"q": "t"}, {"d": "t"}, {"q": {"d", "nope"}}), {}, "document id.*'nope'"),
        (({"q": "t"}, {"d": "t"}, {"q": set()}), {}, "no query has a relevant document"),
        (({"q": "t"}, {"d": "t"}, {"q": {"d"}}), {"mrr_at_k": (0,)}, "positive integers"),
        (({"q": "t"}, {"d": "t"}, {"q": {"d"}}), {"ndcg_at_k": (2.5,)}, "positive integers"),
        (
            ({"q": "t"}, {"d": "t"}, {"q": {"d"}}),
            dict(mrr_at_k=(), ndcg_at_k=(), accuracy_at_k=(), precision_at_k=(), recall_at_k=(), map_at_k=()),
            "no cut-off",
        ),
    ],
)
def test_retrieval_input_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RetrievalEvaluator(*args, **kwargs)


def test_retrieval_compute_checks_shapes():
    evaluator = hand_evaluator()
    with pytest.raises(ValueError, match="expected 3 query embeddings, got 2"):
        evaluator.compute(QUERIES[:2], DOCS)
    with pytest.raises(ValueError, match="expected 5 corpus embeddings"):
        evaluator.compute(QUERIES, DOCS[:4])


def test_evaluators_run_on_the_tiny_encoder(tiny_encoder):
    """End to end with the real encoder class: keys present, values in range."""
    texts = ["a cat sat", "a dog ran", "the sun is hot", "snow is cold", "a man plays guitar", "a cat ran"]
    mining = DuplicateMiningEvaluator(texts, [(0, 5), (1, 5)], top_k=2, batch_size=4)
    retrieval = RetrievalEvaluator(
        {"q": "a cat"}, dict(enumerate(texts)), {"q": {0, 5}}, mrr_at_k=(3,), ndcg_at_k=(3,)
    )
    triplets = TripletEvaluator(texts[:2], texts[2:4], texts[4:6])
    one_shot = OneShotEvaluator({"x": texts[0], "y": texts[2]}, texts[3:], ["x", "y", "x"])
    for evaluator in (mining, retrieval, triplets, one_shot):
        metrics = evaluator(tiny_encoder)
        assert evaluator.primary_metric in metrics
        assert all(type(v) is float and math.isfinite(v) for v in metrics.values())
