"""Near-duplicates inside one corpus of embeddings: pairs (``mine_duplicates``, "paraphrase mining") and
the groups they form (``cluster_duplicates``), each with a representative to keep.

This is duplicate mining over a whole corpus; the in-batch triplet miners are in ``losses.miners`` and the
offline hard negatives in ``hard_negatives``. ``corpus.find_duplicates`` runs both steps on texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Embeddings, _check_k, _check_similarity
from .clustered import ClusteredIndex
from .exact import DEFAULT_CHUNK_SIZE, _exact_topk
from .index import _check_kind, build_index

REPRESENTATIVES = ("central", "first")


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
    return merge_pairs(rows, neighbours[keep], scores[keep], n)


def merge_pairs(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int) -> list[tuple[int, int, float]]:
    """Neighbour hits (row, col, score) as ``mine_duplicates`` returns them: each unordered pair once, with
    the larger score of its two directions, sorted by score descending, then i, then j."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    vals = np.asarray(vals)
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
