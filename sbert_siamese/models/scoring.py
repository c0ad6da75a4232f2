"""How a model scores a pair of texts: a similarity or a distance of the two embeddings, or the head's
probability of "same".

This is what a calibrated threshold (``models.threshold``) is applied to and what the evaluators measure,
so it lives with the model: ``SiameseModel.verify`` needs it without depending on the evaluators.

Scores: ``cosine`` and ``dot`` are similarities (higher = more alike); ``euclidean`` and ``manhattan`` are
distances (lower = more alike); ``head`` is P(same) from a 2-class softmax or the weighted-L1 verification
head. ``pairwise_similarities`` gives every embedding score at once, distances negated so that larger
always means more similar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError

SIMILARITIES = ("cosine", "euclidean", "manhattan", "dot")
SCORES = ("cosine", "dot", "euclidean", "manhattan", "head")
DISTANCES = ("euclidean", "manhattan")  # the scores for which smaller means "more alike"


def pairwise_similarities(u: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    """Row-wise similarity of (N, D) arrays under each name in ``SIMILARITIES``; distances are negated
    so that larger always means more similar. Returns (N,) float64 arrays."""
    u = u.astype(np.float64)
    v = v.astype(np.float64)
    norms = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
    dot = np.sum(u * v, axis=1)
    return {
        "cosine": dot / np.maximum(norms, 1e-12),
        "euclidean": -np.linalg.norm(u - v, axis=1),
        "manhattan": -np.abs(u - v).sum(axis=1),
        "dot": dot,
    }


def embed_pairs(model, sentences1, sentences2, batch_size: int, show_progress_bar: bool):
    """(N, D) embeddings of both sides. A model with untied towers encodes side a and side b with their own
    tower; otherwise each distinct sentence is encoded once."""
    if getattr(model, "untied", False):
        u = model.encode(sentences1, side="a", batch_size=batch_size, show_progress_bar=show_progress_bar)
        v = model.encode(sentences2, side="b", batch_size=batch_size, show_progress_bar=show_progress_bar)
        return u, v
    unique = list(dict.fromkeys(list(sentences1) + list(sentences2)))
    index = {s: i for i, s in enumerate(unique)}
    embeddings = model.encode(unique, batch_size=batch_size, show_progress_bar=show_progress_bar)
    return embeddings[[index[s] for s in sentences1]], embeddings[[index[s] for s in sentences2]]


def pair_scores(model, texts_a: Sequence[str], texts_b: Sequence[str], score: str, batch_size: int = 64,
                show_progress_bar: bool = False) -> np.ndarray:  # fmt: skip
    """(N,) scores of pairs in the units of ``score`` (a similarity, a distance, or P(same) for ``head``)."""
    if score not in SCORES:
        raise ConfigError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    if len(texts_a) != len(texts_b):
        raise ConfigError(f"texts_a and texts_b differ in length: {len(texts_a)} vs {len(texts_b)}")
    if not texts_a:
        return np.zeros(0, dtype=np.float64)
    u, v = embed_pairs(model, list(texts_a), list(texts_b), batch_size, show_progress_bar)
    if score == "head":
        if getattr(model, "head", None) is None:
            raise ConfigError("score 'head' needs a model with a softmax or verification head")
        probabilities = model.head_probabilities(u, v).numpy()
        if probabilities.shape[1] != 2:
            raise ConfigError(
                f"score 'head' needs a 2-class head (different, same), this one has {probabilities.shape[1]}"
            )
        return probabilities[:, 1].astype(np.float64)
    values = pairwise_similarities(u, v)[score]
    return -values if score in DISTANCES else values  # pairwise_similarities negates distances
