"""Duplicate mining and grouping on hand-made examples whose answers are known, against a brute-force union
of every row's top-k, and the approximate (clustered) mining by recall against exact mining."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese.errors import ConfigError
from sbert_siamese.search import DuplicateGroup, cluster_duplicates, mine_duplicates, resolve_kind
from sbert_siamese.search import index as index_module

from .brute_force import brute_topk, gaussian, score_matrix, small_integers

# Few threads on a shared machine, deterministic faiss builds (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


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
    monkeypatch.setattr(index_module, "APPROXIMATE_FROM", 5)
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


def test_default_approximate_mining_keeps_high_recall(monkeypatch, clustered_data):
    corpus = clustered_data[0]
    monkeypatch.setattr(index_module, "APPROXIMATE_FROM", 1000)
    assert resolve_kind(5000, "auto") == "clustered"
    approximate = mine_duplicates(corpus, None, 10)
    exact = mine_duplicates(corpus, None, 10, index="exact")
    found = {(i, j) for i, j, _ in approximate}
    assert len(found & {(i, j) for i, j, _ in exact}) >= 0.95 * len(exact)
    assert all(i < j for i, j in found)
    # The top pairs agree.
    assert [(i, j) for i, j, _ in approximate[:200]] == [(i, j) for i, j, _ in exact[:200]]


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
