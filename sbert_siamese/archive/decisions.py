"""What an archive says about a pair of embeddings: its score, the duplicate decision under the calibrated
threshold, and the head's probabilities when the model has a head (``Match`` per archived question found)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ArchiveError
from ..models.scoring import DISTANCES, pairwise_similarities
from ..models.threshold import Threshold


@dataclass
class Match:
    """One archived question found for a query."""

    id: int
    text: str
    score: float  # similarity of the embeddings (cosine unless the threshold is on dot products)
    duplicate: bool | None  # under the calibrated threshold; None when the archive has none
    probability: float | None = None  # P(same) from a 2-class head
    probabilities: dict | None = None  # class -> probability, for a head of more than 2 classes
    metadata: dict | None = None

    def to_dict(self) -> dict:
        out = {"id": self.id, "text": self.text, "score": round(self.score, 6), "duplicate": self.duplicate}
        if self.probability is not None:
            out["probability"] = round(self.probability, 6)
        if self.probabilities is not None:
            out["probabilities"] = {k: round(v, 6) for k, v in self.probabilities.items()}
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class Judgement:
    """Scores and decisions for pairs of embeddings (the query side first)."""

    scores: np.ndarray
    duplicate: list
    probability: np.ndarray | None = None
    probabilities: list = field(default_factory=list)


def judge(model, rule: Threshold | None, score: str, u: np.ndarray, v: np.ndarray) -> Judgement:
    """Scores (``score``: cosine or dot), decisions under ``rule`` (None: no decision) and head probabilities
    for paired rows of query (u) and archived (v) embeddings."""
    similarities = pairwise_similarities(u, v) if len(u) else {}
    scores = similarities.get(score, np.zeros(0))
    out = Judgement(scores=scores, duplicate=[None] * len(u))
    if model.head is not None and len(u):
        probs = model.head_probabilities(torch.from_numpy(u), torch.from_numpy(v)).numpy()
        if probs.shape[1] == 2:
            out.probability = probs[:, 1]
        else:
            names = model.label_names or [str(i) for i in range(probs.shape[1])]
            out.probabilities = [dict(zip(names, map(float, row), strict=True)) for row in probs]
    if rule is not None and len(u):
        if rule.score == "head":
            if out.probability is None:
                raise ArchiveError(
                    "the threshold is on the head's P(same), but the model has no 2-class head"
                )
            values = out.probability
        else:
            values = similarities[rule.score]
            values = -values if rule.score in DISTANCES else values
        out.duplicate = [bool(d) for d in rule.decide(values)]
    return out
