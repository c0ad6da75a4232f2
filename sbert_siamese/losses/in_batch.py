"""In-batch negatives (multiple-negatives ranking; Henderson et al. 2017, van den Oord et al. 2018).

For anchors a_1..a_B and positives p_1..p_B, every other positive in the batch (and every optional hard
negative) is a negative for a_i: loss = CE(scale * (sim(a_i, [p_1..p_B, n_1..n_B]) - m * e_i), target i),
with an optional additive margin m on the positive (0 by default: plain multiple-negatives ranking).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..distances import DISTANCES, distance_matrix, similarity
from .registry import Objective, non_negative, param, register


@dataclass(frozen=True)
class InBatchParams:
    scale: float = param(20.0, "inverse temperature applied to the similarities (20 for cosine, as in SBERT)")
    distance: str = param("cosine", f"the similarity is cos, dot or -distance: {', '.join(DISTANCES)}")
    symmetric: bool = param(False, "also classify each positive against all anchors; average both losses")
    additive_margin: float = param(
        0.0, "subtract this from each positive's similarity (AM-softmax, Yang et al. 2019)"
    )

    def __post_init__(self):
        non_negative("scale", self.scale)
        non_negative("additive_margin", self.additive_margin)


def in_batch_negatives_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor | None = None,
    scale: float = 20.0,
    distance: str = "cosine",
    symmetric: bool = False,
    positive_ids: torch.Tensor | None = None,
    additive_margin: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of each anchor against its own positive among all candidates of the batch.

    Args:
        anchor, positive: (B, D); negative: optional (B, D) hard negatives, added as extra candidates.
        scale: inverse temperature applied to the similarities (20 for cosine, as in SBERT).
        distance: any name from ``sbert_siamese.distances``; the similarity is cos, dot, or -distance.
        symmetric: also classify each positive against all anchors and average the two losses.
        positive_ids: (B,) ids of the positive texts (e.g. hashes). Another column whose id equals the
            anchor's own positive is the same text, not a negative, and is masked out.
        additive_margin: m subtracted from each anchor's similarity to its own positive before scaling
            (additive-margin softmax, Yang et al. 2019): the positive must beat every negative by m, not
            just rank first, so pairs the model already ranks right still carry a gradient.
    """
    candidates = positive if negative is None else torch.cat([positive, negative])  # (C, D)
    batch = anchor.shape[0]
    target = torch.arange(batch, device=anchor.device)
    sims = similarity(distance, distance_matrix(distance, anchor, candidates))  # (B, C)
    if additive_margin:
        sims = sims - additive_margin * F.one_hot(target, sims.shape[1]).to(sims.dtype)
    scores = scale * sims
    if positive_ids is not None:
        same = positive_ids[:, None] == positive_ids[None, :]  # (B, B)
        same &= ~torch.eye(batch, dtype=torch.bool, device=anchor.device)
        mask = torch.zeros_like(scores, dtype=torch.bool)
        mask[:, :batch] = same
        scores = scores.masked_fill(mask, float("-inf"))
    loss = F.cross_entropy(scores, target)
    if symmetric:
        back = similarity(distance, distance_matrix(distance, positive, anchor))  # (B, B)
        if additive_margin:
            back = back - additive_margin * torch.eye(batch, dtype=back.dtype, device=back.device)
        back = scale * back
        if positive_ids is not None:
            back = back.masked_fill(mask[:, :batch].T, float("-inf"))
        loss = (loss + F.cross_entropy(back, target)) / 2
    return loss


def _in_batch(embeddings, targets, head, params: InBatchParams) -> torch.Tensor:
    """(B, 2 or 3, D): anchor, positive[, hard negative]. The collator's targets are the positives' text ids
    (long), used to mask a duplicate positive; float or empty targets carry no ids."""
    negative = embeddings[:, 2] if embeddings.shape[1] > 2 else None
    usable = targets is not None and targets.numel() and targets.dtype != torch.float32
    ids = targets.long() if usable else None
    return in_batch_negatives_loss(
        embeddings[:, 0], embeddings[:, 1], negative, params.scale, params.distance, params.symmetric, ids,
        params.additive_margin,
    )  # fmt: skip


# Listed between the explicit and the batch-mined triplet losses, where it has always been.
register(
    Objective(
        "in_batch_negatives", texts=(2, 3), target="none", batch_wide=True, head=None, loss=_in_batch,
        params=InBatchParams,
        description="cross-entropy of each anchor against its positive among all positives of the batch",
    ),
    before="batch_hard_triplet",
)  # fmt: skip
