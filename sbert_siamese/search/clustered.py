"""Clustered (inverted-file) search without faiss: k-means lists, each searched in exact blocks of scores.

``ClusteredIndex`` splits the corpus into lists by seeded spherical k-means and compares a query exactly
with every row of its ``nprobe`` nearest lists, one matrix product per list for all of its queries at
once. Its ``self_search`` serves both sides of each block, so a pair is found when either text probes the
other's list; ``mine_duplicates`` uses it for ``kind="clustered"`` (and ``"auto"`` on large corpora). The
k-means here also trains the faiss IVF index's centroids (``faiss_index``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .base import (
    EPS,
    Embeddings,
    SearchIndex,
    _check_chunk_size,
    _check_dims,
    _check_k,
    _check_similarity,
    _prepare,
)
from .exact import DEFAULT_CHUNK_SIZE, HITS_GROUP, _Candidates, _hits, _scores_into

# clustered (and faiss ivf): nlist = LISTS_PER_SQRT sqrt(N) k-means lists (at most N / MIN_POINTS_PER_LIST),
# trained on KMEANS_SAMPLE_PER_LIST points per list, KMEANS_ITERATIONS rounds. clustered searches
# CLUSTERED_NPROBE lists per row (recall@10 0.95-0.97 on sentence embeddings at 10k-100k, where 16 gives
# 0.95-0.96 and 24 0.96-0.97); faiss ivf's nprobe is in faiss_index.
LISTS_PER_SQRT = 1.6
MIN_POINTS_PER_LIST = 39
CLUSTERED_NPROBE = 20
KMEANS_SAMPLE_PER_LIST = 32
KMEANS_ITERATIONS = 10
KMEANS_SEED = 0
# clustered: candidates pooled before they are reduced into the running top-k (at least N k). A reduction
# costs O(N k + pool): amortised, linear; sooner keeps the thresholds tighter.
CANDIDATE_POOL = 1 << 22


def clustered_nlist(n: int) -> int:
    """Default k-means list count: LISTS_PER_SQRT sqrt(N), at most N / MIN_POINTS_PER_LIST, at least 1."""
    return max(1, min(round(LISTS_PER_SQRT * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


def clustered_nprobe(nlist: int) -> int:
    """Default lists searched per clustered query: ``CLUSTERED_NPROBE``, at most nlist."""
    return min(nlist, CLUSTERED_NPROBE)


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
    found = _Candidates(n_queries, k, device, max(n_queries * k, CANDIDATE_POOL))
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
