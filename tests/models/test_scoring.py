"""Pair scores: every embedding similarity by hand, larger always means closer, and the scores a
threshold is applied to."""

from __future__ import annotations

import math

import numpy as np

from sbert_siamese.models.scoring import SIMILARITIES, pairwise_similarities


def test_pairwise_similarities_by_hand():
    u = np.array([[1, 0], [3, 4], [1, 2], [1, 1], [0, 0]], dtype=np.float32)  # (5, 2)
    v = np.array([[0, 1], [6, 8], [-1, -2], [2, 0], [1, 0]], dtype=np.float32)
    sims = pairwise_similarities(u, v)
    assert set(sims) == set(SIMILARITIES) == {"cosine", "euclidean", "manhattan", "dot"}
    expected = {
        "cosine": [0.0, 1.0, -1.0, 1 / math.sqrt(2), 0.0],  # a zero vector gives 0, not nan
        "euclidean": [-math.sqrt(2), -5.0, -math.sqrt(20), -math.sqrt(2), -1.0],
        "manhattan": [-2.0, -7.0, -6.0, -2.0, -1.0],
        "dot": [0.0, 50.0, -5.0, 2.0, 0.0],
    }
    for name, values in expected.items():
        assert sims[name].dtype == np.float64
        assert sims[name].shape == (5,)
        np.testing.assert_allclose(sims[name], values, rtol=1e-12, atol=1e-12, err_msg=name)


def test_pairwise_similarities_larger_means_closer():
    anchor = np.array([[1.0, 0.0, 0.0]] * 3)
    r = math.sqrt(0.5)
    others = np.array([[1.0, 0.0, 0.0], [r, r, 0.0], [-1.0, 0.0, 0.0]])  # same, 45 degrees, opposite (unit)
    for name, values in pairwise_similarities(anchor, others).items():
        assert values[0] > values[1] > values[2], name
