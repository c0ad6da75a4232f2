"""Choosing and building an index: ``build_index`` over the ``exact``, ``clustered`` and faiss kinds,
``kind="auto"`` (``resolve_kind``), and ``recall_at_k`` to measure an approximate kind against exact search.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .base import Embeddings, SearchIndex, _check_similarity
from .clustered import ClusteredIndex
from .exact import DEFAULT_CHUNK_SIZE, ExactIndex
from .faiss_index import DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_HNSW_M, _build_faiss_index

logger = logging.getLogger(__name__)

KINDS = ("auto", "exact", "clustered", "flat", "ivf", "hnsw")

# ``kind="auto"`` uses exact search below this many corpus vectors and clustered search from here on.
# Measured (2 cores, all-MiniLM-L6-v2 384-d, top-10 self-search, see benchmarks/bench_dedup.py): exact 0.37 s
# vs clustered 0.31 s at 10k, 1.2 s vs 0.67 s at 20k, 2.6 s vs 1.2 s at 30k (clustered recall@10 0.97).
# Below 20k exact search takes about a second and is exact; from there on clustered is at least twice as
# fast, and it grows about as N^1.5 against exact's N^2.
APPROXIMATE_FROM = 20_000


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return kind


def resolve_kind(n: int, kind: str) -> str:
    """The concrete kind for ``n`` vectors: ``auto`` is exact below ``APPROXIMATE_FROM``, else clustered."""
    _check_kind(kind)
    if kind != "auto":
        return kind
    chosen = "exact" if n < APPROXIMATE_FROM else "clustered"
    logger.debug("kind='auto' -> %r for %d vectors (APPROXIMATE_FROM=%d)", chosen, n, APPROXIMATE_FROM)
    return chosen


def build_index(
    embeddings: Embeddings,
    kind: str = "auto",
    similarity: str = "cosine",
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = DEFAULT_HNSW_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef_search: int = DEFAULT_EF_SEARCH,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SearchIndex:
    """An index over (N, D) ``embeddings`` whose ``.search(queries, k)`` returns ``(scores, indices)``.

    Kinds:
        - ``exact``: ``exact_topk`` in blocks of ``chunk_size``; no faiss.
        - ``clustered``: ``ClusteredIndex``, k-means lists searched by matrix products, ``nlist`` lists
          (default ``clustered_nlist(N)``), ``nprobe`` searched per query (default ``clustered_nprobe``);
          no faiss.
        - ``flat``: faiss ``IndexFlatIP`` (exact, faiss's kernels).
        - ``ivf``: faiss ``IndexIVFFlat``, inner product, ``nlist`` lists (default ``ivf_nlist(N)``), the
          centroids from the same sampled k-means as ``clustered`` (much faster than faiss's training);
          searches ``nprobe`` lists (default ``ivf_nprobe(nlist)``).
        - ``hnsw``: faiss ``IndexHNSWFlat``, inner product, ``hnsw_m`` links per node, ``ef_construction``
          and ``ef_search`` (raised to k when smaller) candidate-list sizes.
        - ``auto``: ``exact`` below ``APPROXIMATE_FROM`` vectors, else ``clustered``.

    For cosine, the index holds L2-normalised copies and queries are normalised the same way.
    """
    _check_similarity(similarity)
    _check_kind(kind)
    kind = resolve_kind(len(embeddings), kind)
    if kind == "exact":
        return ExactIndex(embeddings, similarity, chunk_size)
    if kind == "clustered":
        return ClusteredIndex(embeddings, similarity, nlist, nprobe, chunk_size)
    return _build_faiss_index(
        embeddings,
        kind,
        similarity,
        nlist=nlist,
        nprobe=nprobe,
        hnsw_m=hnsw_m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        chunk_size=chunk_size,
    )


def recall_at_k(approx_indices: Sequence | np.ndarray, exact_indices: Sequence | np.ndarray) -> float:
    """Mean over queries of the fraction of the exact top-k (entries >= 0) found in the approximate top-k.

    Both are (Q, k)-shaped index arrays (the approximate one may have another k); -1 entries are ignored.
    Queries with no exact neighbours are left out of the mean.
    """
    approx = np.asarray(approx_indices, dtype=np.int64)
    exact = np.asarray(exact_indices, dtype=np.int64)
    if approx.ndim != 2 or exact.ndim != 2:
        raise ValueError(f"expected 2-D (Q, k) index arrays, got shapes {approx.shape} and {exact.shape}")
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(
            f"approximate results have {approx.shape[0]} queries, exact results {exact.shape[0]}"
        )
    valid = exact >= 0
    counts = valid.sum(axis=1)
    if not counts.any():
        raise ValueError("the exact results hold no neighbours to recall")
    # One key per (query, index): membership for all rows at once, without a Q x k x k comparison.
    base = int(max(approx.max(initial=0), exact.max(initial=0))) + 2
    rows = np.arange(exact.shape[0], dtype=np.int64)[:, None] * base
    found = np.isin(rows + exact + 1, (rows + approx + 1)[approx >= 0]) & valid
    has = counts > 0
    return float(np.mean(found.sum(axis=1)[has] / counts[has]))
