"""The verification objective of Siamese networks for one-shot recognition (Koch, Zemel & Salakhutdinov
2015): p(same) = sigmoid(sum_j alpha_j |u_j - v_j| + b), trained with binary cross-entropy on 0/1-labelled
pairs. alpha and b (``WeightedL1Head`` in ``models.heads``) are trained with the encoder and saved with the
model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.heads import WeightedL1Head
from .registry import NoParams, Objective, register


def verification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of (B,) "same" logits against (B,) labels in {0, 1}."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def _verification(embeddings, labels, head: WeightedL1Head, params: NoParams) -> torch.Tensor:
    return verification_loss(head(embeddings[:, 0], embeddings[:, 1]), labels)


def _new_head(dimension: int, params: NoParams) -> WeightedL1Head:
    return WeightedL1Head(dimension)


register(Objective(
    "verification", texts=(2,), target="binary", batch_wide=False, head="weighted_l1", loss=_verification,
    new_head=_new_head,
    description="Koch 2015: BCE of sigmoid(sum_j alpha_j |u_j - v_j| + b); alpha, b saved",
))  # fmt: skip
