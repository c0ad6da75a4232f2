"""The objective registry: what each training objective needs from the data and how it computes its loss.

A training batch holds ``k`` texts per example (2 for pairs, 3 for triplets, 1 for labelled texts), encoded
together into embeddings of shape (B, k, D), plus one target per example. An ``Objective`` says how many
texts it takes, what its target is, whether it needs the whole (global) batch, which trainable head it owns,
and turns (embeddings, targets, head) into a scalar loss. The losses themselves live in ``losses/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.heads import SoftmaxHead, WeightedL1Head, softmax_loss, verification_loss
from .contrastive import contrastive_loss, online_contrastive_loss
from .in_batch import in_batch_negatives_loss
from .regression import cosent_loss, cosine_similarity_loss
from .triplet import (
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
    triplet_loss,
)

# What the target of an example is.
TARGETS = {
    "score": "a similarity score, scaled to [0, 1]",
    "binary": "1 = same / duplicate, 0 = different",
    "class": "a class index (e.g. NLI: 0 entailment, 1 neutral, 2 contradiction)",
    "group": "a group (class) id: texts with the same id are positives of each other",
    "none": "no target: the columns themselves say what is positive (anchor, positive[, negative])",
}


@dataclass(frozen=True)
class ObjectiveParams:
    """Hyper-parameters shared by the objectives (each uses the ones it needs)."""

    margin: float = 0.5
    distance: str = "cosine"
    scale: float = 20.0
    symmetric: bool = False
    num_labels: int = 2
    use_product: bool = False
    additive_margin: float = 0.0


@dataclass(frozen=True)
class Objective:
    name: str
    texts: tuple[int, ...]  # allowed numbers of texts per example
    target: str  # a key of TARGETS
    batch_wide: bool  # the loss of one example depends on the others: gather the global batch
    head: str | None  # "softmax" | "weighted_l1" | None
    loss: Callable[[torch.Tensor, torch.Tensor, torch.nn.Module | None, ObjectiveParams], torch.Tensor]
    description: str

    @property
    def evaluation(self) -> str:
        """Which evaluator suits data with this objective's targets: 'sts' or 'pairs'."""
        return "sts" if self.target == "score" else "pairs"


def _pair(fn):
    def loss(emb, target, head, p):
        return fn(emb[:, 0], emb[:, 1], target, p)

    return loss


def _in_batch(emb, target, head, p):
    negative = emb[:, 2] if emb.shape[1] > 2 else None
    ids = target.long() if target is not None and target.numel() and target.dtype != torch.float32 else None
    return in_batch_negatives_loss(
        emb[:, 0], emb[:, 1], negative, p.scale, p.distance, p.symmetric, ids, p.additive_margin
    )


def _mined(fn):
    def loss(emb, target, head, p):
        return fn(emb[:, 0], target.long(), p.margin, p.distance)

    return loss


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in [
        Objective("cosine", (2,), "score", False, None,
                  _pair(lambda u, v, t, p: cosine_similarity_loss(u, v, t)),
                  "MSE between cos(u, v) and the gold score (SBERT regression)"),
        Objective("cosent", (2,), "score", True, None,
                  _pair(lambda u, v, t, p: cosent_loss(u, v, t, p.scale)),
                  "CoSENT: ranks every pair of pairs in the batch by cosine"),
        Objective("contrastive", (2,), "binary", False, None,
                  _pair(lambda u, v, t, p: contrastive_loss(u, v, t, p.margin, p.distance)),
                  "Hadsell 2006: pull duplicates together, push others beyond the margin"),
        Objective("online_contrastive", (2,), "binary", True, None,
                  _pair(lambda u, v, t, p: online_contrastive_loss(u, v, t, p.margin, p.distance)),
                  "contrastive over the hard positives and hard negatives of the batch"),
        Objective("softmax", (2,), "class", False, "softmax",
                  lambda emb, t, head, p: softmax_loss(head(emb[:, 0], emb[:, 1]), t),
                  "cross-entropy of a classifier over (u, v, |u - v|[, u * v]); the head is saved"),
        Objective("verification", (2,), "binary", False, "weighted_l1",
                  lambda emb, t, head, p: verification_loss(head(emb[:, 0], emb[:, 1]), t),
                  "Koch 2015: BCE of sigmoid(sum_j alpha_j |u_j - v_j| + b); alpha, b saved"),
        Objective("triplet", (3,), "none", False, None,
                  lambda emb, t, head, p: triplet_loss(emb[:, 0], emb[:, 1], emb[:, 2], p.margin, p.distance),
                  "max(d(a, p) - d(a, n) + margin, 0) on (anchor, positive, negative) columns"),
        Objective("in_batch_negatives", (2, 3), "none", True, None, _in_batch,
                  "cross-entropy of each anchor against its positive among all positives of the batch"),
        Objective("batch_hard_triplet", (1,), "group", True, None, _mined(batch_hard_triplet_loss),
                  "Hermans 2017: hardest positive and negative per anchor in a P x K batch"),
        Objective("batch_semi_hard_triplet", (1,), "group", True, None, _mined(batch_semi_hard_triplet_loss),
                  "Schroff 2015: closest negative farther than the positive, within the margin"),
        Objective("batch_all_triplet", (1,), "group", True, None, _mined(batch_all_triplet_loss),
                  "every valid triplet of the batch, averaged over the active ones"),
    ]
}  # fmt: skip


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown loss {name!r}; valid: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def make_head(objective: Objective, dimension: int, params: ObjectiveParams) -> torch.nn.Module | None:
    if objective.head == "softmax":
        return SoftmaxHead(dimension, params.num_labels, params.use_product)
    if objective.head == "weighted_l1":
        return WeightedL1Head(dimension)
    return None
