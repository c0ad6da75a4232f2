"""In-batch triplet miners: from a (B, B) distance matrix and (B,) class labels to index triplets.

Each returns three (T,) long tensors (anchor, positive, negative). A positive is another item with the
same label (never the anchor itself); a negative is an item with a different label. Offline hard
negatives, mined with an encoder over a whole corpus before training, are in ``search.hard_negatives``.
"""

from __future__ import annotations

import torch


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]  # (B, B)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positive mask, negative mask


def batch_all_triplets(d: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every (a, p, n) with label[a] == label[p], a != p, label[a] != label[n]."""
    pos, neg = _masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]  # (B, B, B): [a, p, n]
    a, p, n = valid.nonzero(as_tuple=True)
    return a, p, n


def batch_hard_triplets(d: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One triplet per anchor: its farthest positive and its closest negative."""
    pos, neg = _masks(labels)
    has_both = pos.any(1) & neg.any(1)
    hardest_pos = d.masked_fill(~pos, float("-inf")).argmax(1)  # (B,)
    hardest_neg = d.masked_fill(~neg, float("inf")).argmin(1)  # (B,)
    anchors = has_both.nonzero(as_tuple=True)[0]
    return anchors, hardest_pos[anchors], hardest_neg[anchors]


def batch_semi_hard_triplets(
    d: torch.Tensor, labels: torch.Tensor, margin: float
) -> tuple[torch.Tensor, ...]:
    """For each positive pair (a, p): the closest negative n with d(a,p) < d(a,n) < d(a,p) + margin."""
    pos, neg = _masks(labels)
    a, p = pos.nonzero(as_tuple=True)  # (P,) each
    d_ap = d[a, p][:, None]  # (P, 1)
    d_an = d[a]  # (P, B)
    semi = neg[a] & (d_an > d_ap) & (d_an < d_ap + margin)  # (P, B)
    keep = semi.any(1)
    n = d_an.masked_fill(~semi, float("inf")).argmin(1)  # (P,)
    return a[keep], p[keep], n[keep]
