"""Training on accelerate: the loop (``trainer``), its typed state (``state``), the optimizer and schedule
(``optim``), tasks and their batches (``tasks``), checkpoints, the files written beside a trained model
(``outputs``) and the accelerate set-up (``runtime``)."""

from .trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
