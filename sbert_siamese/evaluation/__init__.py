"""Evaluators (STS, pair classification, duplicate mining, retrieval, triplets, one-shot), the STS suite,
threshold calibration and plots."""

from .calibration import METRICS, SCORES, Threshold, calibrate, load_threshold, pair_scores, save_threshold
from .pair_classification import (
    SIMILARITIES,
    PairClassificationEvaluator,
    STSEvaluator,
    best_threshold_metrics,
    embed_pairs,
    pairwise_similarities,
    sweep_metrics,
    threshold_sweep,
)
from .ranking import (
    DuplicateMiningEvaluator,
    OneShotEvaluator,
    RetrievalEvaluator,
    TripletEvaluator,
    ranking_metrics,
)
from .sts_suite import evaluate_sts_suite, sts_suite_markdown

# plots (matplotlib) is imported where it is used: ``from sbert_siamese.evaluation import plots``.
__all__ = [
    "METRICS",
    "SCORES",
    "SIMILARITIES",
    "DuplicateMiningEvaluator",
    "OneShotEvaluator",
    "PairClassificationEvaluator",
    "RetrievalEvaluator",
    "STSEvaluator",
    "Threshold",
    "TripletEvaluator",
    "best_threshold_metrics",
    "calibrate",
    "embed_pairs",
    "evaluate_sts_suite",
    "load_threshold",
    "pair_scores",
    "pairwise_similarities",
    "ranking_metrics",
    "save_threshold",
    "sts_suite_markdown",
    "sweep_metrics",
    "threshold_sweep",
]
