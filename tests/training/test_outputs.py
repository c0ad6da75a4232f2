"""Files written beside a trained model (``training.outputs``)."""

from __future__ import annotations

import json

from sbert_siamese.training.outputs import metrics_json


def test_non_finite_metrics_are_written_as_null(caplog):

    with caplog.at_level("WARNING"):
        text = metrics_json({"a": 1.0, "b": float("nan"), "c": 3})
    assert json.loads(text) == {"a": 1.0, "b": None, "c": 3}
    assert "['b']" in caplog.text
