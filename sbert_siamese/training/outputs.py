"""What a finished run writes beside the model: metrics.json, the recipe, train_log.jsonl, a model card,
the threshold calibrated on dev, and plots."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..evaluation import PairClassificationEvaluator, calibrate, pair_scores
from ..io.safe_io import staged_dir
from ..models.siamese import SiameseModel
from .checkpoints import FOLDER as CHECKPOINTS_FOLDER

logger = logging.getLogger(__name__)


def metrics_json(metrics: dict[str, float]) -> str:
    """Strict JSON: a NaN or infinite metric (e.g. a correlation of constant similarities) becomes null."""
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        logger.warning("metrics %s are not finite (constant predictions?); written as null", bad)
    clean = {k: (None if k in bad else v) for k, v in metrics.items()}
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def model_card(config: TrainConfig, metrics: dict[str, float]) -> str:
    """A short README.md for the trained model directory: what it is, how it was made, what it scored."""
    rows = [
        f"| {key} | {metrics.get('initial/' + key, float('nan')):.4f} | {value:.4f} |"
        for key, value in metrics.items()
        if not key.startswith(("initial/", "best/", "train/", "data/", "mined/", "calibration/"))
    ]
    calibrated = []
    if "calibration/threshold" in metrics:
        calibrated = [
            f"Calibrated threshold (best F1 on dev, stored in `threshold.json`; used by `verify`, `predict` "
            f"and `dedup`): {metrics['calibration/threshold']:.4f}.",
            "",
        ]
    return "\n".join(
        [
            "# Sentence encoder fine-tuned with sbert-siamese",
            "",
            f"Base model: `{config.model}`. Objective: `{config.loss}`. Training data: `{config.train_data}` "
            f"({config.data_format}). {int(metrics.get('train/steps', 0))} optimizer steps, "
            f"batch {config.batch_size}, learning rate {config.learning_rate}, seed {config.seed}. "
            "The full recipe is in `recipe.yaml`.",
            "",
            "Load with `SiameseEncoder.from_pretrained(path)` or "
            "`sentence_transformers.SentenceTransformer(path)`.",
            "",
            *calibrated,
            "| metric | before | after |",
            "| --- | --- | --- |",
            *rows,
            "",
        ]
    )


def calibrate_on_dev(model: SiameseModel, dev_eval, test_eval, batch_size: int) -> tuple[dict, dict]:
    """Store the best-F1 threshold on the dev pairs with the model (``threshold.json``), and report the
    test pairs' accuracy / F1 at that threshold: the numbers a user of ``verify`` / ``dedup`` gets.
    Also returns ``{name: (scores, labels, threshold)}`` of the test pairs for the plots."""
    score = "head" if dev_eval.use_head else "cosine"
    model.threshold = calibrate(
        model, dev_eval.sentences1, dev_eval.sentences2, dev_eval.labels, score, "f1", batch_size,
        source=f"{dev_eval.name} ({len(dev_eval.labels)} pairs)",
    )  # fmt: skip
    out = {
        "calibration/threshold": model.threshold.threshold,
        f"calibration/{dev_eval.name}_f1": model.threshold.f1,
    }
    if isinstance(test_eval, PairClassificationEvaluator):
        values = pair_scores(model, test_eval.sentences1, test_eval.sentences2, score, batch_size)
        same, gold = model.threshold.decide(values), test_eval.labels.astype(bool)
        tp = float(np.sum(same & gold))
        out[f"calibration/{test_eval.name}_accuracy"] = float(np.mean(same == gold))
        out[f"calibration/{test_eval.name}_f1"] = 2 * tp / max(float(same.sum() + gold.sum()), 1.0)
        return out, {f"{test_eval.name}_{score}": (values, test_eval.labels, model.threshold.threshold)}
    return out, {}


def write_plots(out_dir: Path, dev_eval, pair_plots: dict) -> None:
    """PNG plots beside metrics.json: the training curve (loss and dev metric per step) and, for labelled
    pairs, score histograms of duplicates vs non-duplicates with the threshold and a precision-recall
    curve. The model is already saved: a plotting failure is logged, never fatal."""
    from ..evaluation import plots

    try:
        plots.training_curve(
            out_dir / "train_log.jsonl",
            out_dir / "plots" / "training_curve.png",
            metric=dev_eval.primary_metric if dev_eval is not None else None,
        )
        for name, entry in pair_plots.items():
            xlabel = "P(same) from the head" if name.endswith("_head") else "cosine similarity"
            plots.write_pair_plots({name: entry}, out_dir / "plots", xlabel=xlabel)
    except Exception as exc:  # noqa: BLE001 - plots are a convenience on top of saved results
        logger.warning("could not write plots to %s: %s: %s", out_dir / "plots", type(exc).__name__, exc)


def write_output_dir(
    out_dir: Path, model: SiameseModel, config: TrainConfig, metrics: dict, log_records: list[dict],
    dev_eval, pair_plots: dict,
) -> None:  # fmt: skip
    """Everything goes into a staging folder that replaces output_dir once complete: a crash or a full
    disk here leaves the previous content (and the checkpoints) as they were."""
    carry = (CHECKPOINTS_FOLDER,) if config.keep_checkpoints else ()
    with staged_dir(out_dir, "output_dir", carry=carry) as stage:
        model._write_into(stage)  # the whole output_dir is staged here
        (stage / "metrics.json").write_text(metrics_json(metrics), encoding="utf-8")
        config.save(stage / "recipe.yaml")
        (stage / "README.md").write_text(model_card(config, metrics), encoding="utf-8")
        with open(stage / "train_log.jsonl", "w", encoding="utf-8") as fh:
            for rec in log_records:
                fh.write(json.dumps(rec) + "\n")
        if config.plots:
            write_plots(stage, dev_eval, pair_plots)
