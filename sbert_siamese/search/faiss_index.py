"""faiss indexes behind the ``SearchIndex`` interface: ``flat`` (exact), ``ivf`` and ``hnsw``.

faiss is imported only when one of these kinds is built; the exact and clustered kinds never need it. All
are inner-product indexes: for cosine they hold L2-normalised copies and normalise the queries the same way.
The IVF centroids come from the clustered index's sampled k-means, much faster than faiss's own training.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from .base import Embeddings, SearchIndex, _as_array, _check_dims, _check_k, _normalise_array
from .clustered import KMEANS_ITERATIONS, KMEANS_SAMPLE_PER_LIST, _kmeans, clustered_nlist

logger = logging.getLogger(__name__)

# ivf searches nlist / IVF_NPROBE_FRACTION lists per query, at least MIN_NPROBE: more than clustered's
# CLUSTERED_NPROBE, as faiss's IVF finds a pair from one side only.
IVF_NPROBE_FRACTION = 10
MIN_NPROBE = 16
# hnsw: at 100k sentence embeddings M 32 / efConstruction 64 / efSearch 64 takes 18 s for recall@10 0.988;
# the former 32 / 200 / 128 took 58 s for 0.999, 16 / 40 / 32 takes 8 s for 0.949.
DEFAULT_HNSW_M = 32
DEFAULT_EF_CONSTRUCTION = 64
DEFAULT_EF_SEARCH = 64


def _import_faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "approximate search needs faiss: `pip install faiss-cpu` (or faiss-gpu), or use kind='exact'"
        ) from err
    return faiss


class FaissIndex(SearchIndex):
    """A faiss inner-product index (``flat``, ``ivf`` or ``hnsw``); build it with ``build_index``.

    ``nprobe`` (ivf) and ``ef_search`` (hnsw) are read at every search and may be changed between searches.
    An approximate search can find fewer than k hits for a query: missing slots hold index -1, score -inf.
    """

    def __init__(self, index: Any, kind: str, similarity: str, nprobe: int | None, ef_search: int | None):
        self.index = index  # the faiss index itself
        self.kind = kind
        self.similarity = similarity
        self.dim = int(index.d)
        self.nprobe = nprobe
        self.ef_search = ef_search

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: Embeddings, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(_check_k(k), len(self))
        q = _as_array(queries, "queries")
        _check_dims(q, self.dim)
        if self.similarity == "cosine":
            _normalise_array(q)
        if self.kind == "ivf":
            self.index.nprobe = min(_check_k(self.nprobe, "nprobe"), self.index.nlist)
        elif self.kind == "hnsw":
            self.index.hnsw.efSearch = max(_check_k(self.ef_search, "ef_search"), k)
        scores, indices = self.index.search(q, k)
        scores = scores.astype(np.float32, copy=False)
        scores[indices < 0] = -np.inf
        return scores, indices.astype(np.int64, copy=False)


def ivf_nlist(n: int) -> int:
    """Default IVF list count: ``clustered_nlist(n)``."""
    return clustered_nlist(n)


def ivf_nprobe(nlist: int) -> int:
    """Default lists searched per IVF query: nlist / IVF_NPROBE_FRACTION, in [MIN_NPROBE, nlist]."""
    return min(nlist, max(MIN_NPROBE, nlist // IVF_NPROBE_FRACTION))


def _build_faiss_index(
    embeddings: Embeddings,
    kind: str,
    similarity: str,
    *,
    nlist: int | None,
    nprobe: int | None,
    hnsw_m: int,
    ef_construction: int,
    ef_search: int,
    chunk_size: int,
) -> FaissIndex:
    """A ``flat``, ``ivf`` or ``hnsw`` index over (N, D) ``embeddings``; ``build_index`` documents the kinds
    and options (``similarity`` and ``kind`` are checked there)."""
    faiss = _import_faiss()
    x = _as_array(embeddings, "embeddings")
    if similarity == "cosine":
        _normalise_array(x)
    n, d = x.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        nlist = ivf_nlist(n) if nlist is None else _check_k(nlist, "nlist")
        if nlist > n:
            raise ValueError(f"nlist={nlist} is more than the {n} vectors to train on")
        nprobe = ivf_nprobe(nlist) if nprobe is None else _check_k(nprobe, "nprobe")
        quantizer = faiss.IndexFlatIP(d)
        with torch.inference_mode():
            sample = min(n, KMEANS_SAMPLE_PER_LIST * nlist)
            quantizer.add(_kmeans(torch.from_numpy(x), nlist, KMEANS_ITERATIONS, sample, chunk_size).numpy())
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)  # trained: has centroids
        logger.debug("ivf: %d lists for %d vectors, nprobe=%d", nlist, n, nprobe)
    else:  # hnsw
        index = faiss.IndexHNSWFlat(d, _check_k(hnsw_m, "hnsw_m"), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = _check_k(ef_construction, "ef_construction")
        _check_k(ef_search, "ef_search")
    index.add(x)
    return FaissIndex(index, kind, similarity, nprobe=nprobe, ef_search=ef_search)
