"""Duplicate mining: every sentence of a corpus retrieves its nearest neighbours by cosine, and the
candidate pairs, ranked by cosine, are scored against the gold duplicate pairs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .pair_classification import threshold_sweep
from .ranking import cosine_top_k, encode_texts


def duplicate_closure(pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """All pairs (i, j), i < j, inside the connected components of the graph with edges ``pairs``
    (duplicates of duplicates are duplicates)."""
    from ..search import cluster_duplicates

    pairs = [(int(a), int(b)) for a, b in pairs]
    n = 1 + max((max(a, b) for a, b in pairs), default=-1)
    closed = set()
    for group in cluster_duplicates(n, [(a, b, 1.0) for a, b in pairs if a != b], representative="first"):
        members = sorted(group.members)
        closed.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    return closed


class DuplicateMiningEvaluator:
    """Mine a corpus for duplicates: every sentence retrieves its ``top_k`` most cosine-similar others; the
    distinct candidate pairs, ranked by cosine, are scored against the gold duplicate pairs.

    As in sentence-transformers' ``ParaphraseMiningEvaluator``, gold pairs never retrieved count as
    misses: recall is over *all* gold pairs. Keys: ``{name}_ap`` (average precision over the ranked
    candidates, sum over cut points of (R_k - R_{k-1}) P_k with tied scores cut together; primary),
    and at the threshold ("duplicate if cosine >= t") with the best F1: ``{name}_f1``,
    ``{name}_precision``, ``{name}_recall``, ``{name}_threshold``.

    Args:
        sentences: the corpus.
        duplicates: gold pairs, as (i, j) indices into ``sentences`` or as (text, text) pairs (each
            text must occur exactly once in ``sentences``). Order and repeats do not matter.
        top_k: neighbours retrieved per sentence (capped at ``len(sentences) - 1``).
    """

    def __init__(
        self,
        sentences: Sequence[str],
        duplicates: Iterable[tuple[int, int]] | Iterable[tuple[str, str]],
        name: str = "mining",
        top_k: int = 100,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ):
        self.sentences = list(sentences)
        if len(self.sentences) < 2:
            raise ValueError(f"duplicate mining needs at least 2 sentences, got {len(self.sentences)}")
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        self.gold = self._gold_pairs(duplicates)
        if not self.gold:
            raise ValueError("no gold duplicate pairs given")
        self.name = name
        self.top_k = int(top_k)
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    def _gold_pairs(self, duplicates) -> set[tuple[int, int]]:
        n = len(self.sentences)
        index: dict[str, int] | None = None
        gold = set()
        for pair in duplicates:
            if len(pair) != 2:
                raise ValueError(f"a duplicate pair must have 2 elements, got {pair!r}")
            a, b = pair
            if isinstance(a, str) or isinstance(b, str):
                if index is None:
                    index, repeated = {}, set()
                    for i, s in enumerate(self.sentences):
                        if s in index:
                            repeated.add(s)
                        index[s] = i
                    for s in repeated:
                        del index[s]
                for text in (a, b):
                    if text not in index:
                        problem = "occurs more than once in" if text in self.sentences else "is not in"
                        raise ValueError(f"duplicate pair text {text!r} {problem} the sentences")
                a, b = index[a], index[b]
            for i in (a, b):
                if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n:
                    raise ValueError(f"duplicate pair {pair!r}: index {i!r} is not in [0, {n})")
            if a == b:
                raise ValueError(f"duplicate pair {pair!r} pairs a sentence with itself")
            gold.add((int(min(a, b)), int(max(a, b))))
        return gold

    @classmethod
    def from_labelled_pairs(
        cls,
        texts_a: Sequence[str],
        texts_b: Sequence[str],
        labels: Sequence[int],
        name: str = "mining",
        **kwargs,
    ) -> DuplicateMiningEvaluator:
        """Corpus = the distinct texts of the pairs (first-seen order); gold = the label-1 pairs closed
        transitively (all pairs within each duplicate cluster). A label-0 pair inside a cluster is
        overruled by the closure; pairs of identical texts are dropped."""
        if not (len(texts_a) == len(texts_b) == len(labels)):
            raise ValueError("texts_a, texts_b and labels must have the same length")
        values = set(np.asarray(labels).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"labels must be 0 or 1, found {sorted(values - {0, 1})[:5]}")
        corpus = list(dict.fromkeys([*texts_a, *texts_b]))
        index = {s: i for i, s in enumerate(corpus)}
        edges = [
            (index[a], index[b])
            for a, b, y in zip(texts_a, texts_b, labels, strict=True)
            if int(y) == 1 and a != b
        ]
        return cls(corpus, sorted(duplicate_closure(edges)), name=name, **kwargs)

    @property
    def primary_metric(self) -> str:
        return f"{self.name}_ap"

    def __call__(self, model) -> dict[str, float]:
        embeddings = encode_texts(model, self.sentences, "a", self.batch_size, self.show_progress_bar)
        return self.compute(embeddings)

    def candidates(self, embeddings) -> tuple[np.ndarray, np.ndarray]:
        """Distinct candidate pairs (M, 2) with i < j, and their cosine (M,) in float64, best first."""
        if len(embeddings) != len(self.sentences):
            raise ValueError(f"expected {len(self.sentences)} embeddings, got {len(embeddings)}")
        _, neighbours = cosine_top_k(embeddings, embeddings, self.top_k, exclude_self=True)
        rows = np.repeat(np.arange(len(neighbours)), neighbours.shape[1])
        cols = neighbours.reshape(-1)
        pairs = np.unique(np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], axis=1), axis=0)
        # Rescore each pair once in float64 (a float32 matmul may give q_i.c_j and q_j.c_i different bits).
        unit = np.asarray(embeddings, dtype=np.float64)
        unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        scores = np.einsum("md,md->m", unit[pairs[:, 0]], unit[pairs[:, 1]])
        order = np.argsort(-scores, kind="stable")
        return pairs[order], scores[order]

    def compute(self, embeddings) -> dict[str, float]:
        """Metrics from (N, D) embeddings of ``sentences`` (row i = sentence i)."""
        pairs, scores = self.candidates(embeddings)
        n = len(self.sentences)
        gold_keys = np.array([i * n + j for i, j in self.gold], dtype=np.int64)
        labels = np.isin(pairs[:, 0].astype(np.int64) * n + pairs[:, 1], gold_keys)
        sweep = threshold_sweep(scores, labels)
        tp, fp = sweep["tp"].astype(np.float64), sweep["fp"].astype(np.float64)
        precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
        recall = tp / len(self.gold)  # unretrieved gold pairs are misses
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(tp > 0))
        best = int(np.argmax(f1))
        return {
            f"{self.name}_ap": float(np.sum(np.diff(recall) * precision[1:])),
            f"{self.name}_f1": float(f1[best]),
            f"{self.name}_precision": float(precision[best]),
            f"{self.name}_recall": float(recall[best]),
            f"{self.name}_threshold": float(sweep["threshold"][best]),
        }
