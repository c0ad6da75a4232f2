"""Nearest-neighbour search over embeddings: exact chunked top-k, faiss indexes, duplicate mining, grouping.

Every search returns ``(scores, indices)``: (Q, k) float32 and int64 numpy arrays, best first, where the
score is a *similarity* (larger = closer):

| similarity | score                              |
| ---------- | ---------------------------------- |
| ``cosine`` | cos(q, c): both L2-normalised, dot |
| ``dot``    | q . c                              |

Embeddings are (N, D) numpy arrays or torch tensors; inputs are never modified.

- ``exact_topk``: chunked matrix products, peak memory ``chunk_size x chunk_size`` scores, not Q x N; a
  corpus searched against itself computes only the blocks on and above the diagonal.
- ``build_index``: ``exact`` (``exact_topk``), ``clustered`` (k-means lists searched by matrix products,
  ``ClusteredIndex``), or a faiss ``flat`` / ``ivf`` / ``hnsw`` index; ``auto`` is exact below
  ``APPROXIMATE_FROM`` vectors and clustered from there on.
- ``mine_duplicates``: all-pairs near-duplicate search over one corpus ("paraphrase mining").
- ``cluster_duplicates``: connected components of the mined pairs, with a representative per group.
- ``recall_at_k``: how much of the exact top-k an approximate search found.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

logger = logging.getLogger(__name__)

Embeddings = np.ndarray | torch.Tensor

SIMILARITIES = ("cosine", "dot")
KINDS = ("auto", "exact", "clustered", "flat", "ivf", "hnsw")
REPRESENTATIVES = ("central", "first")

# ``kind="auto"`` uses exact search below this many corpus vectors and clustered search from here on.
# Measured (2 cores, all-MiniLM-L6-v2 384-d, top-10 self-search, see benchmarks/bench_dedup.py): exact 0.37 s
# vs clustered 0.31 s at 10k, 1.2 s vs 0.67 s at 20k, 2.6 s vs 1.2 s at 30k (clustered recall@10 0.97).
# Below 20k exact search takes about a second and is exact; from there on clustered is at least twice as
# fast, and it grows about as N^1.5 against exact's N^2.
APPROXIMATE_FROM = 20_000
# Rows and columns of one block of scores in exact search: a 4096 x 4096 float32 block is 64 MiB. 8192 is
# ~10% faster on 2 cores (fewer, longer top-k rows) for 4x the memory; 2048 ~20% slower.
DEFAULT_CHUNK_SIZE = 4096
# Columns per run in the two-stage top-k of a block of scores (see _block_topk); 16 to 32 measure the same.
TOPK_GROUP = 32
# Columns per run when picking the scores above a row's k-th best (see _hits).
HITS_GROUP = 16
# clustered (and faiss ivf): nlist = LISTS_PER_SQRT sqrt(N) k-means lists (at most N / MIN_POINTS_PER_LIST),
# trained on KMEANS_SAMPLE_PER_LIST points per list, KMEANS_ITERATIONS rounds. clustered searches
# CLUSTERED_NPROBE lists per row (recall@10 0.95-0.97 on sentence embeddings at 10k-100k, where 16 gives
# 0.95-0.96 and 24 0.96-0.97); faiss ivf, which finds pairs from one side only, nlist / 10 (at least 16).
LISTS_PER_SQRT = 1.6
MIN_POINTS_PER_LIST = 39
CLUSTERED_NPROBE = 20
IVF_NPROBE_FRACTION = 10
MIN_NPROBE = 16
KMEANS_SAMPLE_PER_LIST = 32
KMEANS_ITERATIONS = 10
KMEANS_SEED = 0
# exact self-search: a chunk's candidates are merged into its top-k once they number SELF_POOL x its top-k.
SELF_POOL = 4
# clustered: candidates pooled before they are reduced into the running top-k (at least N k).
CANDIDATE_POOL = 1 << 22
# hnsw: at 100k sentence embeddings M 32 / efConstruction 64 / efSearch 64 takes 18 s for recall@10 0.988;
# the former 32 / 200 / 128 took 58 s for 0.999, 16 / 40 / 32 takes 8 s for 0.949.
DEFAULT_HNSW_M = 32
DEFAULT_EF_CONSTRUCTION = 64
DEFAULT_EF_SEARCH = 64

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
def _group_max(scores: torch.Tensor, group: int) -> torch.Tensor:
    """(R, ceil(C / group)): the maximum of each run of ``group`` columns of a (R, C) block (any strides)."""
    if scores.stride(1) != 1 and scores.stride(0) == 1:  # a transposed block: reduce in its memory order
        return _group_max_of_rows(scores.T, group).T.contiguous()
    n_cols = scores.shape[1]
    whole = n_cols - n_cols % group
    parts = []
    if whole:
        parts.append(scores[:, :whole].unflatten(1, (whole // group, group)).amax(dim=2))
    if whole < n_cols:
        parts.append(scores[:, whole:].amax(dim=1, keepdim=True))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _group_max_of_rows(scores: torch.Tensor, group: int) -> torch.Tensor:
    """(ceil(R / group), C): the maximum of each run of ``group`` rows of a row-major (R, C) block."""
    n_rows = scores.shape[0]
    whole = n_rows - n_rows % group
    parts = []
    if whole:
        parts.append(scores[:whole].unflatten(0, (whole // group, group)).amax(dim=1))
    if whole < n_rows:
        parts.append(scores[whole:].amax(dim=0, keepdim=True))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def _tied_topk(rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of rows tied at the cut: all scores above the k-th, then the lowest columns at it."""
    cut = rows.topk(k, dim=1).values[:, -1:]
    above = rows > cut
    tied = rows == cut
    take = above | (tied & (tied.cumsum(dim=1) <= k - above.sum(dim=1, keepdim=True)))
    positions = take.nonzero()[:, 1].view(-1, k)  # row-major: each row's columns ascending
    return rows.gather(1, positions), positions


def _block_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` (<= C) of each row of a (R, C) block (any strides), by score descending, column ascending.

    Where k is small against C, in two stages: the maxima of runs of ``TOPK_GROUP`` columns, the k best
    runs, then the top k of their k x TOPK_GROUP scores, which hold the row's top k whenever the k-th and
    (k+1)-th best runs differ. Rows with a tie at either cut are redone exactly by ``_tied_topk``.
    """
    n_cols = sims.shape[1]
    if k == n_cols:
        values, positions = sims.topk(k, dim=1)
    else:
        group = TOPK_GROUP
        if k * group * 4 <= n_cols:
            group_values, groups = _group_max(sims, group).topk(k + 1, dim=1)
            crowded = group_values[:, k - 1] == group_values[:, k]
            offsets = torch.arange(group, device=sims.device)
            columns = (groups[:, :k, None] * group + offsets).flatten(1)  # (R, k * group) candidates
            outside = columns >= n_cols  # the short last run's missing columns
            candidates = sims.gather(1, columns.clamp_(max=n_cols - 1)).masked_fill_(outside, -math.inf)
            values, picked = candidates.topk(k + 1, dim=1)
            positions = columns.gather(1, picked[:, :k])
        else:
            values, positions = sims.topk(k + 1, dim=1)
            crowded = torch.zeros(sims.shape[0], dtype=torch.bool, device=sims.device)
        # topk picks arbitrarily among scores tied at the cut: such rows are redone.
        crowded |= values[:, k - 1] == values[:, k]
        values, positions = values[:, :k], positions[:, :k]
        if bool(crowded.any()):
            rows = crowded.nonzero()[:, 0]
            values[rows], positions[rows] = _tied_topk(sims[rows], k)
    # Order ties inside the selection by column: sort by column, then stably by score.
    positions, order = positions.sort(dim=1)
    values = values.gather(1, order)
    values, order = values.sort(dim=1, descending=True, stable=True)
    return values, positions.gather(1, order)


def _merge(
    best: tuple[torch.Tensor, torch.Tensor] | None,
    new: tuple[torch.Tensor, torch.Tensor],
    offset: int,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k and a block's top-k (columns from ``offset``, all above the running ones' indices)."""
    values, positions = new
    positions = positions + offset
    if best is None:
        return values, positions
    # Earlier blocks hold lower indices, so a stable sort keeps ties lowest-index-first.
    values, order = torch.cat([best[0], values], dim=1).sort(dim=1, descending=True, stable=True)
    positions = torch.cat([best[1], positions], dim=1).gather(1, order[:, :k])
    return values[:, :k].contiguous(), positions


def _scores_into(buffer: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows @ cols.T`` written into the front of the flat ``buffer``: no fresh allocation per block."""
    return torch.mm(rows, cols.T, out=buffer[: rows.shape[0] * cols.shape[0]].view(rows.shape[0], -1))


def _finish(best: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    return torch.cat([v for v, _ in best]).cpu().numpy(), torch.cat([i for _, i in best]).cpu().numpy()


def _exact_topk(
    queries: torch.Tensor, corpus: torch.Tensor, k: int, chunk_size: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``exact_topk`` on prepared (normalised if cosine) tensors; ``k`` already clipped."""
    n_queries, n_corpus = queries.shape[0], corpus.shape[0]
    if k == 0:
        return np.zeros((n_queries, 0), np.float32), np.zeros((n_queries, 0), np.int64)
    queries = queries.to(corpus.device)
    if queries is corpus or (n_queries == n_corpus and torch.equal(queries, corpus)):
        return _self_topk(corpus, k, chunk_size, exclude_self)
    best = []
    with torch.inference_mode():
        buffer = torch.empty(min(chunk_size, n_queries) * min(chunk_size, n_corpus), device=corpus.device)
        for q0 in range(0, n_queries, chunk_size):
            q1 = min(q0 + chunk_size, n_queries)
            running = None
            for c0 in range(0, n_corpus, chunk_size):
                c1 = min(c0 + chunk_size, n_corpus)
                sims = _scores_into(buffer, queries[q0:q1], corpus[c0:c1])  # the only block of scores
                if exclude_self:
                    lo, hi = max(q0, c0), min(q1, c1)
                    if lo < hi:
                        same = torch.arange(lo, hi, device=sims.device)
                        sims[same - q0, same - c0] = float("-inf")
                running = _merge(running, _block_topk(sims, min(k, c1 - c0)), c0, k)
            best.append(running)
    return _finish(best)


def _hits(sims: torch.Tensor, cut: torch.Tensor, group: int) -> tuple[torch.Tensor, ...]:
    """(rows, columns, scores) of the scores of a (R, C) block (any strides) above their row's ``cut``, found
    through the maxima of runs of ``group`` columns; each row's columns come in ascending order."""
    n_cols = sims.shape[1]
    if sims.stride(1) != 1 and sims.stride(0) == 1:  # a transposed block: reduce in its memory order
        runs, rows = (_group_max_of_rows(sims.T, group) > cut).nonzero(as_tuple=True)  # by run, then row
    else:
        rows, runs = (_group_max(sims, group) > cut[:, None]).nonzero(as_tuple=True)
    columns = runs[:, None] * group + torch.arange(group, device=sims.device)
    values = sims[rows[:, None], columns.clamp(max=n_cols - 1)]
    keep = (columns < n_cols) & (values > cut[rows, None])
    return rows[:, None].expand_as(columns)[keep], columns[keep], values[keep]


def _self_topk(
    corpus: torch.Tensor, k: int, chunk_size: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of the corpus against itself from the blocks on and above the diagonal only.

    Block (a, b), a <= b, of scores gives rows of chunk a their candidates among columns of chunk b and,
    transposed, rows of chunk b theirs among chunk a: half the products of a full search. A row's first
    block (chunk 0's columns) gives it a top-k (``_block_topk``); later blocks only the scores above its k-th
    best so far (``_hits``), pooled and merged now and then. Rows of chunk r receive their blocks in column
    order (0 .. r-1 transposed, then r .. from its own row of blocks), and a score equal to the k-th best
    loses to it (a lower index), so the result is that of a row-by-row search, ties lowest index first.
    """
    n = corpus.shape[0]
    starts = list(range(0, n, chunk_size))
    ends = [min(s + chunk_size, n) for s in starts]
    # One running top-k per chunk of rows, each reduced as soon as it pools SELF_POOL x its top-k entries.
    found = [
        _Candidates(e - s, k, corpus.device, SELF_POOL * (e - s) * k)
        for s, e in zip(starts, ends, strict=True)
    ]
    with torch.inference_mode():
        buffer = torch.empty(min(chunk_size, n) ** 2, device=corpus.device)
        for a, (r0, r1) in enumerate(zip(starts, ends, strict=True)):
            for b in range(a, len(starts)):
                c0, c1 = starts[b], ends[b]
                sims = _scores_into(buffer, corpus[r0:r1], corpus[c0:c1])  # the only block of scores
                if a == b and exclude_self:
                    sims.fill_diagonal_(float("-inf"))
                for side, rows_found, cols0, first in (
                    (sims, found[a], c0, b == 0),
                    (sims.T, found[b], r0, a == 0),
                ):
                    if first:  # the rows' first block: their top-k as it is
                        values, positions = _block_topk(side, min(k, side.shape[1]))
                        rows_found.values[:, : values.shape[1]] = values
                        rows_found.indices[:, : values.shape[1]] = positions + cols0
                    else:
                        rows, columns, values = _hits(side, rows_found.threshold(), HITS_GROUP)
                        rows_found.add(rows, columns + cols0, values)
                    if a == b:  # a diagonal block is its own transpose
                        break
        for rows_found in found:
            rows_found.reduce()
    return (
        torch.cat([f.values for f in found]).cpu().numpy(),
        torch.cat([f.indices for f in found]).cpu().numpy(),
    )


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
    is merged into a running top-k, so memory stays at one block whatever Q and N are. When the queries are
    the corpus (the same object, or equal), only the blocks on and above the diagonal are computed, each
    serving its rows and, transposed, its columns (``_self_topk``): half the products, the same result.
    Torch tensors are searched on their device; the result is always numpy.

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


def _kmeans(x: torch.Tensor, nlist: int, iterations: int, sample_size: int, chunk_size: int) -> torch.Tensor:
    """(nlist, D) unit centroids: spherical k-means (assignment by inner product) on a seeded sample."""
    generator = torch.Generator().manual_seed(KMEANS_SEED)
    sample = x[torch.randperm(x.shape[0], generator=generator)[:sample_size].to(x.device)]
    centroids = F.normalize(sample[:nlist], dim=1, eps=EPS)  # the sample is in random order
    for _ in range(iterations):
        assign = torch.cat([(sample[i : i + chunk_size] @ centroids.T).argmax(dim=1)
                            for i in range(0, sample.shape[0], chunk_size)])  # fmt: skip
        sums = torch.zeros_like(centroids).index_add_(0, assign, sample)
        empty = torch.bincount(assign, minlength=nlist) == 0
        sums[empty] = centroids[empty]  # an empty list keeps its centroid
        centroids = F.normalize(sums, dim=1, eps=EPS)
    return centroids


def _probe(x: torch.Tensor, centroids: torch.Tensor, nprobe: int, chunk_size: int) -> torch.Tensor:
    """(N, nprobe) lists nearest each row of ``x``, nearest first (its own list first)."""
    return torch.cat([(x[i : i + chunk_size] @ centroids.T).topk(nprobe, dim=1).indices
                      for i in range(0, x.shape[0], chunk_size)])  # fmt: skip


def _group_by_list(lists: torch.Tensor, owners: torch.Tensor, nlist: int) -> tuple[torch.Tensor, list[int]]:
    """``owners`` sorted by their ``lists`` (stably) and where each list's run starts (nlist + 1 offsets)."""
    order = torch.argsort(lists, stable=True)
    return owners[order], [0, *torch.bincount(lists, minlength=nlist).cumsum(0).tolist()]


def _float_order_key(values: torch.Tensor) -> torch.Tensor:
    """int64 keys in [0, 2^32) ordered as ``values`` (float32, no NaN) are."""
    bits = values.contiguous().view(torch.int32).to(torch.int64)
    # Negative floats order by decreasing magnitude: -(magnitude) - 1 puts them below 0 (and -0.0 below 0.0).
    return torch.where(bits < 0, -(bits + 2**31) - 1, bits) + 2**31


class _Candidates:
    """Each row's running top-k plus a pool of (row, column, score) candidates, reduced into it when large."""

    def __init__(self, n: int, k: int, device: torch.device, limit: int | None = None):
        self.k = k
        self.values = torch.full((n, k), -math.inf, device=device)
        self.indices = torch.full((n, k), -1, dtype=torch.int64, device=device)
        self.pool: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.pooled = 0
        # A reduction costs O(n k + pool): amortised, linear; sooner keeps the thresholds tighter.
        self.limit = max(n * k, CANDIDATE_POOL) if limit is None else limit

    def threshold(self) -> torch.Tensor:
        """Each row's k-th best score so far (-inf while it has fewer): only better candidates matter."""
        return self.values[:, -1]

    def add(self, rows: torch.Tensor, columns: torch.Tensor, values: torch.Tensor) -> None:
        self.pool.append((rows, columns, values))
        self.pooled += len(rows)
        if self.pooled > self.limit:
            self.reduce()

    def reduce(self) -> None:
        if not self.pool:
            return
        n, k = self.values.shape
        rows = torch.cat(
            [torch.arange(n, device=self.values.device).repeat_interleave(k), *(p[0] for p in self.pool)]
        )
        columns = torch.cat([self.indices.flatten(), *(p[1] for p in self.pool)])
        values = torch.cat([self.values.flatten(), *(p[2] for p in self.pool)])
        self.pool, self.pooled = [], 0
        # By row, then score descending (stable: earlier candidates first among equal scores).
        order = torch.argsort(rows * 2**32 + _float_order_key(-values), stable=True)
        rows, columns, values = rows[order], columns[order], values[order]
        starts = torch.searchsorted(rows, torch.arange(n, device=rows.device))
        rank = torch.arange(len(rows), device=rows.device) - starts[rows]
        keep = rank < k
        self.values[rows[keep], rank[keep]] = values[keep]
        self.indices[rows[keep], rank[keep]] = columns[keep]


def _clustered_topk(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    offsets: list[int],
    first: torch.Tensor,
    probes: torch.Tensor,
    k: int,
    chunk_size: int,
    lists: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of ``queries`` among the corpus rows of their probed lists, by exact blocks of scores.

    ``corpus`` is sorted by list (list L holds rows ``offsets[L]:offsets[L + 1]``). Each list is scored
    against all the queries probing it at once, by matrix products. First every query's ``first`` list,
    with a top-k per row; then its other probes (``probes``, -1 for none), where only scores above the
    query's k-th best so far are kept. Given ``lists`` (the list of each corpus row), this is a self-search:
    the queries are the corpus rows, ``first`` their own lists, and each block also serves its columns: a
    list's member takes a query as a candidate unless the member probes the query's list itself, so a pair
    is found when either side probes the other's list, and reaches a row at most once.
    Returns (Q, k) scores and corpus positions, -inf / -1 where fewer than k were found, unsorted.
    """
    n_queries = queries.shape[0]
    nlist = len(offsets) - 1
    self_search = lists is not None
    device = corpus.device
    found = _Candidates(n_queries, k, device)
    query_ids = torch.arange(n_queries, device=device)
    width = min(chunk_size, max(b - a for a, b in itertools.pairwise(offsets)))
    buffer = torch.empty(chunk_size * width, device=device)
    gathered = torch.empty((chunk_size, queries.shape[1]), device=device)

    def blocks(searchers: torch.Tensor, a: int, b: int):
        for c0 in range(a, b, chunk_size):
            c1 = min(c0 + chunk_size, b)
            for q0 in range(0, len(searchers), chunk_size):
                rows = searchers[q0 : q0 + chunk_size]
                block = torch.index_select(queries, 0, rows, out=gathered[: len(rows)])
                yield rows, c0, c1, _scores_into(buffer, block, corpus[c0:c1])

    # 1. each query's first list: a top-k per row (with self_search the list of the row itself)
    by_list, starts = _group_by_list(first, query_ids, nlist)
    for lst in range(nlist):
        a, b = offsets[lst], offsets[lst + 1]
        for rows, c0, c1, sims in blocks(by_list[starts[lst] : starts[lst + 1]], a, b):
            if self_search:
                own = ((rows >= c0) & (rows < c1)).nonzero()[:, 0]
                sims[own, rows[own] - c0] = -math.inf
            values, positions = sims.topk(min(k, c1 - c0), dim=1)
            if b - a <= chunk_size:  # the row's only block so far: its top-k as it is
                found.values[rows, : values.shape[1]] = values
                found.indices[rows, : values.shape[1]] = positions + c0
            else:
                found.add(
                    rows.repeat_interleave(values.shape[1]), (positions + c0).flatten(), values.flatten()
                )
    found.reduce()

    # 2. the other probes: only scores above the row's (and, with self_search, the column's) k-th best
    others = probes != -1
    by_list, starts = _group_by_list(probes[others], query_ids[:, None].expand_as(probes)[others], nlist)
    for lst in range(nlist):
        a, b = offsets[lst], offsets[lst + 1]
        for rows, c0, c1, sims in blocks(by_list[starts[lst] : starts[lst + 1]], a, b):
            cut = found.threshold()
            r, c, values = _hits(sims, cut[rows], HITS_GROUP)
            found.add(rows[r], c + c0, values)
            if self_search:  # the members' side: queries whose list they do not probe themselves
                c, r, values = _hits(sims.T, cut[c0:c1], HITS_GROUP)
                member, query = c + c0, rows[r]
                new = ~(probes[member] == lists[query][:, None]).any(dim=1)
                found.add(member[new], query[new], values[new])
    found.reduce()
    found.indices[torch.isneginf(found.values)] = -1  # the row itself, or no candidate at all
    return found.values, found.indices


def _sorted_result(values: torch.Tensor, indices: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by score descending then index ascending (missing -1 entries last), as numpy."""
    indices, order = torch.where(indices < 0, torch.iinfo(torch.int64).max, indices).sort(dim=1)
    values = values.gather(1, order)
    values, order = values.sort(dim=1, descending=True, stable=True)
    indices = indices.gather(1, order)
    indices[indices == torch.iinfo(torch.int64).max] = -1
    return values.cpu().numpy(), indices.cpu().numpy()


class ClusteredIndex(SearchIndex):
    """An inverted-file index searched with matrix products: k-means lists, each searched in exact blocks.

    The corpus is split into ``nlist`` lists by spherical k-means (trained on a sample); a query is
    compared exactly with every row of its ``nprobe`` nearest lists. Unlike faiss's IVF, which scans the
    lists query by query, each list is scored against all of its queries at once by one matrix product
    (compute-bound, not memory-bound), and a self-search (``self_search``, used by ``mine_duplicates``)
    lets each block serve both sides: a pair is found when either text probes the other's list.
    ``nprobe`` is read at every search. Holds a float32 copy of the corpus, sorted by list; no faiss.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        similarity: str = "cosine",
        nlist: int | None = None,
        nprobe: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ):
        self.kind = "clustered"
        self.similarity = _check_similarity(similarity)
        self.chunk_size = _check_chunk_size(chunk_size)
        corpus = _prepare(embeddings, "embeddings", similarity)
        n = corpus.shape[0]
        self.nlist = clustered_nlist(n) if nlist is None else _check_k(nlist, "nlist")
        if self.nlist > n:
            raise ValueError(f"nlist={self.nlist} is more than the {n} vectors to cluster")
        self.nprobe = clustered_nprobe(self.nlist) if nprobe is None else _check_k(nprobe, "nprobe")
        self.dim = int(corpus.shape[1])
        with torch.inference_mode():
            sample = min(n, KMEANS_SAMPLE_PER_LIST * self.nlist)
            self.centroids = _kmeans(corpus, self.nlist, KMEANS_ITERATIONS, sample, self.chunk_size)
            probes = _probe(corpus, self.centroids, self._nprobe(), self.chunk_size)
            nearest = probes[:, 0]  # each row's own list
            self._ids = torch.argsort(nearest, stable=True)  # list by list; ascending inside a list
            self._corpus = corpus[self._ids]  # a copy, sorted by list
            counts = torch.bincount(nearest, minlength=self.nlist)
            self._offsets = [0, *counts.cumsum(0).tolist()]
            self._lists = nearest[self._ids]  # the list of each sorted row
            self._probes = probes[self._ids]  # kept for self_search while nprobe stays the same

    def __len__(self) -> int:
        return int(self._corpus.shape[0])

    def _nprobe(self) -> int:
        return min(_check_k(self.nprobe, "nprobe"), self.nlist)

    def search(self, queries: Embeddings, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(_check_k(k), len(self))
        q = _prepare(queries, "queries", self.similarity).to(self._corpus.device)
        _check_dims(q, self.dim)
        with torch.inference_mode():
            probes = _probe(q, self.centroids, self._nprobe(), self.chunk_size)
            first = probes[:, 0].clone()
            probes[:, 0] = -1
            values, positions = _clustered_topk(
                q, self._corpus, self._offsets, first, probes, k, self.chunk_size
            )
            indices = torch.where(positions >= 0, self._ids[positions.clamp(min=0)], -1)
            return _sorted_result(values, indices)

    def self_search(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each corpus row's ``k`` (clipped to N - 1) most similar other rows, in corpus order."""
        k = min(_check_k(k), len(self) - 1)
        n = len(self)
        if k == 0:
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        with torch.inference_mode():
            nprobe = self._nprobe()
            if self._probes.shape[1] != nprobe:
                self._probes = _probe(self._corpus, self.centroids, nprobe, self.chunk_size)
            probes = self._probes.clone()
            probes[probes == self._lists[:, None]] = -1  # the own list is searched first
            values, positions = _clustered_topk(
                self._corpus,
                self._corpus,
                self._offsets,
                self._lists,
                probes,
                k,
                self.chunk_size,
                self._lists,
            )
            indices = torch.where(positions >= 0, self._ids[positions.clamp(min=0)], -1)
            rows = torch.empty_like(self._ids)
            rows[self._ids] = torch.arange(n, device=self._ids.device)  # corpus row -> sorted position
            return _sorted_result(values[rows], indices[rows])


def ivf_nlist(n: int) -> int:
    """Default IVF list count: ``clustered_nlist(n)``."""
    return clustered_nlist(n)


def ivf_nprobe(nlist: int) -> int:
    """Default lists searched per IVF query: nlist / IVF_NPROBE_FRACTION, in [MIN_NPROBE, nlist]."""
    return min(nlist, max(MIN_NPROBE, nlist // IVF_NPROBE_FRACTION))


def clustered_nlist(n: int) -> int:
    """Default k-means list count: LISTS_PER_SQRT sqrt(N), at most N / MIN_POINTS_PER_LIST, at least 1."""
    return max(1, min(round(LISTS_PER_SQRT * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


def clustered_nprobe(nlist: int) -> int:
    """Default lists searched per clustered query: ``CLUSTERED_NPROBE``, at most nlist."""
    return min(nlist, CLUSTERED_NPROBE)


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
        index: a ``build_index`` kind; ``exact`` / ``auto`` below ``APPROXIMATE_FROM`` search exactly (the
            blocks on and above the diagonal only); ``clustered`` / ``auto`` from there on search each
            row's nearest k-means lists, a pair found when either text probes the other's list.
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
    elif isinstance(search_index, ClusteredIndex):
        scores, neighbours = search_index.self_search(top_k)
        keep = neighbours >= 0
    else:
        # One extra neighbour for the row itself, then drop self hits and misses, keeping top_k per row.
        scores, neighbours = search_index.search(embeddings, top_k + 1)
        keep = (neighbours != np.arange(n)[:, None]) & (neighbours >= 0)
        keep &= np.cumsum(keep, axis=1) <= top_k
    if threshold is not None:
        keep &= scores >= threshold
    rows = np.broadcast_to(np.arange(n)[:, None], neighbours.shape)[keep]
    cols, vals = neighbours[keep], scores[keep]
    pair = np.minimum(rows, cols) * n + np.maximum(rows, cols)  # (i, j), i < j, as one int64 key
    if len(pair) == 0:
        return []
    # Each pair once: for the same (i, j), keep the larger score.
    order = np.argsort(pair, kind="stable")
    pair, vals = pair[order], vals[order]
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    pair, vals = pair[starts], np.maximum.reduceat(vals, starts)
    order = np.argsort(-vals, kind="stable")  # score descending, then (pairs sorted already) i, then j
    pair, vals = pair[order], vals[order]
    return list(zip((pair // n).tolist(), (pair % n).tolist(), vals.tolist(), strict=True))


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
