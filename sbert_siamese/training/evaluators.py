"""The evaluators of a run: dev (every ``eval_steps``; picks the best weights) and test (before and after
training), chosen by what the data's targets are, and run on the main process for every process."""

from __future__ import annotations

from dataclasses import dataclass, field

from accelerate import Accelerator

from ..config import TrainConfig
from ..data.examples import Example
from ..data.prepare import TaskData
from ..evaluation import DuplicateMiningEvaluator, PairClassificationEvaluator, STSEvaluator
from ..losses import Objective
from ..models.siamese import SiameseModel
from .runtime import on_main_process


def make_evaluator(
    examples: list[Example] | None, split: str, data: TaskData, config: TrainConfig, objective: Objective
):
    """STS (scored pairs) or pair classification (0/1 labels) on ``examples``; None without examples."""
    if not examples:
        return None
    prefix = config.eval_name or ("sts" if data.eval_target == "score" else "pairs")
    name = split if split not in ("dev", "test") else f"{prefix}-{split}"  # extra test sets keep their name
    s1 = [e.texts[0] for e in examples]
    s2 = [e.texts[1] for e in examples]
    targets = [e.target for e in examples]
    if data.eval_target == "score":
        return STSEvaluator(s1, s2, targets, name, batch_size=config.eval_batch_size)
    use_head = objective.head == "weighted_l1" or (objective.head == "softmax" and config.num_labels == 2)
    return PairClassificationEvaluator(s1, s2, targets, name, config.eval_batch_size, use_head=use_head)


@dataclass
class Evaluators:
    """Dev (every ``eval_steps``, picks the best weights) and test (before and after training) evaluators,
    plus the extra test sets and the duplicate-mining view of labelled test pairs."""

    dev: object | None
    test: object | None
    extra: list = field(default_factory=list)

    @classmethod
    def build(cls, data: TaskData, config: TrainConfig, objective: Objective) -> Evaluators:
        dev = make_evaluator(data.dev, "dev", data, config, objective)
        test = make_evaluator(data.test, "test", data, config, objective)
        extra = [
            make_evaluator(pairs, name, data, config, objective) for name, pairs in data.extra_tests.items()
        ]
        if config.mining_eval and isinstance(test, PairClassificationEvaluator) and test.labels.any():
            # the duplicate-mining view of the same test pairs: find the duplicates among all their texts
            extra.append(
                DuplicateMiningEvaluator.from_labelled_pairs(
                    test.sentences1, test.sentences2, test.labels, f"{test.name}-mining",
                    batch_size=config.eval_batch_size,
                )
            )  # fmt: skip
        return cls(dev, test, extra)

    def test_metrics(self, accelerator: Accelerator, model: SiameseModel) -> dict:
        out = evaluate(accelerator, model, self.test)
        for evaluator in self.extra:
            out.update(evaluate(accelerator, model, evaluator))
        return out


def evaluate(accelerator: Accelerator, model: SiameseModel, evaluator) -> dict:
    """Run on the main process; every process gets the same numbers (so all agree on 'best')."""
    if evaluator is None:
        return {}
    return on_main_process(accelerator, lambda: evaluator(model)) or {}
