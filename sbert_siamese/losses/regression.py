"""Regression objectives on scored pairs (u, v, score), gold scores scaled to [0, 1]: the cosine MSE of SBERT
(Reimers & Gurevych 2019) and CoSENT (Su 2022)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .registry import Objective, non_negative, param, register


@dataclass(frozen=True)
class RegressionParams:
    scale: float = param(20.0, "inverse temperature of CoSENT (the cosine loss has no parameter)")

    def __post_init__(self):
        non_negative("scale", self.scale)


def cosine_similarity_loss(u: torch.Tensor, v: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Mean squared error between cos(u_i, v_i) and the gold score (Reimers & Gurevych 2019, SBERT).

    loss = mean_i (cos(u_i, v_i) - score_i)^2

    Args:
        u, v: (B, D) embeddings of the two sides.
        scores: (B,) gold similarity in [0, 1].
    """
    cos = F.cosine_similarity(u, v, dim=-1)  # (B,)
    return F.mse_loss(cos, scores.to(cos.dtype))


def cosent_loss(u: torch.Tensor, v: torch.Tensor, scores: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su 2022): a ranking loss over every pair of pairs in the batch.

    loss = log(1 + sum_{(i, j): score_i > score_j} exp(scale * (cos_j - cos_i)))

    Only the order of the gold scores matters, so it fits Spearman-evaluated STS data well.

    Args:
        u, v: (B, D) embeddings; scores: (B,) gold scores (any scale); scale: inverse temperature.
    """
    cos = F.cosine_similarity(u, v, dim=-1) * scale  # (B,)
    diff = cos[None, :] - cos[:, None]  # (B, B): diff[i, j] = cos_j - cos_i
    ordered = scores[:, None] > scores[None, :]  # (B, B): score_i > score_j
    diff = diff.masked_fill(~ordered, float("-inf"))
    # logsumexp over [0, diff...] == log(1 + sum exp(diff)), computed stably.
    flat = torch.cat([torch.zeros(1, dtype=diff.dtype, device=diff.device), diff.flatten()])
    return torch.logsumexp(flat, dim=0)


def _cosine(embeddings, scores, head, params: RegressionParams) -> torch.Tensor:
    return cosine_similarity_loss(embeddings[:, 0], embeddings[:, 1], scores)


def _cosent(embeddings, scores, head, params: RegressionParams) -> torch.Tensor:
    return cosent_loss(embeddings[:, 0], embeddings[:, 1], scores, params.scale)


register(Objective(
    "cosine", texts=(2,), target="score", batch_wide=False, head=None, loss=_cosine, params=RegressionParams,
    description="MSE between cos(u, v) and the gold score (SBERT regression)",
))  # fmt: skip
register(Objective(
    "cosent", texts=(2,), target="score", batch_wide=True, head=None, loss=_cosent, params=RegressionParams,
    description="CoSENT: ranks every pair of pairs in the batch by cosine",
))  # fmt: skip
