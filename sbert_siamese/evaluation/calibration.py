"""Choosing a decision threshold: "same" when a pair's score clears a threshold chosen on labelled pairs.

``calibrate`` scores labelled pairs with a model, sweeps every distinct threshold, and keeps the one with the
best F1 (or accuracy). The result is a ``Threshold`` (``models.threshold``) that ``SiameseModel.save`` writes
to ``threshold.json`` in the model directory, so ``verify``, ``predict`` and ``dedup`` apply the same
decision rule later without re-calibrating (one-shot use: a new class needs one reference text, not
retraining).

Scores: ``cosine`` and ``dot`` are similarities ("same if score >= t"); ``euclidean`` and ``manhattan`` are
distances ("same if distance <= t"); ``head`` is the probability of "same" from a 2-class softmax or the
weighted-L1 verification head.

The stored rule itself (``Threshold``, ``save_threshold``, ``load_threshold``) and the pair scores
(``pair_scores``) belong to the model; they are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..models.scoring import DISTANCES, SCORES, pair_scores
from ..models.threshold import METRICS, THRESHOLD_FILE, Threshold, load_threshold, save_threshold
from .pair_classification import sweep_metrics

__all__ = [
    "DISTANCES",
    "METRICS",
    "SCORES",
    "THRESHOLD_FILE",
    "Threshold",
    "best_threshold",
    "calibrate",
    "load_threshold",
    "pair_scores",
    "save_threshold",
]


def best_threshold(scores, labels, metric: str = "f1", is_distance: bool = False) -> dict[str, float]:
    """The threshold with the best ``metric`` over every distinct cut of ``scores`` (ties stay together),
    with F1, accuracy, precision and recall there. Among equally good cuts the strictest one (closest to
    the "similar" end) wins."""
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ConfigError(f"scores and labels must be 1-D and equally long: {scores.shape} vs {labels.shape}")
    if not set(np.unique(labels).tolist()) <= {0, 1}:
        raise ConfigError("labels must be 0 (different) or 1 (same)")
    if labels.size == 0 or labels.min() == labels.max():
        raise ConfigError("calibration needs both same (1) and different (0) pairs")
    if not np.isfinite(scores).all():
        raise ConfigError("scores contain NaN or inf")
    sweep = sweep_metrics(-scores if is_distance else scores, labels)
    best = int(np.argmax(sweep[metric]))
    threshold = float(sweep["threshold"][best])
    return {
        "threshold": -threshold if is_distance else threshold,
        **{key: float(sweep[key][best]) for key in ("f1", "accuracy", "precision", "recall")},
    }


def calibrate(
    model,
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    labels: Sequence[int],
    score: str = "cosine",
    metric: str = "f1",
    batch_size: int = 64,
    source: str | None = None,
    show_progress_bar: bool = False,
) -> Threshold:
    """Choose the threshold on ``score`` that maximises ``metric`` on labelled pairs (1 = same).

    Example:
        >>> t = calibrate(model, ["how to cook"], ["learn cooking"], [1])  # doctest: +SKIP
        >>> model.threshold = t; model.save(path)  # verify / predict / dedup use it from now on
    """
    labels = np.asarray(labels)
    values = pair_scores(model, texts_a, texts_b, score, batch_size, show_progress_bar)
    best = best_threshold(values, labels, metric, is_distance=score in DISTANCES)
    return Threshold(
        score=score,
        threshold=best["threshold"],
        metric=metric,
        value=best[metric],
        f1=best["f1"],
        accuracy=best["accuracy"],
        precision=best["precision"],
        recall=best["recall"],
        pairs=int(labels.size),
        positives=int(labels.sum()),
        source=source,
    )
