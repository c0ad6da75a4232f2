"""The calibrated threshold a model directory carries: saved and loaded with the model, a clear error for a
corrupt file, and applied by ``verify``."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese import ConfigError
from sbert_siamese.errors import ModelFormatError
from sbert_siamese.models.siamese import SiameseModel
from sbert_siamese.models.threshold import THRESHOLD_FILE, Threshold, load_threshold


def test_threshold_travels_with_the_model_directory(tiny_encoder, tmp_path):
    model = SiameseModel(
        tiny_encoder, threshold=Threshold(score="cosine", threshold=0.42, value=0.8, pairs=10)
    )
    model.save(tmp_path / "m")
    loaded = SiameseModel.load(tmp_path / "m")
    assert loaded.threshold == model.threshold
    # a later model saved into the same directory without a threshold must not inherit the old one
    SiameseModel(tiny_encoder).save(tmp_path / "m")
    assert not (tmp_path / "m" / THRESHOLD_FILE).exists()
    assert SiameseModel.load(tmp_path / "m").threshold is None


def test_corrupt_threshold_file_is_a_clear_error(tmp_path):
    (tmp_path / THRESHOLD_FILE).write_text('{"score": "cosine"}')
    with pytest.raises(ModelFormatError, match="threshold.json.*'score' and 'threshold'"):
        load_threshold(tmp_path)
    (tmp_path / THRESHOLD_FILE).write_text('{"score": "cosine", "threshold": 0.5, "colour": 1}')
    with pytest.raises(ModelFormatError, match="unknown keys"):
        load_threshold(tmp_path)
    (tmp_path / THRESHOLD_FILE).write_text("{not json")
    with pytest.raises(ModelFormatError, match="cannot read"):
        load_threshold(tmp_path)


def test_verify_applies_the_threshold_to_cosine_scores(tiny_encoder):
    a = ["a cat sits on the mat", "the stock market fell", "she plays the violin"]
    b = ["a cat is on the mat", "a recipe for soup", "she plays the violin"]
    u = tiny_encoder.encode(a, normalize=True)
    v = tiny_encoder.encode(b, normalize=True)
    cosines = np.sum(u * v, axis=1)
    ranked = np.sort(cosines)
    middle = float(ranked[0] + ranked[1]) / 2  # between the lowest and the middle pair
    model = SiameseModel(tiny_encoder, threshold=Threshold(score="cosine", threshold=middle))
    result = model.verify(a, b)
    np.testing.assert_allclose(result["scores"], cosines, atol=1e-5)
    assert result["same"].tolist() == (cosines >= middle).tolist()
    assert result["same"].sum() == 2
    single = model.verify(a[2], b[2])  # identical texts: cosine 1
    assert single["same"].tolist() == [True]
    assert model.verify(a, b, threshold=2.0)["same"].sum() == 0  # explicit override
    with pytest.raises(ConfigError, match="calibrate"):
        SiameseModel(tiny_encoder).verify(a, b)
