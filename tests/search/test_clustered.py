"""The clustered index (k-means lists searched by matrix products): exact when every list is probed, recall
and determinism of its self-search, and lists too small for k."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese.search import ClusteredIndex, build_index, exact_topk, recall_at_k
from sbert_siamese.search import clustered as clustered_module

from .brute_force import brute_topk, gaussian

# Few threads on a shared machine, deterministic faiss builds (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("chunk_size", [7, 4096])
def test_clustered_probing_every_list_is_exact(monkeypatch, similarity, chunk_size):
    # Every list probed: every pair is scored once per side, so the top-k is the exact one. A pool of
    # one candidate forces a reduction after every block; chunk 7 splits lists and their queries.
    monkeypatch.setattr(clustered_module, "CANDIDATE_POOL", 1)
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
    assert index.nlist == clustered_module.clustered_nlist(5000) == 113 and index.nprobe == 20
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
