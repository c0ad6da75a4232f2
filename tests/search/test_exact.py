"""Exact search against brute-force numpy (full score matrix + stable argsort): ``exact_topk`` on other
queries and the self-search over the blocks on and above the diagonal, ties lowest index first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbert_siamese.search import exact, exact_topk

from .brute_force import assert_valid_topk, brute_topk, gaussian, score_matrix, small_integers

# Few threads on a shared machine, deterministic faiss builds (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------------------
# exact_topk
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [1, 7, 13, 10_000])
def test_exact_topk_dot_on_integers_equals_brute_force_with_ties(chunk_size):
    # Exact arithmetic: scores and indices must match bit for bit, ties (many) lowest index first.
    queries, corpus = small_integers(23, 3, seed=0, high=1), small_integers(50, 3, seed=1, high=1)
    scores, indices = exact_topk(queries, corpus, 9, similarity="dot", chunk_size=chunk_size)
    ref_scores, ref_indices = brute_topk(queries, corpus, 9, "dot")
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


@pytest.mark.parametrize("chunk_size", [1, 7, 13, 10_000])
def test_exact_topk_self_excluded_on_integers_equals_brute_force(chunk_size):
    x = small_integers(31, 4, seed=2)
    scores, indices = exact_topk(x, x, 6, similarity="dot", chunk_size=chunk_size, exclude_self=True)
    ref_scores, ref_indices = brute_topk(x, x, 6, "dot", exclude_self=True)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
    assert not np.any(indices == np.arange(31)[:, None])


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_exact_topk_on_gaussians_equals_brute_force(similarity, chunk_size, exclude_self):
    corpus = gaussian(50, 16, seed=3) * np.float32(3.0)  # not unit length: cosine must normalise
    queries = corpus if exclude_self else gaussian(23, 16, seed=4)
    scores, indices = exact_topk(queries, corpus, 10, similarity, chunk_size, exclude_self)
    assert_valid_topk(scores, indices, score_matrix(queries, corpus, similarity, exclude_self), 10)
    if similarity == "cosine":
        assert scores.max() <= 1.0 + 1e-6


def test_exact_topk_same_result_for_every_chunk_size():
    queries, corpus = gaussian(40, 8, seed=5), gaussian(101, 8, seed=6)
    results = [exact_topk(queries, corpus, 12, chunk_size=c) for c in (1, 7, 33, 4096)]
    for scores, indices in results[1:]:
        np.testing.assert_array_equal(indices, results[0][1])
        np.testing.assert_allclose(scores, results[0][0], atol=1e-6)


def test_exact_topk_clips_k_to_the_corpus():
    queries, corpus = gaussian(4, 5, seed=7), gaussian(6, 5, seed=8)
    scores, indices = exact_topk(queries, corpus, 100)
    assert scores.shape == indices.shape == (4, 6)
    assert sorted(indices[0].tolist()) == list(range(6))
    _, indices = exact_topk(corpus, corpus, 100, exclude_self=True)
    assert indices.shape == (6, 5)
    _, indices = exact_topk(corpus[:1], corpus[:1], 3, exclude_self=True)
    assert indices.shape == (1, 0)


def test_exact_topk_accepts_torch_and_leaves_inputs_alone():
    queries, corpus = gaussian(9, 6, seed=9), gaussian(20, 6, seed=10)
    before = corpus.copy()
    from_numpy = exact_topk(queries, corpus, 4, chunk_size=5)
    from_torch = exact_topk(torch.from_numpy(queries), torch.from_numpy(corpus).double(), 4, chunk_size=5)
    np.testing.assert_array_equal(from_numpy[1], from_torch[1])
    np.testing.assert_allclose(from_numpy[0], from_torch[0], atol=1e-6)
    np.testing.assert_array_equal(corpus, before)


# ---------------------------------------------------------------------------------------------------------
# self-search: only the blocks on and above the diagonal
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("group", [3, 32])
@pytest.mark.parametrize(
    "n, k, chunk_size",
    [(37, 5, 8), (64, 10, 16), (5, 10, 2), (11, 1, 4), (2, 1, 1), (300, 2, 256), (259, 1, 128), (40, 3, 40)],
)
def test_self_search_on_gaussians_equals_brute_force(monkeypatch, similarity, group, n, k, chunk_size):
    # n not a multiple of the block, n < k + 1, k = 1, one block, one row per block; group 3 takes the
    # two-stage top-k (runs of columns) with a short last run wherever k * 12 <= the block's columns.
    monkeypatch.setattr(exact, "TOPK_GROUP", group)
    x = gaussian(n, 12, seed=n) * np.float32(2.0)
    scores, indices = exact_topk(x, x, k, similarity, chunk_size, exclude_self=True)
    ref_scores, ref_indices = brute_topk(x, x, k, similarity, exclude_self=True)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


@pytest.mark.parametrize("group", [2, 3, 32])
@pytest.mark.parametrize(
    "n, k, chunk_size", [(50, 1, 13), (61, 3, 61), (61, 6, 16), (40, 39, 7), (90, 4, 45)]
)
def test_self_search_with_duplicates_and_ties_equals_brute_force(monkeypatch, group, n, k, chunk_size):
    # Entries in {-1, 0, 1}^3: 27 distinct vectors for up to 90 rows, exact dot products, ties at every cut
    # (between runs of columns, inside the candidates, across blocks): lowest index first, bit for bit.
    monkeypatch.setattr(exact, "TOPK_GROUP", group)
    x = small_integers(n, 3, seed=n, high=1)
    scores, indices = exact_topk(x, x, k, "dot", chunk_size, exclude_self=True)
    ref_scores, ref_indices = brute_topk(x, x, k, "dot", exclude_self=True)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


@pytest.mark.parametrize("group", [2, 32])
def test_exact_topk_two_stage_top_k_with_ties(monkeypatch, group):
    monkeypatch.setattr(exact, "TOPK_GROUP", group)
    queries, corpus = small_integers(23, 3, seed=40, high=1), small_integers(200, 3, seed=41, high=1)
    for chunk_size in (33, 64, 200):
        scores, indices = exact_topk(queries, corpus, 4, similarity="dot", chunk_size=chunk_size)
        ref_scores, ref_indices = brute_topk(queries, corpus, 4, "dot")
        np.testing.assert_array_equal(indices, ref_indices)
        np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


def test_self_search_computes_each_pair_of_blocks_once(monkeypatch):
    calls = []
    scores_into = exact._scores_into
    monkeypatch.setattr(exact, "_scores_into", lambda *a: calls.append(1) or scores_into(*a))
    x = gaussian(50, 8, seed=42)
    exact_topk(x, x, 3, chunk_size=10, exclude_self=True)
    assert len(calls) == 15  # 5 chunks: the 5 x 6 / 2 blocks on and above the diagonal, not 25
    calls.clear()
    exact_topk(x[:20], x, 3, chunk_size=10)
    assert len(calls) == 10  # other queries: every block


def test_self_search_is_used_for_an_equal_copy_and_can_keep_the_row_itself():
    x = gaussian(45, 6, seed=43)
    for queries in (x, x.copy(), torch.from_numpy(x)):
        scores, indices = exact_topk(queries, x, 4, chunk_size=8, exclude_self=True)
        ref_scores, ref_indices = brute_topk(x, x, 4, "cosine", exclude_self=True)
        np.testing.assert_array_equal(indices, ref_indices)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    scores, indices = exact_topk(x, x, 4, chunk_size=8)  # self included: each row first, at 1.0
    ref_scores, ref_indices = brute_topk(x, x, 4, "cosine")
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(indices[:, 0], np.arange(45))


@pytest.mark.parametrize(
    "queries, corpus, k, kwargs, message",
    [
        (np.zeros((0, 4)), np.ones((3, 4)), 1, {}, "queries is empty"),
        (np.ones((2, 4)), np.zeros((0, 4)), 1, {}, "corpus is empty"),
        (np.ones(4), np.ones((3, 4)), 1, {}, "reshape"),
        (np.ones((2, 5)), np.ones((3, 4)), 1, {}, "dimension 5, the corpus has 4"),
        (np.ones((2, 4)), np.ones((3, 4)), 0, {}, "k must be a positive integer"),
        (np.ones((2, 4)), np.ones((3, 4)), 1, {"chunk_size": 0}, "chunk_size must be a positive integer"),
        (np.ones((2, 4)), np.ones((3, 4)), 1, {"exclude_self": True}, "2 queries and 3 corpus rows"),
        (np.full((2, 4), np.nan), np.ones((3, 4)), 1, {}, "queries contains NaN"),
    ],
)
def test_exact_topk_errors(queries, corpus, k, kwargs, message):
    with pytest.raises(ValueError, match=message):
        exact_topk(queries, corpus, k, **kwargs)
