"""Hand-made vectors and a fake encoder shared by the evaluator tests."""

from __future__ import annotations

import math

import numpy as np


def at_angles(*degrees: float) -> np.ndarray:
    """Unit 2-D vectors at the given angles: cosine similarity = cos(angle difference)."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def cos_deg(degrees: float) -> float:
    return math.cos(math.radians(degrees))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class FakeEncoder:
    """Looks up fixed vectors; records (texts, side) per call. ``untied=True`` takes a ``side`` argument."""

    def __init__(self, vectors: dict[str, list[float]], untied: bool = False):
        self.vectors = vectors
        self.untied = untied
        self.calls: list[tuple[list[str], str | None]] = []

    def encode(self, texts, batch_size=32, show_progress_bar=False, **kwargs):
        if not self.untied:
            assert "side" not in kwargs  # SiameseEncoder.encode has no side argument
        self.calls.append((list(texts), kwargs.get("side")))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)
