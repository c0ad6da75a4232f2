"""``TrainState``: what a checkpoint saves of a run's progress, and its round trip."""

from __future__ import annotations

import json

import pytest

from sbert_siamese.training.state import TrainState

# The keys of progress.json as checkpoints have written them since checkpoints exist: a resume of an older
# checkpoint must find every one of them.
PROGRESS_KEYS = {
    "step", "micro_batches", "examples_seen", "losses", "log_records", "best_score", "best_step",
    "eval_seconds", "seconds", "metrics", "num_processes", "config", "data_fingerprint", "scaler",
}  # fmt: skip


def test_progress_round_trip_keeps_every_field_and_the_saved_keys():
    state = TrainState(metrics={"data/train_pairs": 32})
    state.data_fingerprint = "abc"
    record = state.record_step(0.75, 1e-3)
    assert record == {"step": 1, "loss": 0.75, "lr": 1e-3}
    assert state.improved(0.5) and state.best_step == 1
    state.record_step(0.5, 2e-3)
    assert not state.improved(0.4) and (state.best_score, state.best_step) == (0.5, 1)
    assert state.improved(0.6) and (state.best_score, state.best_step) == (0.6, 2)
    state.micro_batches, state.examples_seen, state.eval_seconds = 4, 64, 1.5
    progress = json.loads(json.dumps(state.to_progress(num_processes=1, config={"seed": 0}, scaler=None)))
    assert set(progress) == PROGRESS_KEYS
    back = TrainState.from_progress(progress)
    for name in ("step", "micro_batches", "examples_seen", "losses", "best_score", "best_step",
                 "eval_seconds", "metrics", "data_fingerprint"):  # fmt: skip
        assert getattr(back, name) == getattr(state, name), name
    assert back.seconds == pytest.approx(progress["seconds"])


def test_a_resumed_clock_continues_from_the_saved_seconds():
    state = TrainState.from_progress({"seconds": 100.0})
    state.start_clock()
    assert 100.0 <= state.elapsed() < 101.0
    # the restored lists are the state's own: appending does not change the progress it came from
    progress = {"losses": [1.0], "log_records": [], "metrics": {}}
    restored = TrainState.from_progress(progress)
    restored.record_step(0.5, 0.0)
    assert progress["losses"] == [1.0]
