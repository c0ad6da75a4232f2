"""Losses on (u, v, score) with gold similarity scores scaled to [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
