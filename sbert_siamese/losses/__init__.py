"""Objectives: functions of embeddings and labels, never of the model.

Each takes the two sides' embeddings ``u, v`` of shape (B, D) and per-pair targets of shape (B,), and
returns a scalar. The trainer runs the encoder; a loss only compares.
"""

from __future__ import annotations

from .regression import cosent_loss, cosine_similarity_loss

# name -> (function, what the data must provide)
PAIR_SCORE_LOSSES = {
    "cosine": cosine_similarity_loss,
    "cosent": cosent_loss,
}

__all__ = ["PAIR_SCORE_LOSSES", "cosent_loss", "cosine_similarity_loss"]
