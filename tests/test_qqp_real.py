"""Real-data QQP check (slow): one recipe end to end against the bar, on questions unseen in training."""

from __future__ import annotations

import pytest

from sbert_siamese.config import load_recipe
from sbert_siamese.examples import normalise

from .conftest import REPO

pytestmark = pytest.mark.slow

RECIPE = "qqp_contrastive"


def test_qqp_recipe_raises_test_ap_on_unseen_questions(shared_data_dir, packaged_minilm, tmp_path):
    from sbert_siamese.objectives import get_objective
    from sbert_siamese.task_data import prepare_data
    from sbert_siamese.training import train

    config = load_recipe(
        REPO / "recipes" / f"{RECIPE}.yaml",
        {"data_dir": str(shared_data_dir), "output_dir": str(tmp_path / RECIPE)},
    )
    data = prepare_data(config, get_objective(config.loss))
    train_texts = {normalise(t) for e in data.train for t in e.texts}
    assert not any(normalise(t) in train_texts for e in data.test for t in e.texts)  # unseen questions

    metrics = train(config).metrics
    gain = metrics["qqp-test_ap_cosine"] - metrics["initial/qqp-test_ap_cosine"]
    assert gain >= 0.03, metrics
