"""Duplicate mining against hand-computed values on hand-made vectors and brute force on random data."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese.evaluation.duplicate_mining import DuplicateMiningEvaluator, duplicate_closure
from tests.evaluation.fakes import FakeEncoder, at_angles, cos_deg, unit


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
