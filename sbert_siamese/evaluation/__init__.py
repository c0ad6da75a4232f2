"""Evaluators (STS, pair classification, duplicate mining, retrieval, triplets, one-shot), the STS suite,
threshold calibration and plots.

Each evaluator has a module of its own (``sts``, ``pair_classification``, ``duplicate_mining``,
``ranking`` for retrieval, ``triplet``, ``one_shot``); ``calibration`` chooses a decision threshold. The
threshold a model stores (``Threshold``, ``save_threshold``, ``load_threshold``) and the pair scores it is
applied to (``pair_scores``, ``pairwise_similarities``, ``embed_pairs``) belong to the model
(``models.threshold``, ``models.scoring``) and are re-exported here.
"""

from ..models.scoring import SCORES, SIMILARITIES, embed_pairs, pair_scores, pairwise_similarities
from ..models.threshold import METRICS, Threshold, load_threshold, save_threshold
from .calibration import best_threshold, calibrate
from .duplicate_mining import DuplicateMiningEvaluator
from .one_shot import OneShotEvaluator
from .pair_classification import (
    PairClassificationEvaluator,
    best_threshold_metrics,
    sweep_metrics,
    threshold_sweep,
)
from .ranking import RetrievalEvaluator, ranking_metrics
from .sts import STSEvaluator
from .sts_suite import evaluate_sts_suite, sts_suite_markdown
from .triplet import TripletEvaluator

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
    "best_threshold",
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
