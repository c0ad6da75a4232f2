"""``build_index`` over every kind (exact kinds against brute force, approximate kinds by recall against exact
search), ``kind="auto"``, the choices listed in errors, and ``recall_at_k``."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese.errors import ConfigError
from sbert_siamese.search import build_index, exact_topk, mine_duplicates, recall_at_k
from sbert_siamese.search import index as index_module

from .brute_force import assert_valid_topk, gaussian, score_matrix

# Few threads on a shared machine, deterministic faiss builds (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def test_unknown_similarity_lists_the_choices():
    x = gaussian(5, 3, seed=11)
    for call in (
        lambda: exact_topk(x, x, 2, similarity="euclidean"),
        lambda: build_index(x, "flat", similarity="euclidean"),
        lambda: mine_duplicates(x, similarity="euclidean"),
    ):
        with pytest.raises(
            ConfigError, match="unknown similarity 'euclidean'; valid similarities: cosine, dot"
        ):
            call()


def test_unknown_kind_lists_the_choices():
    x = gaussian(5, 3, seed=12)
    expected = "unknown index kind 'annoy'; valid kinds: auto, exact, clustered, flat, ivf, hnsw"
    with pytest.raises(ConfigError, match=expected):
        build_index(x, "annoy")
    with pytest.raises(ConfigError, match=expected):
        mine_duplicates(x, index="annoy")


# ---------------------------------------------------------------------------------------------------------
# indexes
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["exact", "flat"])
def test_exact_kinds_equal_brute_force(kind):
    corpus = gaussian(300, 16, seed=13) * np.float32(2.0)
    queries = gaussian(20, 16, seed=14)
    for similarity in ("cosine", "dot"):
        index = build_index(corpus, kind, similarity)
        assert (index.kind, index.similarity, index.dim, len(index)) == (kind, similarity, 16, 300)
        scores, indices = index.search(queries, 10)
        assert_valid_topk(scores, indices, score_matrix(queries, corpus, similarity), 10)


@pytest.mark.parametrize("kind", ["clustered", "ivf", "hnsw"])
def test_approximate_recall_at_10(kind, clustered_data):
    corpus, queries, (exact_scores, exact_indices) = clustered_data
    index = build_index(corpus, kind)
    scores, indices = index.search(queries, 10)
    assert scores.shape == indices.shape == (300, 10)
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    assert recall_at_k(indices, exact_indices) >= 0.95
    # Every returned score is the true similarity of the returned vector.
    found = indices >= 0
    true = np.einsum("qd,qkd->qk", queries, corpus[np.where(found, indices, 0)])
    np.testing.assert_allclose(scores[found], true[found], atol=1e-5)


def test_auto_is_exact_below_the_threshold_and_clustered_from_it(monkeypatch):
    x = gaussian(100, 8, seed=17)
    assert index_module.APPROXIMATE_FROM == 20_000
    assert build_index(x).kind == "exact"
    monkeypatch.setattr(index_module, "APPROXIMATE_FROM", 100)
    index = build_index(x)
    assert index.kind == "clustered"
    scores, indices = index.search(x[:10], 5)
    assert_valid_topk(scores, indices, score_matrix(x[:10], x, "cosine"), 5)


# ---------------------------------------------------------------------------------------------------------
# recall
# ---------------------------------------------------------------------------------------------------------
def test_recall_at_k_by_hand():
    approx = [[1, 2, 3], [4, 5, -1]]
    assert recall_at_k(approx, [[3, 2, 9], [4, 6, 7]]) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall_at_k(approx, [[1, 2, 3], [5, 4, -1]]) == 1.0  # -1: no exact neighbour there
    assert recall_at_k([[7]], [[7, 8]]) == 0.5  # a shorter approximate list
    assert recall_at_k([[-1, -1]], [[0, 1]]) == 0.0
    with pytest.raises(ValueError, match="2 queries, exact results 1"):
        recall_at_k(approx, [[1, 2, 3]])
