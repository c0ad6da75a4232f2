"""Exact nearest-neighbour search over embeddings: chunked top-k by matrix products, and the self-search.

Every search in this package returns ``(scores, indices)``: (Q, k) float32 and int64 numpy arrays, best
first, where the score is a *similarity* (larger = closer):

| similarity | score                              |
| ---------- | ---------------------------------- |
| ``cosine`` | cos(q, c): both L2-normalised, dot |
| ``dot``    | q . c                              |

Embeddings are (N, D) numpy arrays or torch tensors; inputs are never modified.

- ``exact_topk``: chunked matrix products, peak memory ``chunk_size x chunk_size`` scores, not Q x N; a
  corpus searched against itself computes only the blocks on and above the diagonal (``_self_topk``).
- ``ExactIndex``: ``exact_topk`` behind the ``SearchIndex`` interface (``build_index(kind="exact")``).

The block primitives here (a block's top-k, the scores above each row's k-th best, a pooled running
top-k) are also what the clustered index searches its lists with.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from .base import (
    Embeddings,
    SearchIndex,
    _check_chunk_size,
    _check_dims,
    _check_k,
    _check_similarity,
    _prepare,
)

logger = logging.getLogger(__name__)

# Rows and columns of one block of scores in exact search: a 4096 x 4096 float32 block is 64 MiB. 8192 is
# ~10% faster on 2 cores (fewer, longer top-k rows) for 4x the memory; 2048 ~20% slower.
DEFAULT_CHUNK_SIZE = 4096
# Columns per run in the two-stage top-k of a block of scores (see _block_topk); 16 to 32 measure the same.
TOPK_GROUP = 32
# Columns per run when picking the scores above a row's k-th best (see _hits).
HITS_GROUP = 16
# exact self-search: a chunk's candidates are merged into its top-k once they number SELF_POOL x its top-k.
SELF_POOL = 4


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


def _float_order_key(values: torch.Tensor) -> torch.Tensor:
    """int64 keys in [0, 2^32) ordered as ``values`` (float32, no NaN) are."""
    bits = values.contiguous().view(torch.int32).to(torch.int64)
    # Negative floats order by decreasing magnitude: -(magnitude) - 1 puts them below 0 (and -0.0 below 0.0).
    return torch.where(bits < 0, -(bits + 2**31) - 1, bits) + 2**31


class _Candidates:
    """Each row's running top-k plus a pool of (row, column, score) candidates, reduced into it when large.

    ``values`` / ``indices`` are (n, k), -inf / -1 where a row has fewer than k so far; the pool is reduced
    into them once it holds more than ``limit`` candidates (the caller's trade-off: a reduction costs
    O(n k + pool), so a larger pool amortises it, a smaller one keeps the thresholds tighter).
    """

    def __init__(self, n: int, k: int, device: torch.device, limit: int):
        self.k = k
        self.values = torch.full((n, k), -math.inf, device=device)
        self.indices = torch.full((n, k), -1, dtype=torch.int64, device=device)
        self.pool: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.pooled = 0
        self.limit = limit

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
