"""Ranking evaluators against hand-computed values on hand-made vectors and brute force on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sbert_siamese.evaluation.ranking import (
    DuplicateMiningEvaluator,
    OneShotEvaluator,
    RetrievalEvaluator,
    TripletEvaluator,
    cosine_top_k,
    duplicate_closure,
    ranking_metrics,
)


def at_angles(*degrees: float) -> np.ndarray:
    """Unit 2-D vectors at the given angles: cosine similarity = cos(angle difference)."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def cos_deg(degrees: float) -> float:
    return math.cos(math.radians(degrees))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class FakeEncoder:
    """Looks up fixed vectors; records (texts, side) per call. ``untied=True`` takes a ``side`` argument."""

    def __init__(self, vectors: dict[str, list[float]], untied: bool = False):
        self.vectors = vectors
        self.untied = untied
        self.calls: list[tuple[list[str], str | None]] = []

    def encode(self, texts, batch_size=32, show_progress_bar=False, **kwargs):
        if not self.untied:
            assert "side" not in kwargs  # SiameseEncoder.encode has no side argument
        self.calls.append((list(texts), kwargs.get("side")))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


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


# ---------------------------------------------------------------------------------------------- mining
def test_duplicate_closure():
    # clusters {0, 1, 2} and {3, 4, 5, 6}: 3 + 6 pairs
    closed = duplicate_closure([(1, 0), (1, 2), (4, 3), (5, 6), (6, 4)])
    assert closed == {(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (3, 6), (4, 5), (4, 6), (5, 6)}
    assert duplicate_closure([]) == set()


def test_from_labelled_pairs_builds_corpus_and_closes_gold():
    texts_a = ["how to cook rice", "cook rice how", "best phone", "rice cooking", "best phone", "weather"]
    texts_b = ["cook rice how", "rice cooking", "top phone", "how to cook rice", "which phone", "weather"]
    labels = [1, 1, 1, 0, 0, 1]  # the 0 inside the rice cluster is overruled; "weather"/"weather" dropped
    evaluator = DuplicateMiningEvaluator.from_labelled_pairs(texts_a, texts_b, labels, name="qqp", top_k=3)
    assert evaluator.sentences == [
        "how to cook rice",
        "cook rice how",
        "best phone",
        "rice cooking",
        "weather",
        "top phone",
        "which phone",
    ]
    # rice cluster {0, 1, 3}; phone pair (2, 5); "which phone" (6) labelled 0 with "best phone"
    assert evaluator.gold == {(0, 1), (0, 3), (1, 3), (2, 5)}
    assert (evaluator.name, evaluator.top_k, evaluator.primary_metric) == ("qqp", 3, "qqp_ap")
    with pytest.raises(ValueError, match="same length"):
        DuplicateMiningEvaluator.from_labelled_pairs(["a"], ["b", "c"], [1])
    with pytest.raises(ValueError, match=r"0 or 1, found \[2\]"):
        DuplicateMiningEvaluator.from_labelled_pairs(["a"], ["b"], [2])


# Sentences at 0, 10, 90 and 60 degrees; gold duplicates (0, 1) and (1, 3).
# Pairs by angle: (0,1) 10, (2,3) 30, (1,3) 50, (0,3) 60, (1,2) 80, (0,2) 90.
PLANTED = at_angles(0, 10, 90, 60)


def planted_evaluator(top_k):
    return DuplicateMiningEvaluator(
        ["s0", "s1", "s2", "s3"], [(1, 0), (1, 3), (3, 1)], name="dup", top_k=top_k
    )


def test_mining_planted_top1_gold_pair_never_retrieved_is_a_miss():
    # top_k = 1: 0<->1, 2<->3, and 3 -> 2 (30 < 50 degrees): candidates (0,1) hit, (2,3) miss.
    # (1, 3) is never a candidate, yet recall counts it: AP = 1 * 1/2; best F1 after (0,1): P 1, R 1/2.
    evaluator = planted_evaluator(1)
    pairs, scores = evaluator.candidates(PLANTED)
    assert pairs.tolist() == [[0, 1], [2, 3]]
    np.testing.assert_allclose(scores, [cos_deg(10), cos_deg(30)])
    m = evaluator.compute(PLANTED)
    assert m["dup_ap"] == pytest.approx(0.5)
    assert m["dup_f1"] == pytest.approx(2 / 3)
    assert (m["dup_precision"], m["dup_recall"]) == (pytest.approx(1.0), pytest.approx(0.5))
    assert m["dup_threshold"] == pytest.approx((cos_deg(10) + cos_deg(30)) / 2)


def test_mining_planted_all_pairs():
    # top_k = 3: all 6 pairs; hits at ranks 1 and 3: AP = (1/2)(1) + (1/2)(2/3) = 5/6.
    # Best F1 after rank 3: P = 2/3, R = 1, F1 = 0.8, threshold between cos 50 and cos 60.
    m = planted_evaluator(3).compute(PLANTED)
    assert m["dup_ap"] == pytest.approx(5 / 6)
    assert m["dup_f1"] == pytest.approx(0.8)
    assert (m["dup_precision"], m["dup_recall"]) == (pytest.approx(2 / 3), pytest.approx(1.0))
    assert m["dup_threshold"] == pytest.approx((cos_deg(50) + cos_deg(60)) / 2)


def test_mining_perfect_embedding():
    # three tight clusters far apart; gold = their closure
    rng = np.random.default_rng(5)
    centres = np.eye(3) * 10
    cluster = np.repeat(np.arange(3), 4)
    x = centres[cluster] + rng.normal(scale=0.1, size=(12, 3))
    gold = duplicate_closure([(i, j) for i in range(12) for j in range(i) if cluster[i] == cluster[j]])
    m = DuplicateMiningEvaluator([f"s{i}" for i in range(12)], gold, name="d", top_k=3).compute(x)
    for key in ("d_ap", "d_f1", "d_precision", "d_recall"):
        assert m[key] == pytest.approx(1.0), key
    # the threshold separates the within-cluster pairs from the rest
    sims = unit(x) @ unit(x).T
    same = cluster[:, None] == cluster[None, :]
    assert sims[same].min() >= m["d_threshold"] > sims[~same].max()


def brute_force_mining(x, gold, top_k):
    sims = unit(x) @ unit(x).T
    n = len(x)
    candidates = set()
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -sims[i, j])[:top_k]
        candidates.update((min(i, j), max(i, j)) for j in others)
    ranked = sorted(candidates, key=lambda p: -sims[p])
    hits, ap, best = 0, 0.0, (0.0, None, None, None)
    for rank, pair in enumerate(ranked, start=1):
        if pair in gold:
            hits += 1
            ap += hits / rank
        precision, recall = hits / rank, hits / len(gold)
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        if f1 > best[0]:
            best = (f1, precision, recall, rank)
    return ap / len(gold), best, ranked, sims


def test_mining_matches_brute_force_on_random_data():
    rng = np.random.default_rng(6)
    n = 40
    x = rng.normal(size=(n, 8))
    x[20:30] = x[:10] + rng.normal(scale=0.3, size=(10, 8))  # planted near-duplicates (i, i + 20)
    extra = {(int(min(a, b)), int(max(a, b))) for a, b in rng.choice(n, (8, 2)) if a != b}
    gold = {(i, i + 20) for i in range(10)} | extra
    evaluator = DuplicateMiningEvaluator([f"s{i}" for i in range(n)], gold, top_k=5)
    m = evaluator.compute(x)
    ap, (f1, precision, recall, rank), ranked, sims = brute_force_mining(x, gold, 5)
    pairs, _ = evaluator.candidates(x)
    assert [tuple(p) for p in pairs.tolist()] == ranked
    assert m["mining_ap"] == pytest.approx(ap, abs=1e-12)
    assert m["mining_f1"] == pytest.approx(f1, abs=1e-12)
    assert (m["mining_precision"], m["mining_recall"]) == (pytest.approx(precision), pytest.approx(recall))
    # the threshold falls between the last accepted candidate and the next one
    assert sims[ranked[rank - 1]] >= m["mining_threshold"] > sims[ranked[rank]]
    assert 0 < ap < 1


def test_mining_gold_as_text_pairs_equals_index_pairs():
    sentences = ["a", "b", "c", "d"]
    by_text = DuplicateMiningEvaluator(sentences, [("b", "a"), ("b", "d")])
    by_index = DuplicateMiningEvaluator(sentences, [(0, 1), (1, 3)])
    assert by_text.gold == by_index.gold == {(0, 1), (1, 3)}


def test_mining_call_encodes_corpus_once():
    vectors = {f"s{i}": list(v) for i, v in enumerate(PLANTED)}
    encoder = FakeEncoder(vectors)
    evaluator = planted_evaluator(3)
    assert evaluator(encoder) == pytest.approx(evaluator.compute(PLANTED))
    assert encoder.calls == [(["s0", "s1", "s2", "s3"], None)]


@pytest.mark.parametrize(
    "sentences, duplicates, kwargs, match",
    [
        (["a"], [], {}, "at least 2 sentences"),
        (["a", "b"], [], {}, "no gold duplicate pairs"),
        (["a", "b"], [(0, 2)], {}, r"index 2 is not in \[0, 2\)"),
        (["a", "b"], [(-1, 0)], {}, "index -1"),
        (["a", "b"], [(1, 1)], {}, "itself"),
        (["a", "b"], [(0, 1, 1)], {}, "2 elements"),
        (["a", "b"], [("a", "zz")], {}, "'zz' is not in the sentences"),
        (["a", "b", "a"], [("a", "b")], {}, "'a' occurs more than once"),
        (["a", "b"], [(0, 1)], {"top_k": 0}, "top_k must be a positive integer"),
    ],
)
def test_mining_input_errors(sentences, duplicates, kwargs, match):
    with pytest.raises(ValueError, match=match):
        DuplicateMiningEvaluator(sentences, duplicates, **kwargs)


def test_mining_compute_checks_row_count():
    with pytest.raises(ValueError, match="expected 4 embeddings, got 3"):
        planted_evaluator(1).compute(PLANTED[:3])


# ---------------------------------------------------------------------------------------------- triplets
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


# ---------------------------------------------------------------------------------------------- one-shot
def test_one_shot_hand_computed():
    references = {"cat": "a cat", "dog": "a dog", "bird": "a bird"}
    ref_vectors = at_angles(0, 90, 180)
    # queries at 10 (cat), 100 (dog), 170 (bird), 80 (dog), 45 (tie cat/dog -> the first, cat)
    queries = at_angles(10, 100, 170, 80, 45)
    labels = ["cat", "dog", "cat", "cat", "dog"]
    evaluator = OneShotEvaluator(references, ["q"] * 5, labels, name="os")
    assert evaluator.predict(ref_vectors, queries) == ["cat", "dog", "bird", "dog", "cat"]
    assert evaluator.compute(ref_vectors, queries) == {"os_accuracy": 2 / 5, "os_ways": 3.0}
    assert evaluator.primary_metric == "os_accuracy"


def test_one_shot_call():
    vectors = {"a cat": [1.0, 0.0], "a dog": [0.0, 1.0], "kitten": [0.9, 0.2], "puppy": [0.3, 0.8]}
    encoder = FakeEncoder(vectors)
    evaluator = OneShotEvaluator({1: "a cat", 2: "a dog"}, ["kitten", "puppy", "kitten"], [1, 2, 2])
    assert evaluator(encoder) == {"one-shot_accuracy": pytest.approx(2 / 3), "one-shot_ways": 2.0}
    assert [texts for texts, _ in encoder.calls] == [["a cat", "a dog"], ["kitten", "puppy", "kitten"]]


@pytest.mark.parametrize(
    "args, match",
    [
        (({"a": "x"}, ["q"], ["a"]), "at least 2 references"),
        (({"a": "x", "b": "y"}, ["q"], []), "same length"),
        (({"a": "x", "b": "y"}, [], []), "no queries"),
        (({"a": "x", "b": "y"}, ["q", "r"], ["a", "c"]), "without a reference: 'c'"),
    ],
)
def test_one_shot_input_errors(args, match):
    with pytest.raises(ValueError, match=match):
        OneShotEvaluator(*args)


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
