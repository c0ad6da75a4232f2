"""faiss indexes (``flat``, ``ivf``, ``hnsw``): flat against exact search, IVF's defaults and settings,
cosine on normalised copies, the error when faiss is missing, and the search contract's errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sbert_siamese.search import build_index, recall_at_k
from sbert_siamese.search.faiss_index import ivf_nlist, ivf_nprobe

from .brute_force import assert_valid_topk, clustered, gaussian, score_matrix

# Few threads on a shared machine, deterministic faiss builds (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def test_flat_equals_exact_on_clustered_data(clustered_data):
    corpus, queries, (exact_scores, exact_indices) = clustered_data
    scores, indices = build_index(corpus, "flat").search(queries, 10)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    assert recall_at_k(indices, exact_indices) >= 0.999


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
