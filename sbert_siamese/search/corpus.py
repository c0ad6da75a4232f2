"""Duplicate detection and semantic search with a model: texts in, pairs / groups / neighbours out.

``find_duplicates`` encodes a corpus (in memory, or sharded to disk and resumable with
``embeddings_dir``), finds every pair above the threshold through each text's top-k neighbours (exact
chunked search, or a clustered index from ``index.APPROXIMATE_FROM`` texts), and groups the pairs into
clusters with a representative. The threshold defaults to the one calibrated and stored with the model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import SIMILARITIES
from .duplicates import DuplicateGroup, cluster_duplicates, mine_duplicates
from .index import build_index, resolve_kind

SEARCH_SCORES = SIMILARITIES  # what dedup and search rank by


@dataclass
class DedupResult:
    pairs: list[tuple[int, int, float]]  # (i, j, score), i < j, best first
    groups: list[DuplicateGroup]  # connected components of the pairs, largest first
    threshold: float
    similarity: str
    index: str  # the search actually used: exact, clustered, flat, ivf or hnsw
    timings: dict[str, float] = field(default_factory=dict)


def _rule(model, threshold: float | None, similarity: str | None) -> tuple[float, str]:
    stored = getattr(model, "threshold", None)
    if threshold is None and stored is not None and getattr(model, "untied", False):
        raise ConfigError(
            "this model's threshold was calibrated on tower a vs tower b, while dedup compares texts through "
            "tower a only: pass a threshold"
        )
    if threshold is not None:
        similarity = similarity or (stored.score if stored and stored.score in SEARCH_SCORES else "cosine")
    elif stored is not None:
        if stored.score not in SEARCH_SCORES:
            raise ConfigError(
                f"the model's calibrated threshold is on {stored.score!r}; dedup searches by cosine or dot: "
                "calibrate with --score cosine, or pass a threshold"
            )
        if similarity not in (None, stored.score):
            raise ConfigError(f"the calibrated threshold is on {stored.score}, not {similarity}: pass one")
        threshold, similarity = stored.threshold, stored.score
    else:
        raise ConfigError(
            "no threshold: this model has none calibrated (run `sbert-siamese calibrate`) and none was given"
        )
    if similarity not in SEARCH_SCORES:
        raise ConfigError(f"similarity must be one of {', '.join(SEARCH_SCORES)}, got {similarity!r}")
    return float(threshold), similarity


def embed_corpus(
    model,
    texts: Sequence[str],
    batch_size: int = 64,
    embeddings_dir: str | Path | None = None,
    shard_size: int = 10_000,
    show_progress_bar: bool = False,
    side: str = "a",
    backend: str = "torch",
) -> np.ndarray:
    """(N, D) float32 embeddings of ``texts``; with ``embeddings_dir`` written shard by shard (a rerun
    reuses finished shards, see ``streaming.encode_to_disk``). ``backend``: see ``SiameseEncoder.encode``."""
    encoder = model.tower(side) if hasattr(model, "tower") else model
    if embeddings_dir is None:
        return np.asarray(
            encoder.encode(
                list(texts), batch_size=batch_size, show_progress_bar=show_progress_bar, backend=backend
            )
        )
    from ..io.streaming import encode_to_disk, load_embeddings, weights_fingerprint

    identity = f"tower {side}, weights {weights_fingerprint(encoder)}"
    encode_to_disk(
        encoder, texts, embeddings_dir, shard_size, batch_size, None, identity, show_progress_bar, backend
    )
    return load_embeddings(embeddings_dir, mmap=False)


def find_duplicates(
    model,
    texts: Sequence[str],
    threshold: float | None = None,
    similarity: str | None = None,
    top_k: int = 10,
    index: str = "auto",
    batch_size: int = 64,
    embeddings_dir: str | Path | None = None,
    representative: str = "central",
    show_progress_bar: bool = False,
    embeddings: np.ndarray | None = None,
    backend: str = "torch",
) -> DedupResult:
    """Every pair of ``texts`` scoring at least the threshold (found among each text's ``top_k``
    neighbours), and the duplicate groups they form.

    Example:
        >>> result = find_duplicates(model, questions)  # doctest: +SKIP
        >>> [questions[g.representative] for g in result.groups[:3]]  # doctest: +SKIP
    """
    threshold, similarity = _rule(model, threshold, similarity)
    if len(texts) < 2:
        raise ConfigError(f"dedup needs at least 2 texts, got {len(texts)}")
    timings = {}
    started = time.perf_counter()
    if embeddings is None:
        embeddings = embed_corpus(
            model, texts, batch_size, embeddings_dir, show_progress_bar=show_progress_bar, backend=backend
        )
    elif len(embeddings) != len(texts):
        raise ConfigError(f"{len(embeddings)} embeddings for {len(texts)} texts")
    timings["encode_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    kind = resolve_kind(len(texts), index)
    pairs = mine_duplicates(embeddings, threshold, top_k, similarity, index=kind)
    timings["search_seconds"] = time.perf_counter() - started
    groups = cluster_duplicates(len(texts), pairs, representative)
    return DedupResult(pairs, groups, threshold, similarity, kind, timings)


def semantic_search(
    model,
    corpus: Sequence[str],
    queries: Sequence[str],
    top_k: int = 10,
    index: str = "auto",
    batch_size: int = 64,
    embeddings_dir: str | Path | None = None,
    similarity: str = "cosine",
    show_progress_bar: bool = False,
    backend: str = "torch",
) -> list[list[tuple[int, float]]]:
    """The ``top_k`` corpus entries nearest each query: per query a list of (corpus index, score), best
    first. Queries go through tower a, the corpus through tower b (the same tower unless untied)."""
    if not corpus or not queries:
        raise ConfigError("semantic search needs a non-empty corpus and at least one query")
    side_b = "b" if getattr(model, "untied", False) else "a"
    corpus_emb = embed_corpus(model, corpus, batch_size, embeddings_dir, show_progress_bar=show_progress_bar,
                              side=side_b, backend=backend)  # fmt: skip
    query_emb = embed_corpus(model, queries, batch_size, side="a", backend=backend)
    scores, indices = build_index(corpus_emb, index, similarity).search(query_emb, min(top_k, len(corpus)))
    return [
        [(int(i), float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0]
        for row_i, row_s in zip(indices, scores, strict=True)
    ]
