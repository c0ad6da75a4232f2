"""Objectives: functions of embeddings and targets, never of the model.

The trainer runs the encoder; a loss only compares. One module per family holds its loss functions, their
parameters (a frozen dataclass with defaults, help and checks) and its objectives' registration:

- ``regression``: cosine MSE (SBERT), CoSENT, on scored pairs;
- ``contrastive``: contrastive (Hadsell et al. 2006) and online contrastive, on 0/1-labelled pairs;
- ``triplet``: explicit triplets and batch-hard / semi-hard / batch-all triplets mined by ``miners``;
- ``in_batch``: in-batch negatives (multiple-negatives ranking);
- ``softmax``: the SBERT classification head's cross-entropy;
- ``verification``: Koch et al.'s weighted-L1 head with binary cross-entropy.

``registry`` is the mechanism (``Objective``, ``register``, ``OBJECTIVES``, ``get_objective``, ``make_head``).
Importing this package imports every family, so ``OBJECTIVES`` is complete.
"""

from __future__ import annotations

# isort: off
# The import order is the order of OBJECTIVES (in_batch places itself before the batch-mined triplets).
from .regression import RegressionParams, cosent_loss, cosine_similarity_loss
from .contrastive import (
    CONTRASTIVE_DISTANCES,
    ContrastiveParams,
    contrastive_loss,
    hard_pair_mask,
    online_contrastive_loss,
)
from .softmax import SoftmaxParams, softmax_loss
from .verification import verification_loss
from .triplet import (
    TripletParams,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
    triplet_loss,
)
from .in_batch import InBatchParams, in_batch_negatives_loss
from .registry import (
    OBJECTIVES,
    TARGETS,
    NoParams,
    Objective,
    get_objective,
    invalid,
    make_head,
    param,
    register,
)

# isort: on

# name -> function of (u, v, scores)
PAIR_SCORE_LOSSES = {
    "cosine": cosine_similarity_loss,
    "cosent": cosent_loss,
}

__all__ = [
    "CONTRASTIVE_DISTANCES",
    "OBJECTIVES",
    "PAIR_SCORE_LOSSES",
    "TARGETS",
    "ContrastiveParams",
    "InBatchParams",
    "NoParams",
    "Objective",
    "RegressionParams",
    "SoftmaxParams",
    "TripletParams",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "batch_semi_hard_triplet_loss",
    "contrastive_loss",
    "cosent_loss",
    "cosine_similarity_loss",
    "get_objective",
    "hard_pair_mask",
    "in_batch_negatives_loss",
    "invalid",
    "make_head",
    "online_contrastive_loss",
    "param",
    "register",
    "softmax_loss",
    "triplet_loss",
    "verification_loss",
]
