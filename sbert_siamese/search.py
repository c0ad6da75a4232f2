"""Nearest-neighbour search over embeddings: exact chunked top-k, faiss indexes, duplicate mining, grouping.

Every search returns ``(scores, indices)``: (Q, k) float32 and int64 numpy arrays, best first, where the
score is a *similarity* (larger = closer):

| similarity | score                              |
| ---------- | ---------------------------------- |
| ``cosine`` | cos(q, c): both L2-normalised, dot |
| ``dot``    | q . c                              |

Embeddings are (N, D) numpy arrays or torch tensors; inputs are never modified.

- ``exact_topk``: chunked matrix products, peak memory ``chunk_size x chunk_size`` scores, not Q x N.
- ``build_index``: ``exact`` (``exact_topk``), or a faiss ``flat`` / ``ivf`` / ``hnsw`` index; ``auto`` is
  exact below ``APPROXIMATE_FROM`` vectors and hnsw from there on.
- ``mine_duplicates``: all-pairs near-duplicate search over one corpus ("paraphrase mining").
- ``cluster_duplicates``: connected components of the mined pairs, with a representative per group.
- ``recall_at_k``: how much of the exact top-k an approximate search found.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

logger = logging.getLogger(__name__)

Embeddings = np.ndarray | torch.Tensor

SIMILARITIES = ("cosine", "dot")
KINDS = ("auto", "exact", "flat", "ivf", "hnsw")
REPRESENTATIVES = ("central", "first")

# ``kind="auto"`` uses exact search below this many corpus vectors and hnsw from here on. Measured by
# benchmarks/bench_dedup.py (2 cores, 384-d, top-10 self-search): exact 20.5 s vs hnsw 23.3 s at 50k, 82 s vs
# 58 s at 100k (hnsw recall@10 0.999); exact grows as N^2, hnsw about as N, so they cross near 65k.
APPROXIMATE_FROM = 65_000
# Rows and columns of one block of scores in exact search: a 4096 x 4096 float32 block is 64 MiB.
DEFAULT_CHUNK_SIZE = 4096
# IVF: nlist = 4 sqrt(N), but at most N / 39 (faiss's minimum of 39 training points per centroid);
# nprobe = nlist / 16 lists searched, at least MIN_NPROBE: 1/16 of the corpus per query once nlist >= 512.
IVF_MIN_POINTS_PER_LIST = 39
MIN_NPROBE = 32
DEFAULT_HNSW_M = 32
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 128

EPS = 1e-12


# ------------------------------------------------------------------------------------------ validation
def _check_similarity(similarity: str) -> str:
    if similarity not in SIMILARITIES:
        raise ConfigError(f"unknown similarity {similarity!r}; valid similarities: {', '.join(SIMILARITIES)}")
    return similarity


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return kind


def _check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def _check_chunk_size(chunk_size: int) -> int:
    return _check_k(chunk_size, "chunk_size")


def _as_tensor(x: Embeddings, name: str) -> torch.Tensor:
    """``x`` as a validated float32 (N, D) tensor (a view where possible: callers must not write to it)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x), dtype=np.float32))
    if t.ndim != 2:
        hint = " (use x.reshape(1, -1) for a single vector)" if t.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {tuple(t.shape)}{hint}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}; expected at least one row and column")
    t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _as_array(x: Embeddings, name: str) -> np.ndarray:
    """A float32 C-contiguous (N, D) numpy copy of ``x``, validated (faiss's input)."""
    t = _as_tensor(x, name)
    return np.array(t.cpu().numpy(), dtype=np.float32, order="C", copy=True)


def _check_dims(queries: torch.Tensor | np.ndarray, dim: int) -> None:
    if queries.shape[1] != dim:
        raise ValueError(f"queries have dimension {queries.shape[1]}, the corpus has {dim}")


def _normalise_array(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in place (zero rows stay zero)."""
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)
    return x


# ------------------------------------------------------------------------------------------ exact search
def _block_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of each row of a (R, C) block, sorted by score descending then column ascending."""
    values, positions = sims.topk(k, dim=1)
    # topk picks arbitrarily among values tied at the cut; such rows are redone with a stable full sort.
    crowded = (sims >= values[:, -1:]).sum(dim=1) > k
    if bool(crowded.any()):
        rows = crowded.nonzero(as_tuple=True)[0]
        v, p = sims[rows].sort(dim=1, descending=True, stable=True)
        values[rows], positions[rows] = v[:, :k], p[:, :k]
    # Order ties inside the selection by column: sort by column, then stably by score.
    positions, order = positions.sort(dim=1)
    values = values.gather(1, order)
    values, order = values.sort(dim=1, descending=True, stable=True)
    return values, positions.gather(1, order)


def _exact_topk(
    queries: torch.Tensor, corpus: torch.Tensor, k: int, chunk_size: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``exact_topk`` on prepared (normalised if cosine) tensors; ``k`` already clipped."""
    n_queries, n_corpus = queries.shape[0], corpus.shape[0]
    if k == 0:
        return np.zeros((n_queries, 0), np.float32), np.zeros((n_queries, 0), np.int64)
    queries = queries.to(corpus.device)
    all_scores, all_indices = [], []
    with torch.inference_mode():
        for q0 in range(0, n_queries, chunk_size):
            q1 = min(q0 + chunk_size, n_queries)
            best_v = torch.empty((q1 - q0, 0), dtype=torch.float32, device=corpus.device)
            best_i = torch.empty((q1 - q0, 0), dtype=torch.int64, device=corpus.device)
            for c0 in range(0, n_corpus, chunk_size):
                c1 = min(c0 + chunk_size, n_corpus)
                sims = queries[q0:q1] @ corpus[c0:c1].T  # (R, C): the only block of scores in memory
                if exclude_self:
                    lo, hi = max(q0, c0), min(q1, c1)
                    if lo < hi:
                        same = torch.arange(lo, hi, device=sims.device)
                        sims[same - q0, same - c0] = float("-inf")
                v, p = _block_topk(sims, min(k, c1 - c0))
                # Merge: earlier blocks hold lower indices, so a stable sort keeps ties lowest-index-first.
                merged_v = torch.cat([best_v, v], dim=1)
                merged_i = torch.cat([best_i, p + c0], dim=1)
                merged_v, order = merged_v.sort(dim=1, descending=True, stable=True)
                best_v, best_i = merged_v[:, :k], merged_i.gather(1, order[:, :k])
            all_scores.append(best_v.cpu())
            all_indices.append(best_i.cpu())
    return torch.cat(all_scores).numpy(), torch.cat(all_indices).numpy()


def _prepare(x: Embeddings, name: str, similarity: str) -> torch.Tensor:
    t = _as_tensor(x, name)
    return F.normalize(t, dim=1, eps=EPS) if similarity == "cosine" else t


def exact_topk(
    queries: Embeddings,
    corpus: Embeddings,
    k: int,
    similarity: str = "cosine",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar corpus rows for each query, by brute force in blocks.

    Scores are computed ``chunk_size`` queries x ``chunk_size`` corpus rows at a time and each block's top-k
    is merged into a running top-k, so memory stays at one block whatever Q and N are. Torch tensors are
    searched on their device; the result is always numpy.

    Args:
        queries: (Q, D) embeddings.
        corpus: (N, D) embeddings.
        k: neighbours per query; clipped to N (to N - 1 with ``exclude_self``).
        similarity: ``"cosine"`` or ``"dot"``.
        chunk_size: rows and columns of one block of scores.
        exclude_self: ``queries`` are the corpus (row i of one is row i of the other): skip i == i.

    Returns:
        ``(scores, indices)``, (Q, k) float32 and int64, best first; equal scores are ordered by index.
    """
    _check_similarity(similarity)
    k = _check_k(k)
    chunk_size = _check_chunk_size(chunk_size)
    corpus_t = _prepare(corpus, "corpus", similarity)
    queries_t = corpus_t if queries is corpus else _prepare(queries, "queries", similarity)
    _check_dims(queries_t, corpus_t.shape[1])
    n = corpus_t.shape[0]
    if exclude_self and queries_t.shape[0] != n:
        raise ValueError(
            f"exclude_self needs the queries to be the corpus, but there are {queries_t.shape[0]} queries "
            f"and {n} corpus rows"
        )
    available = n - 1 if exclude_self else n
    if k > available:
        logger.debug("k=%d clipped to the %d corpus rows available", k, available)
    return _exact_topk(queries_t, corpus_t, min(k, available), chunk_size, exclude_self)


# ------------------------------------------------------------------------------------------ indexes
def _import_faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "approximate search needs faiss: `pip install faiss-cpu` (or faiss-gpu), or use kind='exact'"
        ) from err
    return faiss


class SearchIndex:
    """A searchable corpus: ``search(queries, k) -> (scores, indices)``, the contract of ``exact_topk``.

    Attributes: ``kind`` (the resolved kind, never ``"auto"``), ``similarity``, ``dim``, ``len(index)``.
    """

    kind: str
    similarity: str
    dim: int

    def __len__(self) -> int:
        raise NotImplementedError

    def search(self, queries: Embeddings, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) float32 scores and int64 indices, best first; ``k`` is clipped to the corpus size."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, similarity={self.similarity!r}, n={len(self)})"


class ExactIndex(SearchIndex):
    """Brute-force search with ``exact_topk``; no faiss needed. Holds a float32 copy of the corpus."""

    def __init__(
        self, embeddings: Embeddings, similarity: str = "cosine", chunk_size: int = DEFAULT_CHUNK_SIZE
    ):
        self.kind = "exact"
        self.similarity = _check_similarity(similarity)
        self.chunk_size = _check_chunk_size(chunk_size)
        corpus = _prepare(embeddings, "embeddings", similarity)
        # Own copy, as faiss indexes have: later changes to the caller's array do not reach the index.
        self._corpus = corpus.clone() if similarity == "dot" else corpus
        self.dim = int(corpus.shape[1])

    def __len__(self) -> int:
        return int(self._corpus.shape[0])

    def search(self, queries: Embeddings, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = _check_k(k)
        q = _prepare(queries, "queries", self.similarity)
        _check_dims(q, self.dim)
        return _exact_topk(q, self._corpus, min(k, len(self)), self.chunk_size, exclude_self=False)


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
    """Default IVF list count: 4 sqrt(N), capped at N / 39 so every centroid gets enough training points."""
    return max(1, min(round(4 * math.sqrt(n)), n // IVF_MIN_POINTS_PER_LIST))


def ivf_nprobe(nlist: int) -> int:
    """Default lists searched per IVF query: nlist / 16, at least ``MIN_NPROBE``, at most nlist."""
    return min(nlist, max(MIN_NPROBE, nlist // 16))


def resolve_kind(n: int, kind: str) -> str:
    """The concrete index kind for ``n`` vectors: ``auto`` is exact below ``APPROXIMATE_FROM``, else hnsw."""
    _check_kind(kind)
    if kind != "auto":
        return kind
    chosen = "exact" if n < APPROXIMATE_FROM else "hnsw"
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
        - ``flat``: faiss ``IndexFlatIP`` (exact, faiss's kernels).
        - ``ivf``: faiss ``IndexIVFFlat``, inner product, ``nlist`` lists (default ``ivf_nlist(N)``),
          k-means trained on the data (faiss samples at most 256 points per list); searches ``nprobe``
          lists (default ``ivf_nprobe(nlist)``).
        - ``hnsw``: faiss ``IndexHNSWFlat``, inner product, ``hnsw_m`` links per node, ``ef_construction``
          and ``ef_search`` (raised to k when smaller) candidate-list sizes.
        - ``auto``: ``exact`` below ``APPROXIMATE_FROM`` vectors, else ``hnsw``.

    For cosine, the index holds L2-normalised copies and queries are normalised the same way.
    """
    _check_similarity(similarity)
    _check_kind(kind)
    kind = resolve_kind(len(embeddings), kind)
    if kind == "exact":
        return ExactIndex(embeddings, similarity, chunk_size)

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
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x)
        logger.debug("ivf: %d lists for %d vectors, nprobe=%d", nlist, n, nprobe)
    else:  # hnsw
        index = faiss.IndexHNSWFlat(d, _check_k(hnsw_m, "hnsw_m"), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = _check_k(ef_construction, "ef_construction")
        _check_k(ef_search, "ef_search")
    index.add(x)
    return FaissIndex(index, kind, similarity, nprobe=nprobe, ef_search=ef_search)


# ------------------------------------------------------------------------------------------ duplicates
def mine_duplicates(
    embeddings: Embeddings,
    threshold: float | None = None,
    top_k: int = 10,
    similarity: str = "cosine",
    index: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    index_options: Mapping[str, Any] | None = None,
) -> list[tuple[int, int, float]]:
    """Near-duplicate pairs inside one corpus ("paraphrase mining"), from each row's ``top_k`` neighbours.

    A pair is found when either member has the other among its ``top_k`` nearest (itself excluded), so a
    row with more than ``top_k`` near-duplicates can miss some; raise ``top_k`` for dense groups.

    Args:
        embeddings: (N, D) embeddings.
        threshold: keep pairs scoring at least this; ``None`` keeps every top-k neighbour pair.
        top_k: neighbours looked at per row.
        similarity: ``"cosine"`` or ``"dot"``.
        index: a ``build_index`` kind; ``exact`` / ``auto`` below ``APPROXIMATE_FROM`` search exactly.
        chunk_size: block size for exact search.
        index_options: extra ``build_index`` keywords (``nprobe``, ``ef_search``, ...).

    Returns:
        ``(i, j, score)`` with i < j, each unordered pair once (with the larger of its two directions'
        scores), sorted by score descending, then i, then j.
    """
    _check_similarity(similarity)
    _check_kind(index)
    top_k = _check_k(top_k, "top_k")
    search_index = build_index(embeddings, index, similarity, chunk_size=chunk_size, **(index_options or {}))
    n = len(search_index)
    if search_index.kind == "exact":
        corpus = search_index._corpus  # already prepared: searched against itself, without copies
        scores, neighbours = _exact_topk(corpus, corpus, min(top_k, n - 1), chunk_size, exclude_self=True)
        keep = np.ones(neighbours.shape, dtype=bool)
    else:
        # One extra neighbour for the row itself, then drop self hits and misses, keeping top_k per row.
        scores, neighbours = search_index.search(embeddings, top_k + 1)
        keep = (neighbours != np.arange(n)[:, None]) & (neighbours >= 0)
        keep &= np.cumsum(keep, axis=1) <= top_k
    if threshold is not None:
        keep &= scores >= threshold
    rows = np.broadcast_to(np.arange(n)[:, None], neighbours.shape)[keep]
    cols, vals = neighbours[keep], scores[keep]
    first, second = np.minimum(rows, cols), np.maximum(rows, cols)
    # Each pair once: for the same (i, j), keep the larger score.
    order = np.lexsort((-vals, second, first))
    first, second, vals = first[order], second[order], vals[order]
    unique = np.ones(len(first), dtype=bool)
    unique[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    first, second, vals = first[unique], second[unique], vals[unique]
    order = np.lexsort((second, first, -vals))
    return [
        (int(i), int(j), float(s)) for i, j, s in zip(first[order], second[order], vals[order], strict=True)
    ]


@dataclass
class DuplicateGroup:
    """A connected group of duplicates: ``members`` in ascending order and the one chosen to keep."""

    members: list[int]
    representative: int

    @property
    def size(self) -> int:
        return len(self.members)


def cluster_duplicates(
    n: int,
    pairs: Iterable[tuple[int, int, float] | tuple[int, int]],
    representative: str = "central",
) -> list[DuplicateGroup]:
    """Groups of duplicates: the connected components (size >= 2) of ``pairs`` over items ``0 .. n-1``.

    Args:
        n: number of items.
        pairs: ``(i, j, score)`` as ``mine_duplicates`` returns them (each pair once); ``(i, j)`` counts
            as score 1.
        representative: ``"central"``: the member with the highest sum of its pair scores (ties: lowest
            index); ``"first"``: the lowest index.

    Returns:
        Groups sorted by size descending, then representative ascending.
    """
    if representative not in REPRESENTATIVES:
        raise ConfigError(
            f"unknown representative {representative!r}; valid representatives: {', '.join(REPRESENTATIVES)}"
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    parent = list(range(n))
    size = [1] * n
    strength = [0.0] * n

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for number, pair in enumerate(pairs):
        if len(pair) not in (2, 3):
            raise ValueError(f"pair {number} is {pair!r}; expected (i, j, score) or (i, j)")
        i, j = int(pair[0]), int(pair[1])
        score = float(pair[2]) if len(pair) == 3 else 1.0
        if not (0 <= i < n and 0 <= j < n):
            raise ValueError(f"pair {number} is {pair!r}; indices must be in [0, {n})")
        if i == j:
            raise ValueError(f"pair {number} is {pair!r}; an item cannot be its own duplicate")
        strength[i] += score
        strength[j] += score
        a, b = find(i), find(j)
        if a != b:
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a
            size[a] += size[b]

    members: dict[int, list[int]] = {}
    for x in range(n):
        if size[find(x)] > 1:
            members.setdefault(find(x), []).append(x)  # ascending, as x is
    groups = []
    for group in members.values():
        chosen = group[0] if representative == "first" else max(group, key=lambda x: (strength[x], -x))
        groups.append(DuplicateGroup(group, chosen))
    groups.sort(key=lambda g: (-g.size, g.representative))
    return groups


# ------------------------------------------------------------------------------------------ evaluation
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
