"""The training loop on accelerate: the same code on CPU, one GPU, or many processes.

``train`` reads top to bottom: ``setup`` (data -> model -> starting metrics -> loaders, optimizer,
schedule), then the loop (``train_step``, ``maybe_evaluate``, ``maybe_checkpoint``), then ``finish`` (best
weights, test metrics, calibration, files).

``batch_size`` is the global batch: accelerate splits each batch across processes (``split_batches``), so
a run on N processes sees the same pairs per step as a run on one, and reaches the same weights up to float
noise (dropout masks aside).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.prepare import TaskData, prepare_data
from ..errors import CheckpointError, ConfigError, TrainingDivergedError
from ..evaluation import PairClassificationEvaluator
from ..losses import Objective, get_objective, make_head
from ..models.encoder import SiameseEncoder
from ..models.heads import WeightedL1Head
from ..models.siamese import SiameseModel
from ..search import group_neighbours, mine_hard_negatives
from . import checkpoints
from .evaluators import Evaluators, evaluate
from .optim import build_optimizer, build_scheduler, clip_gradients
from .outputs import calibrate_on_dev, write_output_dir
from .runtime import check_environment, gather_with_grad, make_accelerator, on_main_process
from .state import TrainState
from .tasks import Task, batch_stream, check_shapes, extra_task, in_memory, make_loader

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    encoder: SiameseEncoder  # tower a of the trained model
    metrics: dict[str, float]
    losses: list[float] = field(default_factory=list)  # mean loss of each optimizer step
    output_dir: Path | None = None
    model: SiameseModel | None = None  # encoder(s) + head


def train(
    config: TrainConfig,
    encoder: SiameseEncoder | None = None,
    datasets: dict[str, list | None] | None = None,
    show_progress_bar: bool = False,
    save: bool = True,
) -> TrainResult:
    """Fine-tune a Siamese model as ``config`` says and write the results to ``config.output_dir``.

    Args:
        config: a validated ``TrainConfig`` (see ``load_recipe``).
        encoder: start from this encoder instead of loading ``config.model`` (tower a when untied).
        datasets: ``{"train": [...], "dev": [...] | None, "test": [...] | None}`` of ``Example`` (or
            ``PairExample``) instead of reading files; dev/test hold scored or 0/1-labelled pairs.
        show_progress_bar: a tqdm bar with the running loss (main process only).
        save: write the model directory, metrics.json, recipe.yaml, train_log.jsonl and README.md.

    Returns:
        ``TrainResult`` with the trained (best-on-dev) model and encoder, the metrics written to
        metrics.json and the per-step losses.
    """
    run = setup(config, encoder, datasets, show_progress_bar, save)
    state = run.state
    bar = tqdm(total=run.total_steps, initial=state.step, desc="Training", unit="step",
               disable=not (show_progress_bar and run.accelerator.is_main_process))  # fmt: skip
    run.prepared.train()
    for task, batch in run.stream:
        loss = train_step(run, task, batch)
        if loss is None:  # gradient accumulation: no optimizer step yet
            continue
        record = state.record_step(loss, run.scheduler.get_last_lr()[0])
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        last = state.step == run.total_steps
        record.update(maybe_evaluate(run, last))
        state.log_records.append(record)
        if last:
            break
        maybe_checkpoint(run)
    bar.close()
    return finish(run)


# ------------------------------------------------------------------------------------------- the run
@dataclass
class Run:
    """What the loop works with, built by ``setup``."""

    config: TrainConfig
    accelerator: Accelerator
    prepared: torch.nn.Module  # the model as accelerate wraps it (DDP on several processes)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    tasks: list[Task]  # tasks[0] is the main task: the only one whose loss sees the head
    stream: Iterator  # (task, batch) per micro-batch
    total_steps: int
    evaluators: Evaluators
    state: TrainState
    best_state: dict | None  # the best-on-dev weights (main process, when keep_best tracks them)
    out_dir: Path | None  # None: nothing is written (``save=False``)
    last_checkpoint: Path | None = None
    step_losses: list = field(default_factory=list)  # this optimizer step's micro-batch losses

    @cached_property
    def model(self) -> SiameseModel:  # unwrapped once: the loop reads it every micro-batch
        return self.accelerator.unwrap_model(self.prepared)

    @property
    def track_best(self) -> bool:
        return tracks_best(self.config, self.evaluators, self.accelerator)


def tracks_best(config: TrainConfig, evaluators: Evaluators, accelerator: Accelerator) -> bool:
    """Whether this process keeps the best-on-dev weights (the main process, with keep_best and a dev set)."""
    return config.keep_best and evaluators.dev is not None and accelerator.is_main_process


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}


# ------------------------------------------------------------------------------------------- set-up
def setup(config: TrainConfig, encoder, datasets, show_progress_bar: bool, save: bool) -> Run:
    """Everything before the first step, in an order that fails early: the machine and output folder, the
    data (a bad row fails in seconds, before weights load), the model, the starting metrics, then the
    loaders, optimizer and schedule. A resumed run restores its state last."""
    check_environment(config)
    objective = get_objective(config.loss)
    out_dir = checkpoints.check_output_dir(config) if save else None
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    resume_from = checkpoints.find_resume_point(config, accelerator) if config.resume else None
    main, data, extra_tasks = read_tasks(config, objective, datasets)
    fingerprint = checkpoints.data_fingerprint(data.train + [e for t in extra_tasks for e in t.examples])
    if resume_from is not None and resume_from.progress.get("data_fingerprint") != fingerprint:
        raise CheckpointError(
            f"{resume_from.path} was made from other training data (the examples read now differ from the "
            "checkpoint's); resume with the same data, or start afresh with --overwrite"
        )
    evaluators = Evaluators.build(data, config, objective)
    model = build_model(config, encoder, main, data, accelerator)
    if config.hard_negatives and data.corpus:
        add_hard_negatives(model, data, main, config, accelerator, show_progress_bar)
    state, best_state = starting_state(config, model, evaluators, data, accelerator, resume_from)
    state.data_fingerprint = fingerprint
    if config.compile:  # in place: parameter names (and so the saved model) stay as they are
        for tower in {id(model.tower(s)): model.tower(s) for s in ("a", "b")}.values():
            tower.transformer.compile(dynamic=True)

    # loaders (one per task), optimizer, schedule
    tasks = [task.with_collator(model.encoder) for task in [main, *extra_tasks]]
    neighbours = batch_neighbours(config, model, data, accelerator)
    pin = config.pin_memory and accelerator.device.type == "cuda"
    loaders = [make_loader(t, neighbours if i == 0 else None, pin) for i, t in enumerate(tasks)]
    steps_per_epoch = math.ceil(sum(len(loader) for loader in loaders) / config.gradient_accumulation_steps)
    # as in the HF Trainer, max_steps overrides epochs
    total_steps = config.max_steps if config.max_steps is not None else steps_per_epoch * config.epochs
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    prepared, optimizer, scheduler, *loaders = accelerator.prepare(model, optimizer, scheduler, *loaders)
    stream = batch_stream(tasks, loaders, total_steps * config.gradient_accumulation_steps, config)
    run = Run(config, accelerator, prepared, optimizer, scheduler, tasks, stream, total_steps, evaluators,
              state, best_state, out_dir)  # fmt: skip
    if resume_from is not None:
        checkpoints.restore(resume_from, run.model, optimizer, scheduler, stream, accelerator)
        run.last_checkpoint = resume_from.path
        logger.info("resumed from %s (step %d of %d)", resume_from.path, state.step, total_steps)
    state.start_clock()
    return run


def read_tasks(config: TrainConfig, objective: Objective, datasets) -> tuple[Task, TaskData, list[Task]]:
    """The main task's data (files, or ``datasets`` given in Python) and the recipe's extra tasks."""
    data = in_memory(datasets, objective) if datasets is not None else prepare_data(config, objective)
    check_shapes(data.train, objective, config)
    main = Task(config.loss, objective, objective.params_from(config), data.train, config)
    extra_tasks = [extra_task(config, spec, data, i) for i, spec in enumerate(config.tasks or [], start=1)]
    if extra_tasks and data.bad_rows is not None and data.bad_rows.total:
        data.stats.update(data.bad_rows.to_stats())  # the main task's counts plus the extra tasks' rows
    return main, data, extra_tasks


def load_encoder(config: TrainConfig, name: str) -> SiameseEncoder:
    return SiameseEncoder.from_pretrained(
        name,
        pooling=config.pooling,
        normalize=config.normalize,
        max_seq_length=config.max_seq_length,
        allow_pickle=config.allow_pickle,
    )


def build_model(config: TrainConfig, encoder, main: Task, data: TaskData, accelerator) -> SiameseModel:
    """Tower a (+ tower b when untied) + the objective's head, on the run's device."""
    if encoder is None:
        encoder = load_encoder(config, config.model)
    tower_b = load_encoder(config, config.model_b or config.model) if config.untied else None
    head = make_head(main.objective, encoder.embedding_dim, main.params)
    model = SiameseModel(encoder, head=head, tower_b=tower_b, label_names=config.label_names)
    model.to(accelerator.device)
    if isinstance(head, WeightedL1Head):
        # Deterministic (the first 256 training pairs), so every process starts from the same head.
        sample = data.train[:256]
        u, v = (
            model.encode([e.texts[i] for e in sample], side=side, convert_to="torch", batch_size=64)
            for i, side in ((0, "a"), (1, "b"))
        )
        head.init_from(u.to(accelerator.device), v.to(accelerator.device))
    return model


def add_hard_negatives(model, data: TaskData, main: Task, config, accelerator, show_progress_bar) -> None:
    """Turn (anchor, positive) pairs into triplets with the corpus text the starting model finds closest
    that is not a known positive. Mined once on the main process; every process gets the same triplets."""
    triplets, report = on_main_process(
        accelerator,
        lambda: mine_hard_negatives(
            model.tower("a"), data.train, data.corpus, data.same, show_progress_bar=show_progress_bar
        ),
    )
    data.train = triplets + data.negative_rows
    main.examples = data.train
    data.stats.update(report)
    if not data.train:
        raise ConfigError(f"hard-negative mining found no usable negative for any pair ({report})")
    check_shapes(data.train, main.objective, config)
    logger.info("mined hard negatives: %s", report)


def batch_neighbours(config: TrainConfig, model, data: TaskData, accelerator) -> dict | None:
    """P x K batches (sampler: groups): which groups to put together: those linked by a labelled
    non-duplicate, or with ``hard_batches`` the nearest groups by the starting model's embeddings."""
    if config.sampler != "groups":
        return None
    if config.hard_batches:
        return on_main_process(accelerator, lambda: group_neighbours(model.tower("a"), data.train))
    return data.group_neighbours


def starting_state(config, model, evaluators: Evaluators, data: TaskData, accelerator, resume_from):
    """A new run: the starting model's test and dev metrics (``initial/...``) and its weights as the best
    so far. A resumed run: the progress and best weights saved in its checkpoint."""
    track_best = tracks_best(config, evaluators, accelerator)
    if resume_from is not None:
        state = TrainState.from_progress(resume_from.progress)
        best_state = resume_from.best_state() if track_best else None
        if track_best and best_state is None:
            raise CheckpointError(f"{resume_from.path}: expected best.safetensors (keep_best is on)")
        return state, best_state
    state = TrainState(metrics=dict(data.stats))
    initial = evaluators.test_metrics(accelerator, model)
    initial_dev = evaluate(accelerator, model, evaluators.dev)
    state.metrics.update({f"initial/{k}": v for k, v in {**initial, **initial_dev}.items()})
    if evaluators.dev is not None:
        state.best_score = initial_dev.get(evaluators.dev.primary_metric)
    if initial_dev:
        state.log_records.append({"step": 0, **initial_dev})
    return state, snapshot(model) if track_best else None


# ------------------------------------------------------------------------------------------- the loop
def train_step(run: Run, task: Task, batch: dict) -> float | None:
    """One micro-batch: forward, loss, backward; on the last micro-batch of an optimizer step also the
    divergence check, clipping and the update. Returns the step's mean loss over all processes once the
    optimizer stepped, else None."""
    accelerator, state = run.accelerator, run.state
    state.micro_batches += 1
    targets = batch.pop("targets")
    step_loss = None
    with accelerator.accumulate(run.prepared):
        embeddings = run.prepared(**batch)  # (B, k, D)
        if task.objective.batch_wide and accelerator.num_processes > 1:
            # A loss over the whole batch (CoSENT, in-batch negatives, mined triplets) must see the
            # global batch, not this process's shard; see gather_with_grad.
            embeddings, targets = gather_with_grad(embeddings), gather_with_grad(targets)
        head = run.model.head if task is run.tasks[0] else None
        loss = task.objective.loss(embeddings.float(), targets, head, task.params)
        accelerator.backward(loss)
        run.step_losses.append(loss.detach())
        if accelerator.sync_gradients:
            step_loss = check_and_clip(run)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()
    state.examples_seen += batch["input_ids"].shape[0] * accelerator.num_processes
    if not accelerator.sync_gradients:
        return None
    run.step_losses = []
    return step_loss


def check_and_clip(run: Run) -> float:
    """Before the update: the step's mean loss over all processes (NaN anywhere makes it NaN everywhere,
    so every process stops at the same step) and the gradient norm, read in one sync, then clipping. With
    fp16 loss scaling an inf norm is routine (the scaler skips the step), so it is not watched then."""
    accelerator, config = run.accelerator, run.config
    watched = [accelerator.reduce(torch.stack(run.step_losses).mean(), reduction="mean")]
    if config.max_grad_norm > 0:
        norm = clip_gradients(accelerator, run.prepared, config.max_grad_norm)
        if norm is not None and accelerator.scaler is None:
            watched.append(norm.to(watched[0]))
    values = torch.stack(watched).tolist()
    for what, value in zip(("loss", "gradient norm"), values, strict=False):
        if not math.isfinite(value):
            raise diverged(run, what, value)
    return values[0]


def diverged(run: Run, what: str, value: float) -> TrainingDivergedError:
    kept = (
        f"the last good checkpoint, {run.last_checkpoint}, is intact (resume from it with --resume after "
        "changing nothing but the cause, or start afresh)"
        if run.last_checkpoint is not None
        else "no checkpoint was written yet (checkpoint_steps)"
    )
    return TrainingDivergedError(
        f"training stopped at step {run.state.step + 1} of {run.total_steps}: the {what} is {value}; the "
        f"weights were not updated with it and {kept}. Usual causes: a learning rate too high for this "
        f"loss (learning_rate={run.config.learning_rate}), fp16 overflow, or extreme targets in the data"
    )


def maybe_evaluate(run: Run, last: bool) -> dict:
    """Dev metrics every ``eval_steps`` and at the last step; keeps the best weights. Returns the metrics
    for this step's log record ({} when not evaluated)."""
    config, state, dev_eval = run.config, run.state, run.evaluators.dev
    if dev_eval is None or not ((config.eval_steps and state.step % config.eval_steps == 0) or last):
        return {}
    run.prepared.eval()
    started = time.perf_counter()
    dev = evaluate(run.accelerator, run.model, dev_eval)
    state.eval_seconds += time.perf_counter() - started
    run.prepared.train()
    score = dev[dev_eval.primary_metric]
    if state.improved(score) and run.track_best:
        run.best_state = snapshot(run.model)
    logger.info("step %d: %s=%.4f (best %.4f at step %d)", state.step, dev_eval.primary_metric, score,
                state.best_score, state.best_step)  # fmt: skip
    return dev


def maybe_checkpoint(run: Run) -> None:
    """Every ``checkpoint_steps``: weights, best weights, optimizer, schedule, progress and RNG state."""
    config, state, accelerator = run.config, run.state, run.accelerator
    if run.out_dir is None or not config.checkpoint_steps or state.step % config.checkpoint_steps:
        return
    progress = state.to_progress(
        num_processes=accelerator.num_processes,
        config=config.to_dict(),
        scaler=accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
    )
    run.last_checkpoint = checkpoints.write_checkpoint(
        accelerator, run.out_dir, state.step, run.model, run.best_state, run.optimizer, run.scheduler,
        progress, config,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- the end
def finish(run: Run) -> TrainResult:
    """The best weights, the final test metrics, the dev-calibrated threshold, and the output folder."""
    config, state, accelerator, model = run.config, run.state, run.accelerator, run.model
    seconds = state.elapsed()
    accelerator.wait_for_everyone()
    if run.track_best and state.best_step != state.step:
        model.load_state_dict(run.best_state)
        logger.info("restored the best dev weights (step %d of %d)", state.best_step, state.step)
    model.eval()
    metrics = state.metrics
    metrics.update(run.evaluators.test_metrics(accelerator, model))
    dev_eval, test_eval = run.evaluators.dev, run.evaluators.test
    if dev_eval is not None:
        metrics[f"best/{dev_eval.primary_metric}"] = float(state.best_score)
        metrics["best/step"] = state.best_step
    pair_plots = {}
    if isinstance(dev_eval, PairClassificationEvaluator) and accelerator.is_main_process:
        try:
            calibrated, pair_plots = calibrate_on_dev(model, dev_eval, test_eval, config.eval_batch_size)
            metrics.update(calibrated)
        except ConfigError as exc:  # e.g. dev pairs of one class: the trained model is still saved
            logger.warning("no threshold calibrated on dev: %s", exc)
    truncated = torch.tensor(sum(t.collator.truncated for t in run.tasks), device=accelerator.device)
    metrics.update(
        {
            "train/steps": state.step,
            "train/seconds": round(seconds, 3),
            "train/eval_seconds": round(state.eval_seconds, 3),
            "train/examples_per_second": round(
                state.examples_seen / max(seconds - state.eval_seconds, 1e-9), 3
            ),
            "train/truncated_texts": int(accelerator.reduce(truncated, "sum").item()),
            "train/num_processes": accelerator.num_processes,
        }
    )
    if run.out_dir is not None and accelerator.is_main_process:
        write_output_dir(run.out_dir, model, config, metrics, state.log_records, dev_eval, pair_plots)
    accelerator.wait_for_everyone()
    return TrainResult(model.encoder, metrics, state.losses, run.out_dir, model)
