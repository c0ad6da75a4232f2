"""Semantic textual similarity: how well embedding similarities of pairs follow gold scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr

from ..data.readers import PairExample
from ..models.scoring import embed_pairs, pairwise_similarities


class STSEvaluator:
    """Pearson and Spearman correlation between gold scores and embedding similarities.

    Keys: ``{name}_pearson_{sim}`` and ``{name}_spearman_{sim}`` for sim in cosine, euclidean, manhattan,
    dot; the primary metric is ``{name}_spearman_cosine``.

    Example:
        >>> ev = STSEvaluator(["a cat"], ["a dog"], [0.4], name="sts-dev")  # doctest: +SKIP
        >>> ev(encoder)["sts-dev_spearman_cosine"]  # doctest: +SKIP
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        scores: Sequence[float],
        name: str = "sts",
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ):
        if not (len(sentences1) == len(sentences2) == len(scores)):
            raise ValueError("sentences1, sentences2 and scores must have the same length")
        if len(scores) < 2:
            raise ValueError("an STS evaluation needs at least 2 pairs")
        self.sentences1 = list(sentences1)
        self.sentences2 = list(sentences2)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    @classmethod
    def from_examples(cls, examples: Sequence[PairExample], name: str = "sts", **kwargs) -> STSEvaluator:
        return cls(
            [e.text_a for e in examples],
            [e.text_b for e in examples],
            [e.score for e in examples],
            name,
            **kwargs,
        )

    @property
    def primary_metric(self) -> str:
        return f"{self.name}_spearman_cosine"

    def __call__(self, encoder) -> dict[str, float]:
        u, v = embed_pairs(encoder, self.sentences1, self.sentences2, self.batch_size, self.show_progress_bar)
        return self.compute(u, v)

    def compute(self, u: np.ndarray, v: np.ndarray) -> dict[str, float]:
        """Metrics from precomputed (N, D) embeddings of the two sides."""
        metrics = {}
        for sim, values in pairwise_similarities(u, v).items():
            metrics[f"{self.name}_pearson_{sim}"] = float(pearsonr(self.scores, values)[0])
            metrics[f"{self.name}_spearman_{sim}"] = float(spearmanr(self.scores, values)[0])
        return metrics
