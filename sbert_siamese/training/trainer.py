"""The training loop on accelerate: the same code on CPU, one GPU, or many processes.

Read top to bottom: data -> model -> initial evaluation -> optimizer/schedule -> loop (accumulate, clip,
step, evaluate on dev every N steps, keep the best) -> save model, metrics.json, recipe.yaml, train_log.jsonl.

``batch_size`` is the global batch: accelerate splits each batch across processes (``split_batches``), so
a run on N processes sees the same pairs per step as a run on one, and reaches the same weights up to float
noise (dropout masks aside).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedType, broadcast_object_list, set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.examples import Example, ExampleCollator, from_pairs, normalise
from ..data.prepare import SOURCE_KEYS, TaskData, make_evaluator, prepare_data
from ..data.readers import PairExample
from ..data.samplers import GroupBatchSampler, LengthGroupedBatchSampler, NoDuplicatesBatchSampler
from ..errors import CheckpointError, ConfigError, TrainingDivergedError
from ..evaluation import DuplicateMiningEvaluator, PairClassificationEvaluator, calibrate, pair_scores
from ..io.safe_io import staged_dir
from ..losses import Objective, ObjectiveParams, get_objective, make_head
from ..models.encoder import SiameseEncoder
from ..models.heads import WeightedL1Head
from ..models.siamese import SiameseModel
from ..search import group_neighbours, mine_hard_negatives
from . import checkpoints

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    encoder: SiameseEncoder  # tower a of the trained model
    metrics: dict[str, float]
    losses: list[float] = field(default_factory=list)  # mean loss of each optimizer step
    output_dir: Path | None = None
    model: SiameseModel | None = None  # encoder(s) + head


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm; a freshly initialised head may get its own rate."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((name.startswith("head."), no_decay), []).append(param)
    head_lr = config.head_learning_rate if config.head_learning_rate is not None else config.learning_rate
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else config.weight_decay,
                "lr": head_lr if is_head else config.learning_rate,
                "is_head": is_head,
            }
            for (is_head, no_decay), params in groups.items()
        ],
        lr=config.learning_rate,
        # One kernel per step over all parameters instead of a Python loop per tensor: on 2 CPU cores the
        # per-tensor loop (torch's CPU default) took a quarter of each training step (benchmarks/).
        fused=True,
    )


def _clip_gradients(accelerator: Accelerator, model: nn.Module, max_norm: float) -> torch.Tensor | None:
    """Clip the global gradient norm; what ``accelerator.clip_grad_norm_`` does (unscale, then clip) but
    with torch's multi-tensor kernels, which its CPU default does not use (one Python step per tensor).
    Returns the norm before clipping."""
    if accelerator.distributed_type not in (
        DistributedType.NO,
        DistributedType.MULTI_CPU,
        DistributedType.MULTI_GPU,
    ):
        norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)  # None under some engines
        return None if norm is None else torch.as_tensor(norm)
    accelerator.unscale_gradients()
    params = [p for p in model.parameters() if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """Linear warmup then linear decay to 0. With ``head_only_steps`` N, the encoder's rate is 0 for the
    first N steps (only a new head learns, so its random start sends no noise into the encoder) and its
    warmup / decay then run over the remaining steps."""
    frozen = (
        min(config.head_only_steps, total_steps) if any(g["is_head"] for g in optimizer.param_groups) else 0
    )

    def linear(start: int):
        warmup = int(config.warmup_ratio * (total_steps - start))

        def factor(step: int) -> float:
            if step < start:
                return 0.0
            step -= start
            if step < warmup:  # the same factors as transformers' get_linear_schedule_with_warmup
                return step / max(1, warmup)
            return max(0.0, (total_steps - start - step) / max(1, total_steps - start - warmup))

        return factor

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [linear(0) if g["is_head"] else linear(frozen) for g in optimizer.param_groups]
    )


def _evaluate(accelerator: Accelerator, model: SiameseModel, evaluator) -> dict:
    """Run on the main process; every process gets the same numbers (so all agree on 'best')."""
    result = [None]
    if evaluator is not None and accelerator.is_main_process:
        result = [evaluator(model)]
    if accelerator.num_processes > 1:
        result = broadcast_object_list(result, from_process=0)
    return result[0] or {}


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's (B_k, ...) tensor into the global batch, keeping the autograd graph.

    Every process then computes the same global loss; the gather's backward sums each process's share of
    the gradient (N times dL/dx_k) and DDP's averaging divides by N again, so parameters get exactly the
    gradient of the global loss.
    """
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def _has_accelerator() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or bool(mps is not None and mps.is_available())
        or bool(xpu is not None and xpu.is_available())
    )


def _forget_previous_accelerator(config: TrainConfig) -> None:
    """accelerate keeps one process-wide state and refuses a second Accelerator with another precision
    or device setting ("restart your runtime"). A second ``train()`` in the same notebook or test session
    should just work, so the per-run part of that state is cleared; the process group (PartialState) stays.
    """
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and (
        str(state.get("_mixed_precision", config.mixed_precision)) != config.mixed_precision
        or state.get("_cpu") != (config.cpu or not _has_accelerator())
    ):
        AcceleratorState._reset_state(reset_partial_state=False)


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
    if config.mixed_precision == "fp16" and (config.cpu or not torch.cuda.is_available()):
        raise ConfigError("mixed_precision=fp16 needs a CUDA GPU; use bf16 or no on CPU")
    objective = get_objective(config.loss)
    params = ObjectiveParams(
        config.margin, config.distance, config.scale, config.symmetric, config.num_labels, config.use_product,
        config.additive_margin,
    )  # fmt: skip
    if config.untied and objective.texts == (1,):
        raise ConfigError(f"untied towers need examples with two or more texts; loss {config.loss} has one")
    out_dir = checkpoints.check_output_dir(config) if save else None
    _forget_previous_accelerator(config)
    accelerator = Accelerator(
        # accelerate only forms a multi-process CPU (gloo) group when told it runs on the CPU.
        cpu=config.cpu or not _has_accelerator(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    if config.batch_size % accelerator.num_processes:
        raise ConfigError(
            f"batch_size={config.batch_size} must be divisible by the number of processes "
            f"({accelerator.num_processes}): it is the global batch, split across processes"
        )
    set_seed(config.seed)
    resume_from = checkpoints.find_resume_point(config, accelerator) if config.resume else None

    # 1. data (before the model: a bad row should fail in seconds, not after loading weights)
    data = _in_memory(datasets, objective) if datasets is not None else prepare_data(config, objective)
    _check_shapes(data.train, objective, config)
    extra_tasks = [_extra_task(config, spec, data, i) for i, spec in enumerate(config.tasks or [], start=1)]
    if extra_tasks and data.bad_rows is not None and data.bad_rows.total:
        data.stats.update(data.bad_rows.to_stats())  # the main task's counts plus the extra tasks' rows
    every_example = data.train + [e for *_, examples in extra_tasks for e in examples]
    data_fingerprint = checkpoints.data_fingerprint(every_example)
    if resume_from is not None and resume_from.progress.get("data_fingerprint") != data_fingerprint:
        raise CheckpointError(
            f"{resume_from.path} was made from other training data (the examples read now differ from the "
            "checkpoint's); resume with the same data, or start afresh with --overwrite"
        )
    dev_eval = make_evaluator(data.dev, "dev", data, config, objective)
    test_eval = make_evaluator(data.test, "test", data, config, objective)
    extra_evals = [
        make_evaluator(pairs, name, data, config, objective) for name, pairs in data.extra_tests.items()
    ]
    if config.mining_eval and isinstance(test_eval, PairClassificationEvaluator) and test_eval.labels.any():
        # the duplicate-mining view of the same test pairs: find the duplicates among all their texts
        extra_evals.append(
            DuplicateMiningEvaluator.from_labelled_pairs(
                test_eval.sentences1, test_eval.sentences2, test_eval.labels, f"{test_eval.name}-mining",
                batch_size=config.eval_batch_size,
            )
        )  # fmt: skip

    def test_metrics(m) -> dict:
        out = _evaluate(accelerator, m, test_eval)
        for evaluator in extra_evals:
            out.update(_evaluate(accelerator, m, evaluator))
        return out

    # 2. model: tower a (+ tower b when untied) + the objective's head
    if encoder is None:
        encoder = _load_encoder(config, config.model)
    tower_b = _load_encoder(config, config.model_b or config.model) if config.untied else None
    head = make_head(objective, encoder.embedding_dim, params)
    model = SiameseModel(encoder, head=head, tower_b=tower_b, label_names=config.label_names)
    model.to(accelerator.device)
    if isinstance(head, WeightedL1Head):
        # Deterministic (the first 256 training pairs), so every process starts from the same head.
        sample = data.train[:256]
        head.init_from(
            model.encode([e.texts[0] for e in sample], side="a", convert_to="torch", batch_size=64).to(
                accelerator.device
            ),
            model.encode([e.texts[1] for e in sample], side="b", convert_to="torch", batch_size=64).to(
                accelerator.device
            ),
        )

    if config.hard_negatives and data.corpus:
        # Mined once with the starting model, on the main process; every process gets the same triplets.
        result = [None]
        if accelerator.is_main_process:
            result = [
                mine_hard_negatives(
                    model.tower("a"), data.train, data.corpus, data.same, show_progress_bar=show_progress_bar
                )
            ]
        if accelerator.num_processes > 1:
            result = broadcast_object_list(result, from_process=0)
        data.train, report = result[0]
        data.train += data.negative_rows
        data.stats.update(report)
        if not data.train:
            raise ConfigError(f"hard-negative mining found no usable negative for any pair ({report})")
        _check_shapes(data.train, objective, config)
        logger.info("mined hard negatives: %s", report)

    # 3. the starting model's metrics (a resumed run has them in its checkpoint)
    metrics: dict[str, float] = dict(data.stats)
    log_records: list[dict] = []
    initial_dev = {}
    if resume_from is None:
        initial = test_metrics(model)
        initial_dev = _evaluate(accelerator, model, dev_eval)
        metrics.update({f"initial/{k}": v for k, v in {**initial, **initial_dev}.items()})
        best_score = initial_dev.get(dev_eval.primary_metric) if dev_eval else None
        best_step = 0
    else:
        progress = resume_from.progress
        metrics, log_records = dict(progress["metrics"]), list(progress["log_records"])
        best_score, best_step = progress["best_score"], progress["best_step"]
    track_best = config.keep_best and dev_eval is not None and accelerator.is_main_process

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: t.detach().to("cpu", copy=True) for k, t in model_state().items()}

    def model_state():
        return accelerator.unwrap_model(prepared).state_dict() if prepared is not None else model.state_dict()

    prepared = None
    best_state = None
    if track_best:
        best_state = snapshot() if resume_from is None else resume_from.best_state()
        if best_state is None:
            raise CheckpointError(f"{resume_from.path}: expected best.safetensors (keep_best is on)")
    if initial_dev:
        log_records.append({"step": 0, **initial_dev})

    if config.compile:  # in place: parameter names (and so the saved model) stay as they are
        for tower in {id(model.tower(s)): model.tower(s) for s in ("a", "b")}.values():
            tower.transformer.compile(dynamic=True)

    # 4. data loaders (one per task), optimizer, schedule
    collator = ExampleCollator(encoder, objective.target)
    tasks = [Task(config.loss, objective, params, data.train, collator, config)]
    for name, task_config, task_objective, task_params, examples in extra_tasks:
        tasks.append(
            Task(
                name,
                task_objective,
                task_params,
                examples,
                ExampleCollator(encoder, task_objective.target),
                task_config,
            )
        )
    neighbours = data.group_neighbours if config.sampler == "groups" else None
    if config.hard_batches and config.sampler == "groups":
        result = [group_neighbours(model.tower("a"), data.train) if accelerator.is_main_process else None]
        if accelerator.num_processes > 1:
            result = broadcast_object_list(result, from_process=0)
        neighbours = result[0]
    pin = config.pin_memory and accelerator.device.type == "cuda"
    loaders = [
        _loader(t.examples, t.collator, t.config, neighbours if i == 0 else None, pin)
        for i, t in enumerate(tasks)
    ]
    for task, loader in zip(tasks, loaders, strict=True):
        if len(loader) == 0:
            raise ConfigError(
                f"task {task.name}: sampler {task.config.sampler} cannot fill one batch of "
                f"{task.config.batch_size} from {len(task.examples)} training examples; lower batch_size "
                "(or use sampler: random, which allows a last partial batch)"
            )
    steps_per_epoch = math.ceil(sum(len(loader) for loader in loaders) / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:  # as in the HF Trainer, max_steps overrides epochs
        total_steps = config.max_steps
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config, total_steps)
    prepared, optimizer, scheduler, *loaders = accelerator.prepare(model, optimizer, scheduler, *loaders)
    unwrapped: SiameseModel = accelerator.unwrap_model(prepared)
    stream = _batch_stream(tasks, loaders, total_steps * config.gradient_accumulation_steps, config)

    # 5. the loop
    losses: list[float] = []
    step = micro_batches = examples_seen = 0
    step_losses: list[torch.Tensor] = []
    eval_seconds = elapsed_before = 0.0  # dev evaluation inside the loop, reported so its cost is visible
    last_checkpoint = None
    if resume_from is not None:
        checkpoints.restore(resume_from, unwrapped, optimizer, scheduler, stream, accelerator)
        progress = resume_from.progress
        step, micro_batches = progress["step"], progress["micro_batches"]
        examples_seen, losses = progress["examples_seen"], list(progress["losses"])
        eval_seconds, elapsed_before = progress["eval_seconds"], progress["seconds"]
        last_checkpoint = resume_from.path
        logger.info("resumed from %s (step %d of %d)", resume_from.path, step, total_steps)
    started = time.perf_counter() - elapsed_before
    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=not (show_progress_bar and accelerator.is_main_process),
        desc="Training",
        unit="step",
    )

    def diverged(what: str, value: float) -> TrainingDivergedError:
        kept = (
            f"the last good checkpoint, {last_checkpoint}, is intact (resume from it with --resume after "
            "changing nothing but the cause, or start afresh)"
            if last_checkpoint is not None
            else "no checkpoint was written yet (checkpoint_steps)"
        )
        return TrainingDivergedError(
            f"training stopped at step {step + 1} of {total_steps}: the {what} is {value}; the "
            f"weights were not updated with it and {kept}. Usual causes: a learning rate too high for this "
            f"loss (learning_rate={config.learning_rate}), fp16 overflow, or extreme targets in the data"
        )

    prepared.train()
    for task, batch in stream:
        micro_batches += 1
        targets = batch.pop("targets")
        with accelerator.accumulate(prepared):
            embeddings = prepared(**batch)  # (B, k, D)
            if task.objective.batch_wide and accelerator.num_processes > 1:
                # A loss over the whole batch (CoSENT, in-batch negatives, mined triplets) must see the
                # global batch, not this process's shard; see gather_with_grad.
                embeddings, targets = gather_with_grad(embeddings), gather_with_grad(targets)
            head = unwrapped.head if task is tasks[0] else None
            loss = task.objective.loss(embeddings.float(), targets, head, task.params)
            accelerator.backward(loss)
            step_losses.append(loss.detach())
            if accelerator.sync_gradients:
                # The step's mean loss over all processes (NaN anywhere makes it NaN everywhere, so every
                # process stops at the same step) and the gradient norm, read in one sync before the update.
                # With fp16 loss scaling an inf norm is routine (the scaler skips the step), so it is not
                # watched then.
                watched = [accelerator.reduce(torch.stack(step_losses).mean(), reduction="mean")]
                if config.max_grad_norm > 0:
                    norm = _clip_gradients(accelerator, prepared, config.max_grad_norm)
                    if norm is not None and accelerator.scaler is None:
                        watched.append(norm.to(watched[0]))
                values = torch.stack(watched).tolist()
                bad = [
                    (what, v)
                    for what, v in zip(("loss", "gradient norm"), values, strict=False)
                    if not math.isfinite(v)
                ]
                if bad:
                    raise diverged(*bad[0])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        examples_seen += batch["input_ids"].shape[0] * accelerator.num_processes
        if not accelerator.sync_gradients:
            continue
        step += 1
        mean_loss = values[0]
        step_losses = []
        losses.append(mean_loss)
        record = {"step": step, "loss": mean_loss, "lr": scheduler.get_last_lr()[0]}
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        last = step == total_steps
        if dev_eval is not None and ((config.eval_steps and step % config.eval_steps == 0) or last):
            prepared.eval()
            eval_started = time.perf_counter()
            dev = _evaluate(accelerator, unwrapped, dev_eval)
            eval_seconds += time.perf_counter() - eval_started
            prepared.train()
            record.update(dev)
            score = dev[dev_eval.primary_metric]
            if best_score is None or score > best_score:
                best_score, best_step = score, step
                if track_best:
                    best_state = snapshot()
            logger.info(
                "step %d: %s=%.4f (best %.4f at step %d)",
                step,
                dev_eval.primary_metric,
                score,
                best_score,
                best_step,
            )
        log_records.append(record)
        if last:
            break
        if save and config.checkpoint_steps and step % config.checkpoint_steps == 0:
            progress = {
                "step": step, "micro_batches": micro_batches, "examples_seen": examples_seen,
                "losses": losses, "log_records": log_records,
                "best_score": best_score, "best_step": best_step,
                "eval_seconds": eval_seconds, "seconds": time.perf_counter() - started, "metrics": metrics,
                "num_processes": accelerator.num_processes, "config": config.to_dict(),
                "data_fingerprint": data_fingerprint,
                "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
            }  # fmt: skip
            last_checkpoint = checkpoints.write_checkpoint(
                accelerator, out_dir, step, unwrapped, best_state, optimizer, scheduler, progress, config
            )
    bar.close()
    seconds = time.perf_counter() - started

    # 6. the best weights, final test metrics, files
    accelerator.wait_for_everyone()
    if track_best and best_step != step:
        unwrapped.load_state_dict(best_state)
        logger.info("restored the best dev weights (step %d of %d)", best_step, step)
    unwrapped.eval()
    metrics.update(test_metrics(unwrapped))
    if dev_eval is not None:
        metrics[f"best/{dev_eval.primary_metric}"] = float(best_score)
        metrics["best/step"] = best_step
    pair_plots = {}
    if isinstance(dev_eval, PairClassificationEvaluator) and accelerator.is_main_process:
        try:
            calibrated, pair_plots = _calibrate_on_dev(unwrapped, dev_eval, test_eval, config.eval_batch_size)
            metrics.update(calibrated)
        except ConfigError as exc:  # e.g. dev pairs of one class: the trained model is still saved
            logger.warning("no threshold calibrated on dev: %s", exc)
    truncated_here = torch.tensor(sum(t.collator.truncated for t in tasks), device=accelerator.device)
    truncated = accelerator.reduce(truncated_here, "sum")
    metrics.update(
        {
            "train/steps": step,
            "train/seconds": round(seconds, 3),
            "train/eval_seconds": round(eval_seconds, 3),
            "train/examples_per_second": round(examples_seen / max(seconds - eval_seconds, 1e-9), 3),
            "train/truncated_texts": int(truncated.item()),
            "train/num_processes": accelerator.num_processes,
        }
    )
    if save and accelerator.is_main_process:
        # Everything goes into a staging folder that replaces output_dir once complete: a crash or a full
        # disk here leaves the previous content (and the checkpoints) as they were.
        carry = (checkpoints.FOLDER,) if config.keep_checkpoints else ()
        with staged_dir(out_dir, "output_dir", carry=carry) as stage:
            unwrapped._write_into(stage)  # the whole output_dir is staged here
            (stage / "metrics.json").write_text(metrics_json(metrics), encoding="utf-8")
            config.save(stage / "recipe.yaml")
            (stage / "README.md").write_text(model_card(config, metrics), encoding="utf-8")
            with open(stage / "train_log.jsonl", "w", encoding="utf-8") as fh:
                for rec in log_records:
                    fh.write(json.dumps(rec) + "\n")
            if config.plots:
                _write_plots(stage, dev_eval, pair_plots)
    accelerator.wait_for_everyone()
    return TrainResult(unwrapped.encoder, metrics, losses, out_dir, unwrapped)


def _calibrate_on_dev(model: SiameseModel, dev_eval, test_eval, batch_size: int) -> tuple[dict, dict]:
    """Store the best-F1 threshold on the dev pairs with the model (``threshold.json``), and report the
    test pairs' accuracy / F1 at that threshold: the numbers a user of ``verify`` / ``dedup`` gets.
    Also returns ``{name: (scores, labels, threshold)}`` of the test pairs for the plots."""
    score = "head" if dev_eval.use_head else "cosine"
    model.threshold = calibrate(
        model, dev_eval.sentences1, dev_eval.sentences2, dev_eval.labels, score, "f1", batch_size,
        source=f"{dev_eval.name} ({len(dev_eval.labels)} pairs)",
    )  # fmt: skip
    out = {
        "calibration/threshold": model.threshold.threshold,
        f"calibration/{dev_eval.name}_f1": model.threshold.f1,
    }
    if isinstance(test_eval, PairClassificationEvaluator):
        values = pair_scores(model, test_eval.sentences1, test_eval.sentences2, score, batch_size)
        same, gold = model.threshold.decide(values), test_eval.labels.astype(bool)
        tp = float(np.sum(same & gold))
        out[f"calibration/{test_eval.name}_accuracy"] = float(np.mean(same == gold))
        out[f"calibration/{test_eval.name}_f1"] = 2 * tp / max(float(same.sum() + gold.sum()), 1.0)
        return out, {f"{test_eval.name}_{score}": (values, test_eval.labels, model.threshold.threshold)}
    return out, {}


def _write_plots(out_dir: Path, dev_eval, pair_plots: dict) -> None:
    """PNG plots beside metrics.json: the training curve (loss and dev metric per step) and, for labelled
    pairs, score histograms of duplicates vs non-duplicates with the threshold and a precision-recall
    curve. The model is already saved: a plotting failure is logged, never fatal."""
    from ..evaluation import plots

    try:
        plots.training_curve(
            out_dir / "train_log.jsonl",
            out_dir / "plots" / "training_curve.png",
            metric=dev_eval.primary_metric if dev_eval is not None else None,
        )
        for name, entry in pair_plots.items():
            xlabel = "P(same) from the head" if name.endswith("_head") else "cosine similarity"
            plots.write_pair_plots({name: entry}, out_dir / "plots", xlabel=xlabel)
    except Exception as exc:  # noqa: BLE001 - plots are a convenience on top of saved results
        logger.warning("could not write plots to %s: %s: %s", out_dir / "plots", type(exc).__name__, exc)


@dataclass
class Task:
    """One training task: its objective, examples and batching (the main one, or one of ``tasks``)."""

    name: str
    objective: Objective
    params: ObjectiveParams
    examples: list[Example]
    collator: ExampleCollator
    config: TrainConfig  # the batching options (batch_size, sampler) of this task


# Keys an entry of ``tasks`` may set: its data, objective and batching; model, optimiser and evaluation stay
# the recipe's.
TASK_KEYS = SOURCE_KEYS + (
    "name",
    "train_data",
    "extra_train_data",
    "derive",
    "hard_negatives",
    "labelled_negatives",
    "loss",
    "margin",
    "distance",
    "scale",
    "symmetric",
    "additive_margin",
    "sampler",
    "samples_per_group",
    "batch_size",
)


def _extra_task(config: TrainConfig, spec: dict, main: TaskData, index: int):
    """Read one entry of ``tasks``. Its pairs that share a text with the main task's dev/test are dropped."""
    if not isinstance(spec, dict) or "train_data" not in spec or "loss" not in spec:
        raise ConfigError(f"tasks[{index}] needs at least 'loss' and 'train_data': {spec}")
    unknown = sorted(set(spec) - set(TASK_KEYS))
    if unknown:
        raise ConfigError(f"tasks[{index}]: unknown key(s) {unknown}; valid: {', '.join(TASK_KEYS)}")
    # A task inherits the recipe's column names, formats and batching, but not the main task's data
    # shaping: its extra training data and derivation apply only where the task names them.
    overrides = {"extra_train_data": None, "derive": "none"}
    overrides.update({k: v for k, v in spec.items() if k != "name"})
    task_config = dataclasses.replace(
        config, **overrides, split="none", dev_data=None, test_data=None, extra_test_data=None, tasks=None
    )
    objective = get_objective(task_config.loss)
    if objective.head is not None:
        raise ConfigError(f"tasks[{index}]: loss {task_config.loss} trains a head; only the main task may")
    for key in ("hard_negatives", "labelled_negatives"):
        if spec.get(key):
            raise ConfigError(f"tasks[{index}]: {key} applies to the main task only")
    data = prepare_data(task_config, objective, bad_rows=main.bad_rows)
    held_out = {normalise(t) for part in (main.dev or [], main.test or []) for e in part for t in e.texts}
    examples = [e for e in data.train if not any(normalise(t) in held_out for t in e.texts)]
    _check_shapes(examples, objective, task_config)
    params = ObjectiveParams(
        task_config.margin, task_config.distance, task_config.scale, task_config.symmetric,
        additive_margin=task_config.additive_margin,
    )  # fmt: skip
    return spec.get("name", f"task{index}"), task_config, objective, params, examples


def _batch_stream(tasks: list[Task], loaders: list, micro_batches: int, config: TrainConfig):
    """(task, batch) for each micro-batch. One task: its loader, epoch after epoch. Several: round robin
    (task 1, 2, ..., 1, 2, ...) or proportional (a task drawn with probability proportional to its number of
    batches, from a seeded generator, so every process draws the same); an exhausted loader restarts."""
    iterators = [iter(loader) for loader in loaders]
    weights = [len(loader) for loader in loaders]
    rng = random.Random(config.seed)
    for i in range(micro_batches):
        if len(tasks) == 1:
            k = 0
        elif config.task_sampling == "round_robin":
            k = i % len(tasks)
        else:
            k = rng.choices(range(len(tasks)), weights)[0]
        try:
            batch = next(iterators[k])
        except StopIteration:
            iterators[k] = iter(loaders[k])
            batch = next(iterators[k])
        yield tasks[k], batch


def _load_encoder(config: TrainConfig, name: str) -> SiameseEncoder:
    return SiameseEncoder.from_pretrained(
        name,
        pooling=config.pooling,
        normalize=config.normalize,
        max_seq_length=config.max_seq_length,
        allow_pickle=config.allow_pickle,
    )


def _in_memory(datasets: dict, objective) -> TaskData:
    def convert(items):
        if items is None:
            return None
        return [from_pairs([e])[0] if isinstance(e, PairExample) else e for e in items]

    eval_target = "score" if objective.target == "score" else "binary"
    return TaskData(
        convert(datasets["train"]), convert(datasets.get("dev")), convert(datasets.get("test")), eval_target
    )


def _check_shapes(train: list[Example], objective, config: TrainConfig) -> None:
    if not train:
        raise ConfigError("no training examples")
    sizes = {len(e.texts) for e in train}
    if len(sizes) != 1 or next(iter(sizes)) not in objective.texts:
        raise ConfigError(
            f"loss {config.loss} takes {' or '.join(map(str, objective.texts))} text(s) per example; the "
            f"training data has {sorted(sizes)} (check text_columns / derive)"
        )


def _loader(
    train: list[Example],
    collator: ExampleCollator,
    config: TrainConfig,
    neighbours: dict | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    if config.sampler == "no_duplicates":
        sampler = NoDuplicatesBatchSampler(train, config.batch_size, config.seed)
    elif config.sampler == "length_grouped":
        sampler = LengthGroupedBatchSampler(train, config.batch_size, config.seed)
    elif config.sampler == "groups":
        groups = [e.target for e in train]
        sampler = GroupBatchSampler(
            groups, config.batch_size, config.samples_per_group, config.seed, neighbours=neighbours
        )
    else:
        generator = torch.Generator().manual_seed(config.seed)
        return DataLoader(
            train,
            batch_size=config.batch_size,
            shuffle=True,
            collate_fn=collator,
            generator=generator,
            pin_memory=pin_memory,
        )
    return DataLoader(train, batch_sampler=sampler, collate_fn=collator, pin_memory=pin_memory)


def metrics_json(metrics: dict[str, float]) -> str:
    """Strict JSON: a NaN or infinite metric (e.g. a correlation of constant similarities) becomes null."""
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        logger.warning("metrics %s are not finite (constant predictions?); written as null", bad)
    clean = {k: (None if k in bad else v) for k, v in metrics.items()}
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def model_card(config: TrainConfig, metrics: dict[str, float]) -> str:
    """A short README.md for the trained model directory: what it is, how it was made, what it scored."""
    rows = [
        f"| {key} | {metrics.get('initial/' + key, float('nan')):.4f} | {value:.4f} |"
        for key, value in metrics.items()
        if not key.startswith(("initial/", "best/", "train/", "data/", "mined/", "calibration/"))
    ]
    calibrated = []
    if "calibration/threshold" in metrics:
        calibrated = [
            f"Calibrated threshold (best F1 on dev, stored in `threshold.json`; used by `verify`, `predict` "
            f"and `dedup`): {metrics['calibration/threshold']:.4f}.",
            "",
        ]
    return "\n".join(
        [
            "# Sentence encoder fine-tuned with sbert-siamese",
            "",
            f"Base model: `{config.model}`. Objective: `{config.loss}`. Training data: `{config.train_data}` "
            f"({config.data_format}). {int(metrics.get('train/steps', 0))} optimizer steps, "
            f"batch {config.batch_size}, learning rate {config.learning_rate}, seed {config.seed}. "
            "The full recipe is in `recipe.yaml`.",
            "",
            "Load with `SiameseEncoder.from_pretrained(path)` or "
            "`sentence_transformers.SentenceTransformer(path)`.",
            "",
            *calibrated,
            "| metric | before | after |",
            "| --- | --- | --- |",
            *rows,
            "",
        ]
    )
