"""Training on accelerate: the loop (``trainer``), its typed state, the optimizer and schedule, tasks,
checkpoints and the files written beside a trained model."""
