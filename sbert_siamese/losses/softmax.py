"""The SBERT classification objective (Reimers & Gurevych 2019): cross-entropy of a softmax classifier over
(u, v, |u - v|[, u * v]), e.g. 2-way duplicate detection or 3-way NLI. The classifier (``SoftmaxHead`` in
``models.heads``) is trained with the encoder and saved with the model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.heads import SoftmaxHead
from .registry import Objective, invalid, param, register


@dataclass(frozen=True)
class SoftmaxParams:
    num_labels: int = param(2, "classes of the softmax head")
    use_product: bool = param(False, "the head also sees u * v")

    def __post_init__(self):
        # Checked here, not only by SoftmaxHead: the head is built after the data is read.
        if self.num_labels < 2:
            message = f"num_labels must be >= 2 (the softmax head needs two classes), got {self.num_labels}"
            raise invalid("num_labels", message)


def softmax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, C) logits against (B,) integer labels."""
    return F.cross_entropy(logits, labels.long())


def _softmax(embeddings, labels, head: SoftmaxHead, params: SoftmaxParams) -> torch.Tensor:
    return softmax_loss(head(embeddings[:, 0], embeddings[:, 1]), labels)


def _new_head(dimension: int, params: SoftmaxParams) -> SoftmaxHead:
    return SoftmaxHead(dimension, params.num_labels, params.use_product)


register(Objective(
    "softmax", texts=(2,), target="class", batch_wide=False, head="softmax", loss=_softmax,
    params=SoftmaxParams, new_head=_new_head,
    description="cross-entropy of a classifier over (u, v, |u - v|[, u * v]); the head is saved",
))  # fmt: skip
