"""Fixtures shared by the search tests: one thread (opted into per module) and clustered data with its exact
top-10."""

from __future__ import annotations

import pytest
import torch

from sbert_siamese.search import exact_topk

from .brute_force import clustered


@pytest.fixture(scope="module")
def one_thread():
    """Few threads (a shared machine) and deterministic faiss builds; restored afterwards."""
    import faiss

    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(faiss_threads)


@pytest.fixture(scope="module")
def clustered_data(one_thread):
    """A (5000, 64) corpus around 200 centres, (300, 64) queries, and the queries' exact top-10."""
    corpus, queries = clustered(5000, seed=1), clustered(300, seed=2)
    return corpus, queries, exact_topk(queries, corpus, 10)
