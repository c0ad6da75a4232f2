"""Every distance in one place, each in a pairwise (N) and a matrix (N x M) form.

All functions return *distances*: smaller means closer. ``similarity`` turns one into the natural
similarity (cosine, dot, or the negated distance). Losses, miners and evaluators take a distance by name.

| name                | pairwise d(u, v)                  | note                                     |
| ------------------- | --------------------------------- | ---------------------------------------- |
| ``cosine``          | 1 - cos(u, v)                     | in [0, 2]                                |
| ``dot``             | -u . v                            | unbounded; for normalised vectors 1 - d  |
| ``euclidean``       | ||u - v||_2                       | gradient kept finite at u == v           |
| ``squared_euclidean`` | ||u - v||_2^2                   |                                          |
| ``manhattan``       | ||u - v||_1                       |                                          |
| ``rbf``             | 1 - exp(-||u - v||^2 / sigma^2)   | in [0, 1)                                |

The learned weighted L1 (Koch et al. 2015) needs per-dimension weights, so it is a function of its own:
``weighted_manhattan(u, v, weights)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError

EPS = 1e-12


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite derivative at 0; clamping makes the gradient 0 there instead of NaN.
    return torch.sqrt(x.clamp_min(EPS))


# ------------------------------------------------------------------------------------ pairwise (N,)
def pairwise_cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(u, v, dim=-1)


def pairwise_dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return -(u * v).sum(dim=-1)


def pairwise_squared_euclidean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u - v).pow(2).sum(dim=-1)


def pairwise_euclidean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _safe_sqrt(pairwise_squared_euclidean(u, v))


def pairwise_manhattan(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u - v).abs().sum(dim=-1)


def pairwise_rbf(u: torch.Tensor, v: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    return 1.0 - torch.exp(-pairwise_squared_euclidean(u, v) / sigma**2)


def weighted_manhattan(u: torch.Tensor, v: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_j w_j |u_j - v_j|: (N, D), (N, D), (D,) -> (N,)."""
    return ((u - v).abs() * weights).sum(dim=-1)


# ------------------------------------------------------------------------------------ matrix (N, M)
def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.normalize(a, dim=-1, eps=EPS) @ F.normalize(b, dim=-1, eps=EPS).T


def dot_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -(a @ b.T)


def squared_euclidean_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Expanded form ||a||^2 + ||b||^2 - 2 a.b: one matmul; clamped at 0 against rounding.
    sq = a.pow(2).sum(-1)[:, None] + b.pow(2).sum(-1)[None, :] - 2.0 * (a @ b.T)
    return sq.clamp_min(0.0)


def euclidean_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _safe_sqrt(squared_euclidean_matrix(a, b))


def manhattan_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[:, None, :] - b[None, :, :]).abs().sum(-1)  # (N, M, D) summed: fine for batch-sized inputs


def rbf_matrix(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    return 1.0 - torch.exp(-squared_euclidean_matrix(a, b) / sigma**2)


PAIRWISE = {
    "cosine": pairwise_cosine,
    "dot": pairwise_dot,
    "euclidean": pairwise_euclidean,
    "squared_euclidean": pairwise_squared_euclidean,
    "manhattan": pairwise_manhattan,
    "rbf": pairwise_rbf,
}
MATRIX = {
    "cosine": cosine_matrix,
    "dot": dot_matrix,
    "euclidean": euclidean_matrix,
    "squared_euclidean": squared_euclidean_matrix,
    "manhattan": manhattan_matrix,
    "rbf": rbf_matrix,
}
DISTANCES = tuple(PAIRWISE)


def check_distance(name: str) -> str:
    if name not in PAIRWISE:
        raise ConfigError(f"unknown distance {name!r}; valid distances: {', '.join(DISTANCES)}")
    return name


def pairwise_distance(name: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """d(u_i, v_i) for each row: (N, D), (N, D) -> (N,)."""
    return PAIRWISE[check_distance(name)](u, v)


def distance_matrix(name: str, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """d(a_i, b_j) for every pair: (N, D), (M, D) -> (N, M); ``b`` defaults to ``a``."""
    return MATRIX[check_distance(name)](a, a if b is None else b)


def similarity(name: str, distance: torch.Tensor) -> torch.Tensor:
    """The natural similarity for a distance: cos for cosine, u.v for dot, -d otherwise."""
    check_distance(name)
    if name == "cosine":
        return 1.0 - distance
    return -distance
