"""In-batch triplet miners: from a (B, B) distance matrix and (B,) class labels to index triplets.

Each returns three (T,) long tensors (anchor, positive, negative). A positive is another item with the
same label (never the anchor itself); a negative is an item with a different label.
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


# ------------------------------------------------------------------------------- offline, with an encoder
def mine_hard_negatives(
    encoder,
    pairs: list,
    corpus: list[str],
    same: dict[str, set[str]] | None = None,
    max_relative_similarity: float = 0.95,
    candidates: int = 30,
    batch_size: int = 64,
    show_progress_bar: bool = False,
) -> tuple[list, dict[str, float]]:
    """For each (anchor, positive) example, the corpus text most similar to the anchor that is not a known
    positive: not the anchor or positive themselves, not in ``same[normalise(anchor)]`` (e.g. its duplicate
    cluster), and with cos(anchor, n) < max_relative_similarity * cos(anchor, positive), since a candidate
    about as close as the positive is more likely an unlabelled duplicate than a negative.

    Returns ``(triplets, report)``: ``Example((anchor, positive, negative))`` for every pair that found one
    (pairs without a candidate are dropped) and counts for the log / metrics.
    """
    from ..data.examples import Example, normalise

    same = same or {}
    # One encoding pass over every distinct text; anchors and positives are looked up.
    every = list(dict.fromkeys([*corpus, *(p.texts[0] for p in pairs), *(p.texts[1] for p in pairs)]))
    position = {t: i for i, t in enumerate(every)}
    embeddings = encoder.encode(
        every, batch_size=batch_size, convert_to="torch", normalize=True, show_progress_bar=show_progress_bar
    )
    texts = list(dict.fromkeys(corpus))
    keys = [normalise(t) for t in texts]
    corpus_emb = embeddings[[position[t] for t in texts]]  # (M, D)
    anchors = embeddings[[position[p.texts[0]] for p in pairs]]  # (N, D)
    positives = embeddings[[position[p.texts[1]] for p in pairs]]  # (N, D)
    positive_sim = (anchors * positives).sum(-1)  # (N,)
    k = min(candidates, len(texts))
    triplets, skipped_close, without = [], 0, 0
    for start in range(0, len(pairs), 1024):  # chunked: memory bounded by 1024 x corpus
        sims = anchors[start : start + 1024] @ corpus_emb.T  # (C, M)
        top_sim, top_idx = sims.topk(k, dim=1)
        for row in range(top_sim.shape[0]):
            i = start + row
            a, p = pairs[i].texts[0], pairs[i].texts[1]
            banned = {normalise(a), normalise(p)} | same.get(normalise(a), set())
            limit = max_relative_similarity * float(positive_sim[i])
            chosen = None
            for s, j in zip(top_sim[row].tolist(), top_idx[row].tolist(), strict=True):
                if keys[j] in banned:
                    continue
                if s >= limit:
                    skipped_close += 1
                    continue
                chosen = texts[j]
                break
            if chosen is None:
                without += 1
                continue
            triplets.append(Example((a, p, chosen), None, pairs[i].source))
    report = {
        "mined/triplets": len(triplets),
        "mined/pairs_without_negative": without,
        "mined/candidates_too_close": skipped_close,
    }
    return triplets, report


def group_neighbours(encoder, examples: list, neighbours: int = 32, batch_size: int = 64) -> dict:
    """Group id -> the ids of the ``neighbours`` nearest other groups, nearest first, by the cosine of the
    groups' mean embeddings (``examples`` are ``Example((text,), group)``). For hard P x K batches."""
    import torch
    import torch.nn.functional as F

    texts = [e.texts[0] for e in examples]
    embeddings = encoder.encode(texts, batch_size=batch_size, convert_to="torch", normalize=True)
    ids = list(dict.fromkeys(e.target for e in examples))
    index = {g: i for i, g in enumerate(ids)}
    sums = torch.zeros(len(ids), embeddings.shape[1])
    sums.index_add_(0, torch.tensor([index[e.target] for e in examples]), embeddings)
    centres = F.normalize(sums, dim=-1)  # (G, D)
    k = min(neighbours + 1, len(ids))
    result = {}
    for start in range(0, len(ids), 1024):
        top = (centres[start : start + 1024] @ centres.T).topk(k, dim=1).indices  # (C, k)
        for row, near in enumerate(top.tolist()):
            result[ids[start + row]] = [ids[j] for j in near if j != start + row][:neighbours]
    return result
