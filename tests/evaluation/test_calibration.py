"""Calibrated thresholds: the sweep finds planted and brute-force optima, and calibrate / predict / training
choose and store it (how it is saved, loaded and applied by ``verify``: tests/models/test_threshold.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sbert_siamese import ConfigError
from sbert_siamese.cli import main
from sbert_siamese.evaluation.calibration import Threshold, best_threshold, calibrate
from sbert_siamese.models.siamese import SiameseModel
from sbert_siamese.models.threshold import load_threshold


def brute_force_best(scores, labels, metric, is_distance=False):
    """Try "same if score >= s" (or <= for distances) for every observed s, plus "nothing is same"."""
    best = (-1.0, None)
    nothing = scores.min() - 1 if is_distance else scores.max() + 1
    candidates = [*sorted(set(scores.tolist())), nothing]
    for t in candidates:
        same = scores <= t if is_distance else scores >= t
        tp = np.sum(same & (labels == 1))
        fp = np.sum(same & (labels == 0))
        fn = np.sum(~same & (labels == 1))
        value = 2 * tp / (2 * tp + fp + fn) if metric == "f1" else np.mean(same == (labels == 1))
        if value > best[0] + 1e-12:
            best = (float(value), t)
    return best


def test_planted_threshold_is_found_with_perfect_f1_and_accuracy():
    scores = np.array([0.1, 0.3, 0.55, 0.58, 0.62, 0.7, 0.9])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    for metric in ("f1", "accuracy"):
        result = best_threshold(scores, labels, metric)
        assert 0.58 < result["threshold"] < 0.62  # midway between the classes: 0.60
        assert result["threshold"] == pytest.approx(0.60)
        assert result["f1"] == result["accuracy"] == result["precision"] == result["recall"] == 1.0


def test_distance_threshold_means_same_when_below():
    distances = np.array([0.2, 0.4, 1.1, 1.5])
    labels = np.array([1, 1, 0, 0])
    result = best_threshold(distances, labels, "f1", is_distance=True)
    assert result["threshold"] == pytest.approx(0.75)
    rule = Threshold(score="euclidean", threshold=result["threshold"])
    assert rule.decide(distances).tolist() == [True, True, False, False]


@pytest.mark.parametrize("metric", ["f1", "accuracy"])
@pytest.mark.parametrize("is_distance", [False, True])
def test_sweep_matches_brute_force_on_tied_random_scores(metric, is_distance):
    rng = np.random.default_rng(3)
    for _ in range(20):
        scores = rng.integers(0, 12, size=60) / 11.0  # many ties
        labels = (rng.random(60) < 0.3 + 0.5 * scores).astype(int)
        if labels.min() == labels.max():
            continue
        result = best_threshold(scores, labels, metric, is_distance)
        value, _ = brute_force_best(scores, labels, metric, is_distance)
        assert result[metric] == pytest.approx(value)
        # the returned threshold reproduces the value when applied as a rule
        rule = Threshold(score="manhattan" if is_distance else "cosine", threshold=result["threshold"])
        same = rule.decide(scores)
        tp, fp, fn = (
            np.sum(same & (labels == 1)),
            np.sum(same & (labels == 0)),
            np.sum(~same & (labels == 1)),
        )
        got = 2 * tp / (2 * tp + fp + fn) if metric == "f1" else np.mean(same == (labels == 1))
        assert got == pytest.approx(value)


def test_calibration_needs_both_classes_and_finite_scores():
    with pytest.raises(ConfigError, match="both same"):
        best_threshold(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ConfigError, match="NaN"):
        best_threshold(np.array([0.1, np.nan]), np.array([1, 0]))
    with pytest.raises(ConfigError, match="f1, accuracy"):
        best_threshold(np.array([0.1, 0.2]), np.array([1, 0]), metric="auc")
    with pytest.raises(ConfigError, match="cosine, dot"):
        Threshold(score="jaccard", threshold=0.5)


def test_calibrate_on_the_model_matches_the_sweep(tiny_encoder):
    a = ["a cat sits", "a dog runs", "the sun rises", "rain falls", "a cat sits", "birds sing"]
    b = ["a cat sits down", "a dog is running", "stock prices", "a red car", "the ocean", "birds are singing"]
    labels = [1, 1, 0, 0, 0, 1]
    model = SiameseModel(tiny_encoder)
    rule = calibrate(model, a, b, labels, score="cosine", metric="accuracy", source="unit")
    scores = model.verify(a, b, threshold=rule)["scores"]
    value, _ = brute_force_best(np.asarray(scores), np.asarray(labels), "accuracy")
    assert rule.value == pytest.approx(value) and rule.accuracy == pytest.approx(value)
    assert (rule.pairs, rule.positives, rule.source) == (6, 3, "unit")


def _pairs_file(path):
    rows = [
        ("how do i learn to cook", "what is the best way to learn cooking", 1),
        ("how do i learn to cook", "how do i fix my laptop fan", 0),
        ("what is the best phone to buy", "which phone should i buy", 1),
        ("what is the best phone to buy", "how do i learn guitar", 0),
        ("how can i run faster", "how can i run faster", 1),
        ("how can i run faster", "is it good to eat fish every day", 0),
    ]
    path.write_text("\n".join(json.dumps({"sentence1": a, "sentence2": b, "label": y}) for a, b, y in rows))
    return path


def test_cli_calibrate_then_predict_without_a_head(tiny_encoder, tmp_path, capsys):
    model_dir = SiameseModel(tiny_encoder).save(tmp_path / "m")
    pairs = _pairs_file(tmp_path / "pairs.jsonl")
    assert main(["calibrate", "--model", str(model_dir), "--pairs", str(pairs), "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = load_threshold(model_dir)
    assert stored is not None and stored.threshold == pytest.approx(printed["threshold"])
    assert stored.score == "cosine" and stored.pairs == 6 and stored.source == str(pairs)

    out = tmp_path / "pred.jsonl"
    assert main(["predict", "--model", str(model_dir), "--input", str(pairs), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert row["label"] == ("same" if row["cosine"] >= stored.threshold else "different")
    assert rows[4]["label"] == "same"  # identical texts


def test_cli_calibrate_refuses_to_write_into_a_packaged_model(tmp_path, capsys):
    pairs = _pairs_file(tmp_path / "pairs.jsonl")
    assert main(["calibrate", "--model", "all-MiniLM-L6-v2", "--pairs", str(pairs)]) == 2
    assert "--output" in capsys.readouterr().err


def test_predict_without_head_or_threshold_says_how_to_calibrate(tiny_encoder, tmp_path, capsys):
    model_dir = SiameseModel(tiny_encoder).save(tmp_path / "m")
    assert main(["predict", "--model", str(model_dir), "--a", "x", "--b", "y"]) == 2
    assert "calibrate" in capsys.readouterr().err


def test_training_on_labelled_pairs_stores_the_dev_threshold(tiny_bert_dir, tmp_path):
    from sbert_siamese.config import TrainConfig
    from sbert_siamese.data.examples import Example
    from sbert_siamese.training.trainer import train

    rows = [json.loads(line) for line in _pairs_file(tmp_path / "p.jsonl").read_text().splitlines()]
    pairs = [Example((r["sentence1"], r["sentence2"]), r["label"]) for r in rows]
    cfg = TrainConfig(
        model=str(tiny_bert_dir), loss="contrastive", margin=0.5, batch_size=6, max_steps=3, eval_steps=0,
        warmup_ratio=0.0, output_dir=str(tmp_path / "out"), eval_name="qqp",
    )  # fmt: skip
    result = train(cfg, datasets={"train": pairs, "dev": pairs, "test": pairs})
    stored = load_threshold(tmp_path / "out")
    assert stored is not None and stored.score == "cosine" and stored.source == "qqp-dev (6 pairs)"
    assert result.metrics["calibration/threshold"] == pytest.approx(stored.threshold)
    # dev = test here, so the test F1 at the dev threshold is the dev F1, recomputed independently
    assert result.metrics["calibration/qqp-test_f1"] == pytest.approx(stored.f1)
    assert "Calibrated threshold" in (tmp_path / "out" / "README.md").read_text()
    assert {"initial/qqp-test-mining_ap", "qqp-test-mining_ap", "qqp-test-mining_f1"} <= set(result.metrics)
    written = sorted(p.name for p in (tmp_path / "out" / "plots").iterdir())
    assert written == ["qqp-test_cosine_pr_curve.png", "qqp-test_cosine_similarity.png", "training_curve.png"]
