"""Trainable comparison heads on (u, v): part of the trained model, saved and reloaded with it.

- ``SoftmaxHead`` (Reimers & Gurevych 2019): logits = W [u; v; |u - v| (; u * v)] + b, for 2-way
  duplicate or 3-way NLI classification, trained with cross-entropy.
- ``WeightedL1Head`` (Koch, Zemel & Salakhutdinov 2015): logit = sum_j alpha_j |u_j - v_j| + b,
  probability sigmoid(logit) that u and v are "the same", trained with binary cross-entropy.
Both are symmetric in (u, v) up to the order of the concatenation (the softmax head sees u and v in order).
Their losses live with their objectives: ``losses.softmax``, ``losses.verification``.
"""

from __future__ import annotations

import torch
from torch import nn


class SoftmaxHead(nn.Module):
    """(B, D), (B, D) -> (B, num_labels) logits."""

    def __init__(self, dimension: int, num_labels: int, use_product: bool = False):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.dimension = int(dimension)
        self.num_labels = int(num_labels)
        self.use_product = bool(use_product)
        parts = 4 if use_product else 3
        self.classifier = nn.Linear(parts * self.dimension, self.num_labels)

    def features(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        parts = [u, v, (u - v).abs()]
        if self.use_product:
            parts.append(u * v)
        return torch.cat(parts, dim=-1)  # (B, 3D or 4D)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(u, v))

    def config(self) -> dict:
        return {"type": "softmax", "dimension": self.dimension, "num_labels": self.num_labels,
                "use_product": self.use_product}  # fmt: skip


class WeightedL1Head(nn.Module):
    """(B, D), (B, D) -> (B,) logits of "same". alpha starts at -1 (a larger distance lowers the
    probability) and b at 0; both are learned."""

    def __init__(self, dimension: int):
        super().__init__()
        self.dimension = int(dimension)
        self.alpha = nn.Parameter(torch.full((self.dimension,), -1.0))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return ((u - v).abs() * self.alpha).sum(dim=-1) + self.bias

    @torch.no_grad()
    def init_from(self, u: torch.Tensor, v: torch.Tensor) -> None:
        """Data-dependent start: logits = (mean L1 - L1) / std L1 over sample pairs, i.e. alpha_j = -1/std and
        b = mean/std. The head then starts as a calibrated-ish ranking by L1 distance instead of pushing
        every pair to p ~ 0 (which, with BCE, sends large gradients into a pretrained encoder)."""
        distance = (u - v).abs().sum(dim=-1).float()  # (N,)
        std = distance.std().clamp_min(1e-6)
        self.alpha.fill_(-1.0 / float(std))
        self.bias.fill_(float(distance.mean() / std))

    def config(self) -> dict:
        return {"type": "weighted_l1", "dimension": self.dimension}
