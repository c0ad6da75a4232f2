"""Offline hard negatives and neighbouring groups, found with an encoder over a whole corpus.

Unlike the in-batch triplet miners of ``losses.miners``, which pick from a (B, B) distance matrix during
training, these encode a corpus once before training: ``mine_hard_negatives`` turns (anchor, positive)
pairs into triplets with the nearest corpus text that is not a known positive (the ``mine`` command and
``hard_negatives: true``), and ``group_neighbours`` lists each group's nearest groups for hard P x K
batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.examples import Example, normalise


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
