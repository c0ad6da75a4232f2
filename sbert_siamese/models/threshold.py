"""The calibrated decision rule a model directory carries: "same" when a pair's score clears a threshold.

``evaluation.calibrate`` chooses it on labelled pairs; ``SiameseModel.save`` writes it to
``threshold.json`` in the model directory and ``SiameseModel.load`` reads it back, so ``verify``,
``predict`` and ``dedup`` apply the same rule later without re-calibrating. It lives with the model, not
with the evaluators, because it is part of what a saved model is.

Scores (``models.scoring``): ``cosine`` and ``dot`` are similarities ("same if score >= t");
``euclidean`` and ``manhattan`` are distances ("same if distance <= t"); ``head`` is the probability of
"same" from a 2-class softmax or the weighted-L1 verification head.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelFormatError
from ..io.safe_io import atomic_write_text, writing
from .scoring import DISTANCES, SCORES

METRICS = ("f1", "accuracy")  # what a calibration may maximise
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
    """The ``Threshold`` stored in a model directory, or None when it has none."""
    path = Path(folder) / THRESHOLD_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: cannot read the calibrated threshold ({exc})") from None
    return Threshold.from_dict(data, str(path))
