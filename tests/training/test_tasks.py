"""Training tasks and the stream of their batches (``training.tasks``)."""

from __future__ import annotations

import pytest

from sbert_siamese.data.prepare import prepare_data
from sbert_siamese.losses import get_objective
from sbert_siamese.training.tasks import batch_stream, extra_task

from .test_objective_training import many_questions, qqp_config, write_qqp


def test_batch_stream_round_robin_and_proportional():
    from types import SimpleNamespace

    tasks = ["t0", "t1", "t2"]
    loaders = [[f"a{i}" for i in range(2)], [f"b{i}" for i in range(4)], [f"c{i}" for i in range(6)]]
    rr = list(batch_stream(tasks, loaders, 9, SimpleNamespace(task_sampling="round_robin", seed=0)))
    assert [t for t, _ in rr] == ["t0", "t1", "t2"] * 3
    assert [b for t, b in rr if t == "t0"] == ["a0", "a1", "a0"]  # an exhausted loader restarts
    prop = list(batch_stream(tasks, loaders, 6000, SimpleNamespace(task_sampling="proportional", seed=0)))
    counts = {t: sum(1 for x, _ in prop if x == t) for t in tasks}
    assert counts["t0"] / 6000 == pytest.approx(2 / 12, abs=0.02)
    assert counts["t2"] / 6000 == pytest.approx(6 / 12, abs=0.02)
    again = list(batch_stream(tasks, loaders, 6000, SimpleNamespace(task_sampling="proportional", seed=0)))
    assert again == prop  # seeded: every process draws the same task sequence


def test_an_extra_task_does_not_inherit_the_main_tasks_extra_data(tmp_path):
    write_qqp(tmp_path / "qqp.tsv", many_questions(40))
    write_qqp(tmp_path / "more.tsv", [(f"extra question {i}", f"extra pair {i}", 1) for i in range(30)])
    write_qqp(tmp_path / "own.tsv", [(f"own question {i}", f"own pair {i}", i % 2) for i in range(12)])
    cfg = qqp_config(tmp_path, extra_train_data=["more.tsv"])
    main = prepare_data(cfg, get_objective("contrastive"))
    assert main.stats["data/train_examples"] == main.stats["data/train_pairs"] + 30
    task = extra_task(cfg, {"name": "own", "loss": "contrastive", "train_data": "own.tsv"}, main, 1)
    assert task.name == "own" and len(task.examples) == 12  # own.tsv only, not own.tsv + more.tsv
