"""Search against brute-force numpy (full score matrix + stable argsort), approximate indexes (clustered,
faiss) by recall against exact search, duplicate mining and grouping on hand-made examples whose answers are
known."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sbert_siamese.errors import ConfigError
from sbert_siamese.search import exact as search
from sbert_siamese.search.exact import (
    ClusteredIndex,
    DuplicateGroup,
    build_index,
    cluster_duplicates,
    exact_topk,
    ivf_nlist,
    ivf_nprobe,
    mine_duplicates,
    recall_at_k,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Few threads (a shared machine) and deterministic faiss builds; restored afterwards."""
    import faiss

    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(faiss_threads)


# ---------------------------------------------------------------------------------------------------------
# data and the brute-force reference
# ---------------------------------------------------------------------------------------------------------
def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def small_integers(n: int, d: int, seed: int, high: int = 2) -> np.ndarray:
    """Integer entries in [-high, high]: dot products are exact in float32 and full of ties."""
    return np.random.default_rng(seed).integers(-high, high + 1, (n, d)).astype(np.float32)


def clustered(n: int, seed: int, d: int = 64, centres: int = 200, noise: float = 1.0) -> np.ndarray:
    """Points around ``centres`` fixed unit centres (the same for every seed), L2-normalised."""
    centre = np.random.default_rng(1234).standard_normal((centres, d))
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = centre[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def score_matrix(queries, corpus, similarity: str, exclude_self: bool = False) -> np.ndarray:
    q, c = np.asarray(queries, np.float64), np.asarray(corpus, np.float64)
    if similarity == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    s = q @ c.T
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    return s


def brute_topk(queries, corpus, k: int, similarity: str, exclude_self: bool = False):
    """Full matrix, stable argsort of the negated scores: best first, ties lowest index first."""
    s = score_matrix(queries, corpus, similarity, exclude_self)
    k = min(k, s.shape[1] - int(exclude_self))
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, axis=1), idx


def assert_valid_topk(scores, indices, reference: np.ndarray, k: int, atol: float = 1e-5):
    """A correct top-k up to rounding: the best k reference scores, at the indices returned."""
    assert scores.shape == indices.shape == (reference.shape[0], k)
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    best = -np.sort(-reference, axis=1)[:, :k]
    np.testing.assert_allclose(scores, best, atol=atol)
    np.testing.assert_allclose(np.take_along_axis(reference, indices, axis=1), scores, atol=atol)
    assert all(len(set(row)) == k for row in indices.tolist())
    assert np.all(np.diff(scores, axis=1) <= 0)


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
    monkeypatch.setattr(search, "TOPK_GROUP", group)
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
    monkeypatch.setattr(search, "TOPK_GROUP", group)
    x = small_integers(n, 3, seed=n, high=1)
    scores, indices = exact_topk(x, x, k, "dot", chunk_size, exclude_self=True)
    ref_scores, ref_indices = brute_topk(x, x, k, "dot", exclude_self=True)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


@pytest.mark.parametrize("group", [2, 32])
def test_exact_topk_two_stage_top_k_with_ties(monkeypatch, group):
    monkeypatch.setattr(search, "TOPK_GROUP", group)
    queries, corpus = small_integers(23, 3, seed=40, high=1), small_integers(200, 3, seed=41, high=1)
    for chunk_size in (33, 64, 200):
        scores, indices = exact_topk(queries, corpus, 4, similarity="dot", chunk_size=chunk_size)
        ref_scores, ref_indices = brute_topk(queries, corpus, 4, "dot")
        np.testing.assert_array_equal(indices, ref_indices)
        np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


def test_self_search_computes_each_pair_of_blocks_once(monkeypatch):
    calls = []
    scores_into = search._scores_into
    monkeypatch.setattr(search, "_scores_into", lambda *a: calls.append(1) or scores_into(*a))
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
@pytest.fixture(scope="module")
def clustered_data():
    corpus, queries = clustered(5000, seed=1), clustered(300, seed=2)
    return corpus, queries, exact_topk(queries, corpus, 10)


@pytest.mark.parametrize("kind", ["exact", "flat"])
def test_exact_kinds_equal_brute_force(kind):
    corpus = gaussian(300, 16, seed=13) * np.float32(2.0)
    queries = gaussian(20, 16, seed=14)
    for similarity in ("cosine", "dot"):
        index = build_index(corpus, kind, similarity)
        assert (index.kind, index.similarity, index.dim, len(index)) == (kind, similarity, 16, 300)
        scores, indices = index.search(queries, 10)
        assert_valid_topk(scores, indices, score_matrix(queries, corpus, similarity), 10)


def test_flat_equals_exact_on_clustered_data(clustered_data):
    corpus, queries, (exact_scores, exact_indices) = clustered_data
    scores, indices = build_index(corpus, "flat").search(queries, 10)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    assert recall_at_k(indices, exact_indices) >= 0.999


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


def test_ivf_defaults_and_settings():
    corpus = clustered(5000, seed=3)
    index = build_index(corpus, "ivf")
    assert index.index.nlist == ivf_nlist(5000) == 113  # 1.6 sqrt(5000)
    assert index.nprobe == ivf_nprobe(index.index.nlist) == 16
    assert ivf_nlist(1_000_000) == 1600 and ivf_nprobe(1600) == 160 and ivf_nprobe(10) == 10
    assert ivf_nlist(1000) == 1000 // 39  # capped: 39 points per list
    index = build_index(corpus[:200], "ivf", nlist=4, nprobe=1)
    scores, indices = index.search(corpus[:5], 200)  # one list of four cannot hold 200 hits
    assert np.any(indices == -1)
    assert np.all(np.isneginf(scores[indices == -1])) and np.all(np.isfinite(scores[indices >= 0]))


def test_cosine_faiss_index_normalises_copies():
    corpus = gaussian(50, 8, seed=15) * np.float32(5.0)
    queries = gaussian(4, 8, seed=16) * np.float32(0.1)
    corpus_before, queries_before = corpus.copy(), queries.copy()
    for kind in ("flat", "hnsw"):
        scores, indices = build_index(corpus, kind, "cosine").search(queries, 50)
        assert_valid_topk(scores, indices, score_matrix(queries, corpus, "cosine"), 50)
    np.testing.assert_array_equal(corpus, corpus_before)
    np.testing.assert_array_equal(queries, queries_before)


def test_auto_is_exact_below_the_threshold_and_clustered_from_it(monkeypatch):
    x = gaussian(100, 8, seed=17)
    assert search.APPROXIMATE_FROM == 20_000
    assert build_index(x).kind == "exact"
    monkeypatch.setattr(search, "APPROXIMATE_FROM", 100)
    index = build_index(x)
    assert index.kind == "clustered"
    scores, indices = index.search(x[:10], 5)
    assert_valid_topk(scores, indices, score_matrix(x[:10], x, "cosine"), 5)


def test_missing_faiss_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    x = gaussian(20, 4, seed=18)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        build_index(x, "hnsw")
    assert build_index(x, "exact").search(x, 3)[1].shape == (20, 3)  # exact search needs no faiss


def test_index_search_errors():
    index = build_index(gaussian(10, 4, seed=19), "flat")
    with pytest.raises(ValueError, match="dimension 3, the corpus has 4"):
        index.search(np.ones((2, 3), np.float32), 1)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(np.ones((2, 4), np.float32), 0)
    assert index.search(np.ones((2, 4), np.float32), 50)[1].shape == (2, 10)


# ---------------------------------------------------------------------------------------------------------
# clustered: k-means lists searched by matrix products
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("chunk_size", [7, 4096])
def test_clustered_probing_every_list_is_exact(monkeypatch, similarity, chunk_size):
    # Every list probed: every pair is scored once per side, so the top-k is the exact one. A pool of
    # one candidate forces a reduction after every block; chunk 7 splits lists and their queries.
    monkeypatch.setattr(search, "CANDIDATE_POOL", 1)
    x = gaussian(300, 16, seed=30) * np.float32(2.0)
    index = ClusteredIndex(x, similarity, nlist=6, nprobe=6, chunk_size=chunk_size)
    assert (index.kind, index.nlist, index.nprobe, len(index), index.dim) == ("clustered", 6, 6, 300, 16)
    scores, indices = index.self_search(10)
    ref_scores, ref_indices = brute_topk(x, x, 10, similarity, exclude_self=True)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    queries = gaussian(20, 16, seed=31)
    scores, indices = index.search(queries, 10)
    ref_scores, ref_indices = brute_topk(queries, x, 10, similarity)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_clustered_self_search_recall_and_determinism(clustered_data):
    corpus = clustered_data[0]
    index = build_index(corpus, "clustered")
    assert index.nlist == search.clustered_nlist(5000) == 113 and index.nprobe == 20
    scores, indices = index.self_search(10)
    _, exact_indices = exact_topk(corpus, corpus, 10, exclude_self=True)
    assert recall_at_k(indices, exact_indices) >= 0.95
    assert not np.any(indices == np.arange(5000)[:, None])
    found = indices >= 0
    true = np.einsum("nd,nkd->nk", corpus, corpus[np.where(found, indices, 0)])
    np.testing.assert_allclose(scores[found], true[found], atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)
    again = build_index(corpus, "clustered").self_search(10)  # seeded k-means: the same lists, same result
    np.testing.assert_array_equal(again[1], indices)
    index.nprobe = 1  # read at every search: own list only (and pairs found from the other side)
    assert recall_at_k(index.self_search(10)[1], exact_indices) < recall_at_k(indices, exact_indices)


def test_clustered_small_lists_leave_missing_slots():
    x = gaussian(20, 16, seed=32)
    scores, indices = ClusteredIndex(x, nlist=5, nprobe=1).self_search(10)
    assert scores.shape == indices.shape == (20, 10)
    missing = indices == -1
    assert missing.any() and np.all(np.isneginf(scores[missing])) and np.all(np.isfinite(scores[~missing]))
    assert np.all(missing[:, 1:] >= missing[:, :-1])  # missing slots last
    for i, row in enumerate(indices.tolist()):
        row = [j for j in row if j >= 0]
        assert i not in row and len(set(row)) == len(row)
    assert ClusteredIndex(x[:1]).self_search(3)[1].shape == (1, 0)
    with pytest.raises(ValueError, match="nlist=30 is more than the 20 vectors"):
        ClusteredIndex(x, nlist=30)


def test_default_approximate_mining_keeps_high_recall(monkeypatch, clustered_data):
    corpus = clustered_data[0]
    monkeypatch.setattr(search, "APPROXIMATE_FROM", 1000)
    assert search.resolve_kind(5000, "auto") == "clustered"
    approximate = mine_duplicates(corpus, None, 10)
    exact = mine_duplicates(corpus, None, 10, index="exact")
    found = {(i, j) for i, j, _ in approximate}
    assert len(found & {(i, j) for i, j, _ in exact}) >= 0.95 * len(exact)
    assert all(i < j for i, j in found)
    # The top pairs agree.
    assert [(i, j) for i, j, _ in approximate[:200]] == [(i, j) for i, j, _ in exact[:200]]


# ---------------------------------------------------------------------------------------------------------
# duplicate mining
# ---------------------------------------------------------------------------------------------------------
def planted() -> tuple[np.ndarray, dict[tuple[int, int], float]]:
    """Eight vectors in 6-D with known cosines; exactly four pairs reach 0.9."""
    e = np.eye(6)
    x = np.stack(
        [
            e[0],  # 0
            0.98 * e[0] + np.sqrt(1 - 0.98**2) * e[1],  # 1: cos(0, 1) = 0.98
            e[2],  # 2
            0.93 * e[2] + np.sqrt(1 - 0.93**2) * e[3],  # 3: cos(2, 3) = 0.93
            5 * (0.99 * e[2] + np.sqrt(1 - 0.99**2) * e[4]),  # 4: cos(2, 4) = 0.99, cos(3, 4) = 0.9207
            e[5],  # 5
            -e[0],  # 6: opposite of 0
            0.5 * e[0] + np.sqrt(0.75) * e[5],  # 7: cos(5, 7) = 0.866, just below
        ]
    )
    expected = {(2, 4): 0.99, (0, 1): 0.98, (2, 3): 0.93, (3, 4): 0.93 * 0.99}
    return x.astype(np.float32), expected


@pytest.mark.parametrize("index", ["exact", "clustered", "flat", "hnsw"])
def test_mine_duplicates_finds_the_planted_pairs(index):
    x, expected = planted()
    pairs = mine_duplicates(x, threshold=0.9, top_k=3, index=index)
    assert [(i, j) for i, j, _ in pairs] == list(expected)  # each once, i < j, best first
    for (i, j, score), want in zip(pairs, expected.values(), strict=True):
        assert score == pytest.approx(want, abs=1e-6)
        assert isinstance(i, int) and isinstance(j, int) and isinstance(score, float)


def test_mine_duplicates_top_k_bounds_what_is_found():
    x, _ = planted()
    # With one neighbour per row, 3 and 4 both pick 2: their own pair (0.92) is never looked at.
    pairs = mine_duplicates(x, threshold=0.9, top_k=1, index="exact")
    assert [(i, j) for i, j, _ in pairs] == [(2, 4), (0, 1), (2, 3)]


def test_mine_duplicates_approximate_branch_of_auto(monkeypatch):
    monkeypatch.setattr(search, "APPROXIMATE_FROM", 5)
    x, expected = planted()
    pairs = mine_duplicates(x, threshold=0.9, top_k=3)
    assert [(i, j) for i, j, _ in pairs] == list(expected)


def brute_mine(x, threshold, top_k, similarity):
    """Union of every row's top-k neighbour pairs (ties lowest index first), each once, best first."""
    s = score_matrix(x, x, similarity, exclude_self=True)
    _, neighbours = brute_topk(x, x, top_k, similarity, exclude_self=True)
    pairs = {}
    for i, row in enumerate(neighbours.tolist()):
        for j in row:
            if threshold is None or s[i, j] >= threshold:
                pairs[(min(i, j), max(i, j))] = s[i, j]
    return sorted(((i, j, v) for (i, j), v in pairs.items()), key=lambda p: (-p[2], p[0], p[1]))


@pytest.mark.parametrize("threshold, top_k", [(None, 1), (None, 3), (4.0, 2), (3.0, 39), (100.0, 5)])
@pytest.mark.parametrize("chunk_size", [7, 4096])
def test_mine_duplicates_dot_on_integers_equals_brute_force(threshold, top_k, chunk_size):
    x = small_integers(40, 3, seed=20)
    got = mine_duplicates(x, threshold, top_k, "dot", index="exact", chunk_size=chunk_size)
    assert got == [(i, j, float(v)) for i, j, v in brute_mine(x, threshold, top_k, "dot")]
    if top_k == 39:  # every pair is looked at: all pairs at or above the threshold
        s = score_matrix(x, x, "dot")
        assert len(got) == sum(s[i, j] >= threshold for i in range(40) for j in range(i + 1, 40))


def test_mine_duplicates_without_threshold_on_gaussians():
    x = gaussian(60, 8, seed=21)
    got = mine_duplicates(x, None, 2, index="exact")
    want = brute_mine(x, None, 2, "cosine")
    assert {(i, j) for i, j, _ in got} == {(i, j) for i, j, _ in want}
    assert all(i < j for i, j, _ in got)
    scores = [s for _, _, s in got]
    assert scores == sorted(scores, reverse=True)


def test_mine_duplicates_small_corpora():
    assert mine_duplicates(np.ones((1, 3), np.float32), index="exact") == []
    assert mine_duplicates(np.ones((1, 3), np.float32), index="flat") == []
    pairs = mine_duplicates(np.ones((2, 3), np.float32), index="exact")
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)] and pairs[0][2] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------
# grouping
# ---------------------------------------------------------------------------------------------------------
CHAINS_AND_TRIANGLE = [
    (2, 1, 0.95),  # chain 0 - 1 - 2 - 3: sums 0.9, 1.85, 1.85, 0.9
    (0, 1, 0.9),
    (3, 2, 0.9),
    (9, 12, 0.99),  # chain 5 - 7 - 9 - 12: sums 0.8, 1.65, 1.84, 0.99
    (5, 7, 0.8),
    (7, 9, 0.85),
    (4, 6, 0.9),  # triangle 4, 6, 8: sums 1.7, 1.6, 1.5
    (6, 8, 0.7),
    (8, 4, 0.8),
]  # 10 and 11 are alone


def test_cluster_duplicates_central():
    groups = cluster_duplicates(13, CHAINS_AND_TRIANGLE)
    assert groups == [
        DuplicateGroup([0, 1, 2, 3], 1),  # 1 and 2 tie at 1.85: the lower index
        DuplicateGroup([5, 7, 9, 12], 9),
        DuplicateGroup([4, 6, 8], 4),
    ]
    assert [g.size for g in groups] == [4, 4, 3]


def test_cluster_duplicates_first():
    groups = cluster_duplicates(13, CHAINS_AND_TRIANGLE, representative="first")
    assert [(g.members, g.representative) for g in groups] == [
        ([0, 1, 2, 3], 0),
        ([5, 7, 9, 12], 5),
        ([4, 6, 8], 4),
    ]


def test_cluster_duplicates_pairs_without_scores_and_empty():
    groups = cluster_duplicates(6, [(0, 4), (4, 5), (5, 1)])  # central = most links: 4 and 5 tie
    assert groups == [DuplicateGroup([0, 1, 4, 5], 4)]
    assert cluster_duplicates(3, []) == []


def test_mined_pairs_cluster_into_the_planted_groups():
    x, _ = planted()
    groups = cluster_duplicates(len(x), mine_duplicates(x, threshold=0.9, index="exact"))
    assert groups == [DuplicateGroup([2, 3, 4], 2), DuplicateGroup([0, 1], 0)]


@pytest.mark.parametrize(
    "pairs, message",
    [
        ([(0, 5, 1.0)], r"indices must be in \[0, 5\)"),
        ([(2, 2, 1.0)], "its own duplicate"),
        ([(0,)], r"expected \(i, j, score\) or \(i, j\)"),
    ],
)
def test_cluster_duplicates_errors(pairs, message):
    with pytest.raises(ValueError, match=message):
        cluster_duplicates(5, pairs)


def test_cluster_duplicates_unknown_representative_lists_the_choices():
    with pytest.raises(ConfigError, match="valid representatives: central, first"):
        cluster_duplicates(3, [(0, 1, 1.0)], representative="medoid")


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
