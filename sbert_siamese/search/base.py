"""What every search here shares: input checks, embeddings as validated float32 tensors, and the
``SearchIndex`` interface that the exact, clustered and faiss indexes implement.

Embeddings are (N, D) numpy arrays or torch tensors and are never modified: ``_as_tensor`` and ``_prepare``
may return a view of them (never written to), ``_as_array`` a copy (which faiss searches may normalise in
place). Scores are similarities, ``cosine`` or ``dot``; ``exact`` states the result contract.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

Embeddings = np.ndarray | torch.Tensor

SIMILARITIES = ("cosine", "dot")

EPS = 1e-12


def _check_similarity(similarity: str) -> str:
    if similarity not in SIMILARITIES:
        raise ConfigError(f"unknown similarity {similarity!r}; valid similarities: {', '.join(SIMILARITIES)}")
    return similarity


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
    """(Q, D) ``queries`` must have the corpus's D."""
    if queries.shape[1] != dim:
        raise ValueError(f"queries have dimension {queries.shape[1]}, the corpus has {dim}")


def _normalise_array(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in place (zero rows stay zero)."""
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)
    return x


def _prepare(x: Embeddings, name: str, similarity: str) -> torch.Tensor:
    """``x`` as a validated float32 (N, D) tensor, rows L2-normalised for cosine (a new tensor then; for dot
    possibly a view of ``x``, not to be written to)."""
    t = _as_tensor(x, name)
    return F.normalize(t, dim=1, eps=EPS) if similarity == "cosine" else t


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
