"""Contrastive loss (Hadsell, Chopra & LeCun 2006) and its online (hard-pair) form, on 0/1-labelled pairs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..distances import DISTANCES, pairwise_distance
from .registry import Objective, invalid, non_negative, param, register

# The loss assumes d >= 0 with d = 0 at u == v; the dot "distance" -u.v is neither.
CONTRASTIVE_DISTANCES = ("cosine", "euclidean", "squared_euclidean", "manhattan", "rbf")


def check_contrastive(margin: float, distance: str) -> None:
    """The recipe checks of both contrastive losses (``ContrastiveParams`` runs them when a recipe is
    validated, the loss functions again on every call)."""
    if distance not in CONTRASTIVE_DISTANCES:
        raise invalid(
            "distance",
            f"contrastive losses need a distance that is >= 0 and 0 at u == v; got {distance!r}, "
            f"valid: {', '.join(CONTRASTIVE_DISTANCES)}",
        )
    non_negative("margin", margin)


@dataclass(frozen=True)
class ContrastiveParams:
    margin: float = param(0.5, "negatives closer than this are pushed apart (in units of the distance)")
    distance: str = param("cosine", f"one of {', '.join(CONTRASTIVE_DISTANCES)} (of {', '.join(DISTANCES)})")

    def __post_init__(self):
        check_contrastive(self.margin, self.distance)


def _check(margin: float, labels: torch.Tensor, u: torch.Tensor, distance: str) -> torch.Tensor:
    check_contrastive(margin, distance)
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


def _contrastive(embeddings, labels, head, params: ContrastiveParams) -> torch.Tensor:
    return contrastive_loss(embeddings[:, 0], embeddings[:, 1], labels, params.margin, params.distance)


def _online_contrastive(embeddings, labels, head, params: ContrastiveParams) -> torch.Tensor:
    return online_contrastive_loss(embeddings[:, 0], embeddings[:, 1], labels, params.margin, params.distance)


register(Objective(
    "contrastive", texts=(2,), target="binary", batch_wide=False, head=None, loss=_contrastive,
    params=ContrastiveParams,
    description="Hadsell 2006: pull duplicates together, push others beyond the margin",
))  # fmt: skip
register(Objective(
    "online_contrastive", texts=(2,), target="binary", batch_wide=True, head=None, loss=_online_contrastive,
    params=ContrastiveParams,
    description="contrastive over the hard positives and hard negatives of the batch",
))  # fmt: skip
