"""Test data for the search tests and the brute-force reference they are checked against: the full score
matrix and a stable argsort (best first, ties lowest index first)."""

from __future__ import annotations

import numpy as np


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def small_integers(n: int, d: int, seed: int, high: int = 2) -> np.ndarray:
    """Integer entries in [-high, high]: dot products are exact in float32 and full of ties."""
    return np.random.default_rng(seed).integers(-high, high + 1, (n, d)).astype(np.float32)


def clustered(n: int, seed: int, d: int = 64, centres: int = 200, noise: float = 1.0) -> np.ndarray:
    """Points around ``centres`` fixed unit centres (the same for every seed), L2-normalised."""
    centre = np.random.default_rng(1234).standard_normal((centres, d))
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = centre[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def score_matrix(queries, corpus, similarity: str, exclude_self: bool = False) -> np.ndarray:
    q, c = np.asarray(queries, np.float64), np.asarray(corpus, np.float64)
    if similarity == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    s = q @ c.T
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    return s


def brute_topk(queries, corpus, k: int, similarity: str, exclude_self: bool = False):
    """Full matrix, stable argsort of the negated scores: best first, ties lowest index first."""
    s = score_matrix(queries, corpus, similarity, exclude_self)
    k = min(k, s.shape[1] - int(exclude_self))
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, axis=1), idx


def assert_valid_topk(scores, indices, reference: np.ndarray, k: int, atol: float = 1e-5):
    """A correct top-k up to rounding: the best k reference scores, at the indices returned."""
    assert scores.shape == indices.shape == (reference.shape[0], k)
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    best = -np.sort(-reference, axis=1)[:, :k]
    np.testing.assert_allclose(scores, best, atol=atol)
    np.testing.assert_allclose(np.take_along_axis(reference, indices, axis=1), scores, atol=atol)
    assert all(len(set(row)) == k for row in indices.tolist())
    assert np.all(np.diff(scores, axis=1) <= 0)
