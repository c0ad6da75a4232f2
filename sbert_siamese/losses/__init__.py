"""Objectives: functions of embeddings and targets, never of the model.

The trainer runs the encoder; a loss only compares. ``registry`` says, per objective, how many texts an
example has, what its target is, which head it trains and how (embeddings, targets, head, parameters)
become a scalar.
"""

from __future__ import annotations

from .registry import OBJECTIVES, TARGETS, Objective, ObjectiveParams, get_objective, make_head
from .regression import cosent_loss, cosine_similarity_loss

# name -> function of (u, v, scores)
PAIR_SCORE_LOSSES = {
    "cosine": cosine_similarity_loss,
    "cosent": cosent_loss,
}

__all__ = [
    "OBJECTIVES",
    "PAIR_SCORE_LOSSES",
    "TARGETS",
    "Objective",
    "ObjectiveParams",
    "cosent_loss",
    "cosine_similarity_loss",
    "get_objective",
    "make_head",
]
