"""Calibrated decision thresholds: "same" when a pair's score clears a threshold chosen on labelled pairs.

``calibrate`` scores labelled pairs with a model, sweeps every distinct threshold, and keeps the one with the
best F1 (or accuracy). The result is a ``Threshold`` that ``SiameseModel.save`` writes to
``threshold.json`` in the model directory, so ``verify``, ``predict`` and ``dedup`` apply the same decision
rule later without re-calibrating (one-shot use: a new class needs one reference text, not retraining).

Scores: ``cosine`` and ``dot`` are similarities ("same if score >= t"); ``euclidean`` and ``manhattan`` are
distances ("same if distance <= t"); ``head`` is the probability of "same" from a 2-class softmax or the
weighted-L1 verification head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelFormatError
from ..io.safe_io import atomic_write_text, writing

SCORES = ("cosine", "dot", "euclidean", "manhattan", "head")
DISTANCES = ("euclidean", "manhattan")
METRICS = ("f1", "accuracy")
THRESHOLD_FILE = "threshold.json"


@dataclass(frozen=True)
class Threshold:
    """A decision rule and how it was chosen. ``value`` is the calibration metric at ``threshold`` on the
    calibration pairs (``precision`` / ``recall`` / ``accuracy`` / ``f1`` are all at that threshold)."""

    score: str
    threshold: float
    metric: str = "f1"
    value: float | None = None  # None: set by hand, not calibrated
    f1: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    pairs: int = 0
    positives: int = 0
    source: str | None = None

    def __post_init__(self):
        if self.score not in SCORES:
            raise ConfigError(f"threshold score must be one of {', '.join(SCORES)}, got {self.score!r}")
        if self.metric not in METRICS:
            raise ConfigError(f"calibration metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if not isinstance(self.threshold, int | float) or not np.isfinite(self.threshold):
            raise ConfigError(f"threshold must be a finite number, got {self.threshold!r}")

    @property
    def is_distance(self) -> bool:
        return self.score in DISTANCES

    def decide(self, scores) -> np.ndarray:
        """(N,) bool: which pairs are "same" under this rule."""
        scores = np.asarray(scores, dtype=np.float64)
        return scores <= self.threshold if self.is_distance else scores >= self.threshold

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, origin: str = "threshold") -> Threshold:
        if not isinstance(data, dict) or "score" not in data or "threshold" not in data:
            raise ModelFormatError(f"{origin}: expected a JSON object with 'score' and 'threshold'")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelFormatError(f"{origin}: unknown keys {unknown}")
        try:
            return cls(**data)
        except (TypeError, ValueError, ConfigError) as exc:
            raise ModelFormatError(f"{origin}: {exc}") from None


def save_threshold(folder: str | Path, threshold: Threshold | None) -> None:
    """Write ``threshold.json`` into a model directory (a temporary file renamed over it), or remove a stale
    one when ``threshold`` is None. A full disk or a missing permission raises ``OutputError``."""
    path = Path(folder) / THRESHOLD_FILE
    if threshold is None:
        with writing(path, "the calibrated threshold"):
            path.unlink(missing_ok=True)
        return
    text = json.dumps(threshold.to_dict(), indent=2) + "\n"
    atomic_write_text(path, text, "the calibrated threshold")


def load_threshold(folder: str | Path) -> Threshold | None:
    path = Path(folder) / THRESHOLD_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: cannot read the calibrated threshold ({exc})") from None
    return Threshold.from_dict(data, str(path))


def pair_scores(model, texts_a: Sequence[str], texts_b: Sequence[str], score: str, batch_size: int = 64,
                show_progress_bar: bool = False) -> np.ndarray:  # fmt: skip
    """(N,) scores of pairs in the units of ``score`` (a similarity, a distance, or P(same) for ``head``)."""
    from .pair_classification import embed_pairs, pairwise_similarities

    if score not in SCORES:
        raise ConfigError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    if len(texts_a) != len(texts_b):
        raise ConfigError(f"texts_a and texts_b differ in length: {len(texts_a)} vs {len(texts_b)}")
    if not texts_a:
        return np.zeros(0, dtype=np.float64)
    u, v = embed_pairs(model, list(texts_a), list(texts_b), batch_size, show_progress_bar)
    if score == "head":
        if getattr(model, "head", None) is None:
            raise ConfigError("score 'head' needs a model with a softmax or verification head")
        probabilities = model.head_probabilities(u, v).numpy()
        if probabilities.shape[1] != 2:
            raise ConfigError(
                f"score 'head' needs a 2-class head (different, same), this one has {probabilities.shape[1]}"
            )
        return probabilities[:, 1].astype(np.float64)
    values = pairwise_similarities(u, v)[score]
    return -values if score in DISTANCES else values  # pairwise_similarities negates distances


def best_threshold(scores, labels, metric: str = "f1", is_distance: bool = False) -> dict[str, float]:
    """The threshold with the best ``metric`` over every distinct cut of ``scores`` (ties stay together),
    with F1, accuracy, precision and recall there. Among equally good cuts the strictest one (closest to
    the "similar" end) wins."""
    from .pair_classification import sweep_metrics

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
