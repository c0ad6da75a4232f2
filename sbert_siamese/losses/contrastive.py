"""Contrastive loss (Hadsell, Chopra & LeCun 2006) and its online (hard-pair) form, on labelled pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distances import pairwise_distance
from ..errors import ConfigError

# The loss assumes d >= 0 with d = 0 at u == v; the dot "distance" -u.v is neither.
CONTRASTIVE_DISTANCES = ("cosine", "euclidean", "squared_euclidean", "manhattan", "rbf")


def _check(margin: float, labels: torch.Tensor, u: torch.Tensor, distance: str) -> torch.Tensor:
    if distance not in CONTRASTIVE_DISTANCES:
        raise ConfigError(
            f"contrastive losses need a distance that is >= 0 and 0 at u == v; got {distance!r}, "
            f"valid: {', '.join(CONTRASTIVE_DISTANCES)}"
        )
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
    if labels.shape != u.shape[:1]:
        raise ValueError(f"labels must have shape ({u.shape[0]},), got {tuple(labels.shape)}")
    return labels.to(u.dtype)


def contrastive_loss(
    u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, margin: float = 0.5, distance: str = "cosine"
) -> torch.Tensor:
    """mean_i [ y_i d_i^2 / 2 + (1 - y_i) max(0, margin - d_i)^2 / 2 ],  d_i = d(u_i, v_i).

    Similar pairs (y = 1) are pulled together; dissimilar pairs (y = 0) are pushed to at least ``margin``
    apart and ignored beyond it. Margins depend on the distance: about 0.5 for cosine (d in [0, 2]),
    about 1.0 for euclidean on normalised embeddings.

    Args:
        u, v: (B, D) embeddings; labels: (B,) 1 for "same", 0 for "different".
    """
    y = _check(margin, labels, u, distance)
    d = pairwise_distance(distance, u, v)  # (B,)
    return 0.5 * (y * d.pow(2) + (1 - y) * F.relu(margin - d).pow(2)).mean()


def hard_pair_mask(d: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Which pairs of the batch are hard: positives farther apart than the closest negative, negatives
    closer than the farthest positive. A batch with only one kind keeps all of that kind. (B,) -> (B,) bool.
    """
    pos, neg = labels == 1, labels == 0
    if not pos.any() or not neg.any():
        return torch.ones_like(pos)
    closest_negative = d[neg].min()
    farthest_positive = d[pos].max()
    return (pos & (d > closest_negative)) | (neg & (d < farthest_positive))


def online_contrastive_loss(
    u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, margin: float = 0.5, distance: str = "cosine"
) -> torch.Tensor:
    """The contrastive loss over the hard pairs of the batch only (see ``hard_pair_mask``), averaged over
    those pairs; 0 (with a gradient graph) when no pair is hard.
    """
    y = _check(margin, labels, u, distance)
    d = pairwise_distance(distance, u, v)  # (B,)
    hard = hard_pair_mask(d.detach(), labels)
    per_pair = 0.5 * (y * d.pow(2) + (1 - y) * F.relu(margin - d).pow(2))
    return (per_pair * hard).sum() / hard.sum().clamp_min(1)
