"""Triplet loss (Schroff et al. 2015) on explicit triplets or on triplets mined inside a batch.

The miners (``losses.miners``) turn a batch of (embedding, group id) into index triplets (anchor, positive,
negative); ``batch_*_triplet_loss`` combine mining and the loss: batch-hard and batch-all (Hermans, Beyer &
Leibe 2017), semi-hard (Schroff et al. 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..distances import DISTANCES, distance_matrix, pairwise_distance
from .miners import batch_all_triplets, batch_hard_triplets, batch_semi_hard_triplets
from .registry import Objective, non_negative, param, register


@dataclass(frozen=True)
class TripletParams:
    margin: float = param(0.5, "d(a, n) must exceed d(a, p) by this much (in units of the distance)")
    distance: str = param("cosine", f"one of {', '.join(DISTANCES)}")

    def __post_init__(self):
        non_negative("margin", self.margin)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.5,
    distance: str = "euclidean",
) -> torch.Tensor:
    """mean_i max(d(a_i, p_i) - d(a_i, n_i) + margin, 0). Inputs (B, D)."""
    non_negative("margin", margin)
    d_ap = pairwise_distance(distance, anchor, positive)
    d_an = pairwise_distance(distance, anchor, negative)
    return F.relu(d_ap - d_an + margin).mean()


def _mined_loss(embeddings, labels, margin, distance, miner, average_active: bool = False) -> torch.Tensor:
    non_negative("margin", margin)
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


def _triplet(embeddings, targets, head, params: TripletParams) -> torch.Tensor:
    return triplet_loss(embeddings[:, 0], embeddings[:, 1], embeddings[:, 2], params.margin, params.distance)


def _mined(fn):
    """An objective's loss from a batch-mined loss: (B, 1, D) texts with (B,) group ids."""

    def loss(embeddings, groups, head, params: TripletParams) -> torch.Tensor:
        return fn(embeddings[:, 0], groups.long(), params.margin, params.distance)

    return loss


register(Objective(
    "triplet", texts=(3,), target="none", batch_wide=False, head=None, loss=_triplet, params=TripletParams,
    description="max(d(a, p) - d(a, n) + margin, 0) on (anchor, positive, negative) columns",
))  # fmt: skip
for _name, _fn, _description in (
    ("batch_hard_triplet", batch_hard_triplet_loss,
     "Hermans 2017: hardest positive and negative per anchor in a P x K batch"),
    ("batch_semi_hard_triplet", batch_semi_hard_triplet_loss,
     "Schroff 2015: closest negative farther than the positive, within the margin"),
    ("batch_all_triplet", batch_all_triplet_loss,
     "every valid triplet of the batch, averaged over the active ones"),
):  # fmt: skip
    register(Objective(
        _name, texts=(1,), target="group", batch_wide=True, head=None, loss=_mined(_fn), params=TripletParams,
        description=_description,
    ))  # fmt: skip
