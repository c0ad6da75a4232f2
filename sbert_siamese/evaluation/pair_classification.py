"""Pair classification: labelled pairs (1 = same, 0 = different) scored by accuracy, F1, precision, recall,
MCC and average precision over every decision threshold.

``threshold_sweep`` / ``sweep_metrics`` / ``best_threshold_metrics`` work on plain scores (higher = more
similar), so calibration, duplicate mining and the plots share them. Evaluators are callables
``evaluator(model) -> dict[str, float]`` with flat, prefixed metric keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models.scoring import SIMILARITIES, embed_pairs, pairwise_similarities
from .sts import STSEvaluator

# STSEvaluator, SIMILARITIES, embed_pairs and pairwise_similarities lived in this module before the split
# into ``sts`` and ``models.scoring``; they stay importable from here for code written against that layout.
__all__ = [
    "SIMILARITIES",
    "PairClassificationEvaluator",
    "STSEvaluator",
    "best_threshold_metrics",
    "embed_pairs",
    "pairwise_similarities",
    "sweep_metrics",
    "threshold_sweep",
]


def threshold_sweep(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Confusion counts for every distinct decision threshold "same if score >= t" (higher = more similar).

    Returns arrays over the K + 1 cut points (K distinct scores): ``tp, fp, tn, fn`` and ``threshold``
    (midway between neighbouring distinct scores; just above the maximum for "nothing positive" and just
    below the minimum for "everything positive").
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # cut after position i only where the next score differs (ties go together)
    last_of_run = np.r_[s[1:] != s[:-1], True]
    tp = np.r_[0, np.cumsum(y)[last_of_run]]
    fp = np.r_[0, np.cumsum(~y)[last_of_run]]
    positives, negatives = y.sum(), (~y).sum()
    distinct = s[last_of_run]  # descending distinct scores
    spread = max(1e-6, 1e-6 * float(np.abs(distinct).max(initial=1.0)))
    threshold = np.r_[distinct[0] + spread, (distinct[:-1] + distinct[1:]) / 2, distinct[-1] - spread]
    return {"tp": tp, "fp": fp, "tn": negatives - fp, "fn": positives - tp, "threshold": threshold}


def sweep_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """``threshold_sweep`` plus accuracy, F1, MCC, precision and recall at every cut (arrays)."""
    sweep = threshold_sweep(scores, labels)
    tp, fp, tn, fn = (sweep[k].astype(np.float64) for k in ("tp", "fp", "tn", "fn"))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        **sweep,
        "accuracy": (tp + tn) / (tp + fp + tn + fn),
        "f1": np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0),
        "mcc": np.divide(tp * tn - fp * fn, denominator, out=np.zeros_like(tp), where=denominator > 0),
        "precision": np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0),
        "recall": np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0),
    }


def best_threshold_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 (with its precision and recall) and MCC, each at its own best threshold, and average
    precision. ``scores``: higher = more similar; ``labels``: 1 = same, 0 = different."""
    sweep = sweep_metrics(scores, labels)
    tp, fn = sweep["tp"], sweep["fn"]
    accuracy, f1, mcc = sweep["accuracy"], sweep["f1"], sweep["mcc"]
    precision, recall = sweep["precision"], sweep["recall"]
    # Average precision: sum over thresholds of (R_k - R_{k-1}) * P_k (scikit-learn's definition).
    ap = float(np.sum(np.diff(recall) * precision[1:])) if (tp + fn)[0] > 0 else 0.0
    best_acc, best_f1, best_mcc = int(np.argmax(accuracy)), int(np.argmax(f1)), int(np.argmax(mcc))
    return {
        "accuracy": float(accuracy[best_acc]),
        "accuracy_threshold": float(sweep["threshold"][best_acc]),
        "f1": float(f1[best_f1]),
        "f1_threshold": float(sweep["threshold"][best_f1]),
        "precision": float(precision[best_f1]),
        "recall": float(recall[best_f1]),
        "mcc": float(mcc[best_mcc]),
        "mcc_threshold": float(sweep["threshold"][best_mcc]),
        "ap": ap,
    }


class PairClassificationEvaluator:
    """Labelled pairs (1 = duplicate / same, 0 = different): accuracy, F1, precision, recall, MCC, each at
    its best threshold, and average precision, for cosine, dot, euclidean and manhattan.

    Keys: ``{name}_{metric}_{similarity}``, e.g. ``qqp-test_ap_cosine``, ``qqp-test_f1_threshold_cosine``.
    Thresholds are in each measure's own units: a similarity for cosine and dot ("same if >= t"), a
    distance for euclidean and manhattan ("same if <= t"). Primary metric: ``{name}_ap_cosine``.

    With ``use_head=True`` and a model whose head predicts "same" (a 2-class softmax or the weighted-L1
    verification head), the head's probability of "same" is scored too (keys ``..._head``) and becomes
    the primary metric.
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        labels: Sequence[int],
        name: str = "pairs",
        batch_size: int = 64,
        show_progress_bar: bool = False,
        use_head: bool = False,
    ):
        if not (len(sentences1) == len(sentences2) == len(labels)):
            raise ValueError("sentences1, sentences2 and labels must have the same length")
        self.use_head = use_head
        values = set(np.asarray(labels).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"labels must be 0 or 1, found {sorted(values - {0, 1})[:5]}")
        self.sentences1, self.sentences2 = list(sentences1), list(sentences2)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    @property
    def primary_metric(self) -> str:
        return f"{self.name}_ap_{'head' if self.use_head else 'cosine'}"

    def __call__(self, model) -> dict[str, float]:
        u, v = embed_pairs(model, self.sentences1, self.sentences2, self.batch_size, self.show_progress_bar)
        metrics = self.compute(u, v)
        if self.use_head:
            same = model.head_probabilities(u, v).numpy()  # from the embeddings above: no second encoding
            if same.shape[1] != 2:
                raise ValueError(
                    f"use_head needs a head with 2 classes (different, same), not {same.shape[1]}"
                )
            result = best_threshold_metrics(same[:, 1], self.labels)
            metrics.update({f"{self.name}_{key}_head": value for key, value in result.items()})
        return metrics

    def compute(self, u: np.ndarray, v: np.ndarray) -> dict[str, float]:
        metrics = {}
        for sim, values in pairwise_similarities(u, v).items():
            result = best_threshold_metrics(values, self.labels)
            if sim in ("euclidean", "manhattan"):  # similarities were negated distances
                for key in ("accuracy_threshold", "f1_threshold", "mcc_threshold"):
                    result[key] = -result[key]
            metrics.update({f"{self.name}_{key}_{sim}": value for key, value in result.items()})
        return metrics
