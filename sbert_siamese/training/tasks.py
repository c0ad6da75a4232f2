"""Training tasks: the main one and the recipe's ``tasks``, each with its objective, examples, collator and
batch sampler; and the stream of (task, batch) micro-batches the loop consumes."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..config import task_config as make_task_config
from ..data.examples import Example, ExampleCollator, from_pairs, normalise
from ..data.prepare import TaskData, prepare_data
from ..data.readers import PairExample
from ..data.samplers import GroupBatchSampler, LengthGroupedBatchSampler, NoDuplicatesBatchSampler
from ..errors import ConfigError
from ..losses import Objective, get_objective

__all__ = ["Task", "batch_stream", "check_shapes", "extra_task", "in_memory", "make_loader"]


@dataclass
class Task:
    """One training task: its objective, examples and batching (the main one, or one of ``tasks``)."""

    name: str
    objective: Objective
    params: object  # the objective's parameters (``objective.params_from(config)``)
    examples: list[Example]
    config: TrainConfig  # the batching options (batch_size, sampler) of this task
    collator: ExampleCollator | None = None  # set once the tokenizer is known (``with_collator``)

    def with_collator(self, encoder) -> Task:
        return dataclasses.replace(self, collator=ExampleCollator(encoder, self.objective.target))


def extra_task(config: TrainConfig, spec: dict, main: TaskData, index: int) -> Task:
    """Read one entry of ``tasks`` (validated with the recipe by ``config``). Its pairs that share a text
    with the main task's dev/test are dropped."""
    task_config = make_task_config(config, spec)
    objective = get_objective(task_config.loss)
    data = prepare_data(task_config, objective, bad_rows=main.bad_rows)
    held_out = {normalise(t) for part in (main.dev or [], main.test or []) for e in part for t in e.texts}
    examples = [e for e in data.train if not any(normalise(t) in held_out for t in e.texts)]
    check_shapes(examples, objective, task_config)
    name = spec.get("name", f"task{index}")
    return Task(name, objective, objective.params_from(task_config), examples, task_config)


def in_memory(datasets: dict, objective: Objective) -> TaskData:
    """``train(datasets={...})``: examples given in Python instead of read from files."""

    def convert(items):
        if items is None:
            return None
        return [from_pairs([e])[0] if isinstance(e, PairExample) else e for e in items]

    eval_target = "score" if objective.target == "score" else "binary"
    return TaskData(
        convert(datasets["train"]), convert(datasets.get("dev")), convert(datasets.get("test")), eval_target
    )


def check_shapes(train: list[Example], objective: Objective, config: TrainConfig) -> None:
    if not train:
        raise ConfigError("no training examples")
    sizes = {len(e.texts) for e in train}
    if len(sizes) != 1 or next(iter(sizes)) not in objective.texts:
        raise ConfigError(
            f"loss {config.loss} takes {' or '.join(map(str, objective.texts))} text(s) per example; the "
            f"training data has {sorted(sizes)} (check text_columns / derive)"
        )


def make_loader(task: Task, neighbours: dict | None = None, pin_memory: bool = False) -> DataLoader:
    """The task's DataLoader with its sampler; fails when the sampler cannot fill one batch."""
    train, config = task.examples, task.config
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
            collate_fn=task.collator,
            generator=generator,
            pin_memory=pin_memory,
        )
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=task.collator, pin_memory=pin_memory)
    if len(loader) == 0:
        raise ConfigError(
            f"task {task.name}: sampler {config.sampler} cannot fill one batch of {config.batch_size} from "
            f"{len(train)} training examples; lower batch_size (or use sampler: random, which allows a "
            "last partial batch)"
        )
    return loader


def batch_stream(tasks: list[Task], loaders: list, micro_batches: int, config: TrainConfig) -> Iterator:
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
