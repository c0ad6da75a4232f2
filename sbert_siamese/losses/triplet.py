"""Triplet loss (Schroff et al. 2015) on explicit triplets or on triplets mined inside a batch.

Mining (``sbert_siamese.mining``) turns a batch of (embedding, class label) into index triplets
(anchor, positive, negative); ``batch_*_triplet_loss`` combine mining and the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distances import distance_matrix, pairwise_distance
from ..errors import ConfigError
from .miners import batch_all_triplets, batch_hard_triplets, batch_semi_hard_triplets


def _check_margin(margin: float) -> None:
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.5,
    distance: str = "euclidean",
) -> torch.Tensor:
    """mean_i max(d(a_i, p_i) - d(a_i, n_i) + margin, 0). Inputs (B, D)."""
    _check_margin(margin)
    d_ap = pairwise_distance(distance, anchor, positive)
    d_an = pairwise_distance(distance, anchor, negative)
    return F.relu(d_ap - d_an + margin).mean()


def _mined_loss(embeddings, labels, margin, distance, miner, average_active: bool = False) -> torch.Tensor:
    _check_margin(margin)
    d = distance_matrix(distance, embeddings)  # (B, B)
    a, p, n = miner(d.detach(), labels)
    if a.numel() == 0:
        return d.sum() * 0.0  # no valid triplet in this batch: zero loss, graph kept
    losses = F.relu(d[a, p] - d[a, n] + margin)
    if average_active:
        active = (losses > 0).sum()
        return losses.sum() / active.clamp_min(1)
    return losses.mean()


def batch_hard_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.5, distance: str = "euclidean"
) -> torch.Tensor:
    """Hermans et al. 2017: for each anchor, its farthest positive and closest negative in the batch.
    embeddings (B, D), labels (B,) class ids; anchors without a positive or a negative are skipped."""
    return _mined_loss(embeddings, labels, margin, distance, batch_hard_triplets)


def batch_semi_hard_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.5, distance: str = "euclidean"
) -> torch.Tensor:
    """Schroff et al. 2015: for each (anchor, positive), the closest negative that is still farther than
    the positive, within the margin: d(a,p) < d(a,n) < d(a,p) + margin. Pairs without one are skipped."""

    def miner(d, labels_):
        return batch_semi_hard_triplets(d, labels_, margin)

    return _mined_loss(embeddings, labels, margin, distance, miner)


def batch_all_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.5, distance: str = "euclidean"
) -> torch.Tensor:
    """Every valid triplet of the batch; averaged over the triplets with a non-zero loss (Hermans et al.
    2017, "batch all"), so that easy triplets do not dilute the gradient."""
    return _mined_loss(embeddings, labels, margin, distance, batch_all_triplets, average_active=True)
