"""VectorIndex (base kind + exact delta + removal mask) against brute-force search over the live vectors."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese.archive import vectors as vectors_module
from sbert_siamese.archive.vectors import VectorIndex, load_saved


def brute_force(queries, seqs, matrix, live, k):
    """(scores, seqs) of the top-k live rows by cosine similarity, best first."""
    keep = np.isin(seqs, list(live))
    rows, ids = matrix[keep], seqs[keep]
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    r = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    scores = q @ r.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(20, 16)).astype(np.float32)


@pytest.mark.parametrize("kind", ["exact", "flat"])
def test_base_plus_delta_minus_removed_is_exact(data, kind):
    matrix, queries = data
    seqs = np.arange(1, 301)
    index = VectorIndex(kind, "cosine", 16)
    index.build(seqs[:200], matrix[:200], upto_seq=200)
    index.append(seqs[200:250], matrix[200:250])
    index.append(seqs[250:], matrix[250:])  # grows the delta buffer again
    removed = [1, 5, 150, 201, 299, 300]
    index.remove(removed)
    index.remove([5, 9999])  # twice, and unknown: no effect
    live = set(seqs.tolist()) - set(removed)
    assert len(index) == len(live)
    scores, found = index.search(queries, 10)
    want_scores, want = brute_force(queries, seqs, matrix, live, 10)
    np.testing.assert_array_equal(found, want)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert not np.isin(found, removed).any()


def test_removed_rows_cost_no_results(data):
    """k results even when the base's best rows are all removed (it is asked for k + removed)."""
    matrix, queries = data
    seqs = np.arange(1, 301)
    index = VectorIndex("exact", "cosine", 16)
    index.build(seqs, matrix, upto_seq=300)
    _, best = index.search(queries[:1], 30)
    index.remove(best[0])
    scores, found = index.search(queries[:1], 30)
    assert found.shape == (1, 30) and (found >= 0).all() and not np.isin(found, best).any()


def test_k_is_clipped_to_the_live_size_and_an_empty_index_finds_nothing():
    index = VectorIndex("auto", "cosine", 4)
    index.build(np.zeros(0, np.int64), None, upto_seq=0)
    scores, found = index.search(np.ones((2, 4), np.float32), 5)
    assert scores.shape == found.shape == (2, 0)
    index.append(np.array([1, 2]), np.eye(4, dtype=np.float32)[:2])
    index.remove([2])
    scores, found = index.search(np.eye(4, dtype=np.float32)[:1], 5)
    assert found.tolist() == [[1]] and scores[0, 0] == pytest.approx(1.0)


def test_dot_similarity_is_not_normalised():
    index = VectorIndex("exact", "dot", 2)
    index.build(np.array([1, 2]), np.array([[1.0, 0.0], [3.0, 0.0]], np.float32), upto_seq=2)
    scores, found = index.search(np.array([[2.0, 0.0]], np.float32), 2)
    assert found.tolist() == [[2, 1]] and scores.tolist() == [[6.0, 2.0]]


def test_clustered_asks_for_a_rebuild_when_the_delta_outgrows_the_base_or_a_fifth_is_removed(
    monkeypatch, data
):
    matrix, _ = data
    monkeypatch.setattr(vectors_module, "REBUILD_MIN", 50)
    monkeypatch.setattr(vectors_module, "SMALL", 10)
    index = VectorIndex("clustered", "cosine", 16)
    index.build(np.arange(1, 101), matrix[:100], upto_seq=100)
    assert index.built_kind == "clustered"
    index.append(np.arange(101, 201), matrix[100:200])
    assert index.delta_size == 100 and not index.needs_rebuild()  # 100 added on a base of 100
    index.append(np.array([201]), matrix[200:201])
    assert index.needs_rebuild()
    index.build(np.arange(1, 101), matrix[:100], upto_seq=100)
    index.remove(np.arange(1, 21))
    assert not index.needs_rebuild()
    index.remove([21])
    assert index.needs_rebuild()


def test_faiss_kinds_grow_in_place(data):
    matrix, queries = data
    index = VectorIndex("hnsw", "cosine", 16)
    index.build(np.arange(1, 101), matrix[:100], upto_seq=100)
    index.append(np.arange(101, 301), matrix[100:])
    assert (index.delta_size, len(index.base_seqs), index.upto_seq) == (0, 300, 300)
    assert not index.needs_rebuild()
    _, found = index.search(matrix[250:251], 1)
    assert found.tolist() == [[251]]


def test_ivf_is_retrained_once_it_outgrows_its_lists(monkeypatch, data):
    matrix, _ = data
    monkeypatch.setattr(vectors_module, "SMALL", 10)
    index = VectorIndex("ivf", "cosine", 16)
    index.build(np.arange(1, 51), matrix[:50], upto_seq=50)
    index.append(np.arange(51, 201), matrix[50:200])
    assert not index.needs_rebuild()  # 200 = 4 x 50
    index.append(np.array([201]), matrix[200:201])
    assert index.needs_rebuild()


def test_auto_is_exact_then_hnsw(monkeypatch, data):
    from sbert_siamese.search import index as search_index

    matrix, _ = data
    monkeypatch.setattr(search_index, "APPROXIMATE_FROM", 150)
    index = VectorIndex("auto", "cosine", 16)
    index.build(np.arange(1, 101), matrix[:100], upto_seq=100)
    assert index.built_kind == "exact" and not index.needs_rebuild()
    index.append(np.arange(101, 151), matrix[100:150])
    assert index.needs_rebuild()
    index.build(np.arange(1, 151), matrix[:150], upto_seq=150)
    assert index.built_kind == "hnsw"


def test_exact_asks_for_a_rebuild_when_a_fifth_is_removed(monkeypatch, data):
    matrix, _ = data
    monkeypatch.setattr(vectors_module, "SMALL", 10)
    index = VectorIndex("exact", "cosine", 16)
    index.build(np.arange(1, 101), matrix[:100], upto_seq=100)
    index.remove(np.arange(1, 21))
    assert not index.needs_rebuild()
    index.remove([21])
    assert index.needs_rebuild()


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "clustered"])
def test_approximate_kinds_recall_and_never_return_removed(monkeypatch, kind):
    monkeypatch.setattr(vectors_module, "SMALL", 100)  # build the approximate kind on a small corpus
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    matrix = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(np.float32)
    queries = (centres[rng.integers(0, 20, 50)] + 0.3 * rng.normal(size=(50, 16))).astype(np.float32)
    seqs = np.arange(1, 3001)
    index = VectorIndex(kind, "cosine", 16)
    index.build(seqs, matrix, upto_seq=3000)
    assert index.built_kind == kind
    removed = np.arange(1, 3001, 7)
    index.remove(removed)
    _, found = index.search(queries, 10)
    _, want = brute_force(queries, seqs, matrix, set(seqs.tolist()) - set(removed.tolist()), 10)
    assert not np.isin(found, removed).any()
    recall = np.mean([len(set(f) & set(w)) / 10 for f, w in zip(found, want, strict=True)])
    assert recall > 0.9


def test_small_corpora_are_searched_exactly_whatever_the_kind(data):
    matrix, _ = data
    index = VectorIndex("clustered", "cosine", 16)
    index.build(np.arange(1, 301), matrix, upto_seq=300)
    assert index.built_kind == "exact"


def test_save_and_load_a_faiss_base(tmp_path, data):
    matrix, queries = data
    index = VectorIndex("hnsw", "cosine", 16)
    index.build(np.arange(1, 301), matrix, upto_seq=300)
    index.save(tmp_path, "abc")
    info, seqs, base = load_saved(tmp_path, "abc", "cosine", max_seq=300)
    assert info["kind"] == "hnsw" and seqs.tolist() == list(range(1, 301)) and len(base) == 300
    again = VectorIndex("hnsw", "cosine", 16)
    again.build(seqs, None, 300, base=base)
    np.testing.assert_array_equal(again.search(queries, 5)[1], index.search(queries, 5)[1])


@pytest.mark.parametrize(
    "fingerprint, similarity, max_seq, damage",
    [("other", "cosine", 300, None), ("abc", "dot", 300, None), ("abc", "cosine", 299, None),
     ("abc", "cosine", 300, "faiss.index"), ("abc", "cosine", 300, "index.json")],
)  # fmt: skip
def test_a_saved_index_that_does_not_fit_is_not_used(
    tmp_path, data, fingerprint, similarity, max_seq, damage
):
    matrix, _ = data
    index = VectorIndex("flat", "cosine", 16)
    index.build(np.arange(1, 301), matrix, upto_seq=300)
    index.save(tmp_path, "abc")
    if damage:
        (tmp_path / "index" / damage).write_bytes(b"torn")
    assert load_saved(tmp_path, fingerprint, similarity, max_seq) is None
