"""Triplet accuracy: how often an anchor is closer to its positive than to its negative."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models.scoring import SIMILARITIES, pairwise_similarities
from .ranking import encode_texts


class TripletEvaluator:
    """Triplet accuracy: the fraction of (anchor, positive, negative) with sim(a, p) > sim(a, n), under
    each measure in ``distances`` (distances compared negated: closer = more similar). A tie counts as
    wrong. Keys: ``{name}_accuracy_{measure}``; primary: the first measure (cosine by default)."""

    def __init__(
        self,
        anchors: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        name: str = "triplets",
        distances: Sequence[str] = SIMILARITIES,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ):
        if not (len(anchors) == len(positives) == len(negatives)):
            raise ValueError(
                f"anchors, positives and negatives must have the same length, got "
                f"{len(anchors)}, {len(positives)}, {len(negatives)}"
            )
        if not anchors:
            raise ValueError("no triplets given")
        distances = tuple(distances)
        unknown = [d for d in distances if d not in SIMILARITIES]
        if unknown or not distances:
            raise ValueError(f"distances must be among {', '.join(SIMILARITIES)}, got {list(distances)}")
        self.anchors, self.positives, self.negatives = list(anchors), list(positives), list(negatives)
        self.distances = distances
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    @property
    def primary_metric(self) -> str:
        return f"{self.name}_accuracy_{self.distances[0]}"

    def __call__(self, model) -> dict[str, float]:
        a = encode_texts(model, self.anchors, "a", self.batch_size, self.show_progress_bar)
        others = list(dict.fromkeys(self.positives + self.negatives))  # each distinct text once
        index = {s: i for i, s in enumerate(others)}
        b = encode_texts(model, others, "b", self.batch_size, self.show_progress_bar)
        return self.compute(a, b[[index[s] for s in self.positives]], b[[index[s] for s in self.negatives]])

    def compute(self, anchors, positives, negatives) -> dict[str, float]:
        """Accuracies from (N, D) embeddings of the anchors, positives and negatives."""
        if not (len(anchors) == len(positives) == len(negatives) == len(self.anchors)):
            raise ValueError(f"expected {len(self.anchors)} embeddings of each kind")
        to_positive = pairwise_similarities(np.asarray(anchors), np.asarray(positives))
        to_negative = pairwise_similarities(np.asarray(anchors), np.asarray(negatives))
        return {
            f"{self.name}_accuracy_{d}": float(np.mean(to_positive[d] > to_negative[d]))
            for d in self.distances
        }
