"""``TrainState``: everything about a run's progress that a checkpoint saves and a resume restores.

Stored in a checkpoint's ``progress.json`` under the same keys as before this type existed, so
checkpoints written by earlier versions still resume.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    micro_batches: int = 0  # batches drawn from the stream (step * gradient_accumulation_steps, or fewer)
    examples_seen: int = 0  # over all processes
    losses: list[float] = field(default_factory=list)  # mean loss of each optimizer step
    log_records: list[dict] = field(default_factory=list)  # train_log.jsonl: loss, lr, dev metrics per step
    best_score: float | None = None  # best dev primary metric so far (None: no dev set yet evaluated)
    best_step: int = 0
    eval_seconds: float = 0.0  # dev evaluation inside the loop, reported so its cost is visible
    seconds: float = 0.0  # training time before this process started (a resumed run continues the clock)
    metrics: dict = field(default_factory=dict)  # data statistics and the starting model's metrics
    data_fingerprint: str = ""
    _clock: float = field(default_factory=time.perf_counter, repr=False, compare=False)

    def start_clock(self) -> None:
        self._clock = time.perf_counter() - self.seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self._clock

    def record_step(self, loss: float, lr: float) -> dict:
        """Count a finished optimizer step; returns its log record (dev metrics may be added to it)."""
        self.step += 1
        self.losses.append(loss)
        return {"step": self.step, "loss": loss, "lr": lr}

    def improved(self, score: float) -> bool:
        """Take ``score`` (the dev primary metric at this step) as the best if it beats the best so far."""
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_step = score, self.step
            return True
        return False

    def to_progress(self, **extra) -> dict:
        """The checkpoint's ``progress.json``; ``extra`` adds the run's context (recipe, processes, ...)."""
        values = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        values["seconds"] = self.elapsed()
        return {**values, **extra}

    @classmethod
    def from_progress(cls, progress: dict) -> TrainState:
        names = [f for f in cls.__dataclass_fields__ if not f.startswith("_")]
        state = cls(**{k: progress[k] for k in names if k in progress})
        state.metrics, state.log_records, state.losses = (
            dict(state.metrics),
            list(state.log_records),
            list(state.losses),
        )
        return state
