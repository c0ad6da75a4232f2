"""Checkpoints and resumption: a run interrupted (in process, or by SIGKILL) and resumed ends with the same
weights and metrics as an uninterrupted one; damaged checkpoints are detected; a NaN loss stops the run
and leaves the last checkpoint intact; the final save replaces the output folder only when complete."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sbert_siamese.config import TrainConfig
from sbert_siamese.errors import CheckpointError, ConfigError, OutputError, TrainingDivergedError
from sbert_siamese.training import checkpoints
from sbert_siamese.training.trainer import train

from ..conftest import build_tiny_bert

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dropout_bert(tmp_path_factory) -> Path:
    """Dropout on, so that an exact resume also needs the random generators restored."""
    return build_tiny_bert(
        tmp_path_factory.mktemp("dropout-bert"), hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1
    )


def settings(model: Path, out: Path, **overrides) -> dict:
    values = dict(
        model=str(model),
        data_format="tsv",
        data_dir=str(DEMO),
        train_data="train.tsv",
        dev_data="dev.tsv",
        test_data="test.tsv",
        batch_size=8,
        learning_rate=1e-3,
        warmup_ratio=0.1,
        epochs=2,
        max_steps=40,  # 30 steps per epoch: the run crosses an epoch boundary after a checkpoint
        eval_steps=5,
        checkpoint_steps=8,
        plots=False,
        output_dir=str(out),
    )
    values.update(overrides)
    return values


def outcome(out: Path) -> tuple[dict, dict]:
    """(weights, metrics without timings) of a finished run's folder."""
    metrics = json.loads((out / "metrics.json").read_text())
    metrics = {k: v for k, v in metrics.items() if not k.startswith("train/")}
    return load_file(out / "model.safetensors"), metrics


def assert_same(a: tuple[dict, dict], b: tuple[dict, dict]) -> None:
    weights_a, metrics_a = a
    weights_b, metrics_b = b
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        torch.testing.assert_close(weights_a[name], weights_b[name], rtol=0, atol=1e-6, msg=name)
    assert metrics_a.keys() == metrics_b.keys()
    for key in metrics_a:
        assert metrics_a[key] == pytest.approx(metrics_b[key], abs=1e-6), key


class Stop(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_weights_and_metrics(dropout_bert, tmp_path, monkeypatch):
    reference = train(TrainConfig(**settings(dropout_bert, tmp_path / "ref")))
    assert reference.metrics["train/steps"] == 40
    assert not (tmp_path / "ref" / "checkpoints").exists()  # removed after a completed run (default)

    out = tmp_path / "run"
    saved = checkpoints.save_checkpoint
    calls = []

    def save_then_stop(*args, **kwargs):
        path = saved(*args, **kwargs)
        calls.append(path)
        if len(calls) == 3:  # steps 8, 16, 24: stop right after the third
            raise Stop
        return path

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_stop)
    with pytest.raises(Stop):
        train(TrainConfig(**settings(dropout_bert, out)))
    monkeypatch.setattr(checkpoints, "save_checkpoint", saved)
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == ["step-00000016", "step-00000024"]  # checkpoint_limit 2
    assert not (out / "model.safetensors").exists()  # nothing final was written

    # Not empty and not resumed: refused, pointing at --resume
    with pytest.raises(ConfigError, match="step 24: pass --resume"):
        train(TrainConfig(**settings(dropout_bert, out)))
    resumed = train(TrainConfig(**settings(dropout_bert, out, resume=True)))
    assert resumed.metrics["train/steps"] == 40
    assert len(resumed.losses) == 40
    assert_same(outcome(out), outcome(tmp_path / "ref"))
    assert not (out / "checkpoints").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    ref_log = [json.loads(line) for line in (tmp_path / "ref" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [r["step"] for r in ref_log]
    assert [r.get("loss", 0) for r in log] == pytest.approx([r.get("loss", 0) for r in ref_log], abs=1e-6)


@pytest.mark.long
@pytest.mark.parametrize(
    "extra",
    [
        {"gradient_accumulation_steps": 2},  # checkpoints fall on optimizer steps, not micro-batches
        {  # two tasks drawn at random in proportion to their sizes: the draws must continue too
            "tasks": [{"name": "cosent", "loss": "cosent", "train_data": "train.tsv", "batch_size": 4}],
            "task_sampling": "proportional",
        },
        {"sampler": "length_grouped", "keep_best": False, "eval_steps": 0},
    ],
    ids=["accumulation", "two-tasks", "length-grouped"],
)
def test_resume_with_accumulation_tasks_and_samplers(dropout_bert, tmp_path, monkeypatch, extra):
    values = dict(max_steps=18, checkpoint_steps=6, **extra)
    train(TrainConfig(**settings(dropout_bert, tmp_path / "ref", **values)))
    saved, calls = checkpoints.save_checkpoint, []

    def save_then_stop(*args, **kwargs):
        calls.append(saved(*args, **kwargs))
        if len(calls) == 2:
            raise Stop
        return calls[-1]

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_stop)
    with pytest.raises(Stop):
        train(TrainConfig(**settings(dropout_bert, tmp_path / "run", **values)))
    monkeypatch.setattr(checkpoints, "save_checkpoint", saved)
    train(TrainConfig(**settings(dropout_bert, tmp_path / "run", resume=True, **values)))
    assert_same(outcome(tmp_path / "run"), outcome(tmp_path / "ref"))


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from sbert_siamese.training import checkpoints
    from sbert_siamese.cli import main

    write, calls = checkpoints._write_files, []

    def write_then_die(folder, *args):
        write(folder, *args)
        calls.append(folder)
        if len(calls) == int(os.environ["KILL_AT_CHECKPOINT"]):
            os.kill(os.getpid(), signal.SIGKILL)  # mid-write: files there, no manifest, not renamed

    checkpoints._write_files = write_then_die
    sys.exit(main(sys.argv[1:]))
    """
)


def run_cli(args: list[str], tmp_path: Path, kill_at: int | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "KILL_AT_CHECKPOINT": str(kill_at or 10**6), "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None)
    return subprocess.run(
        [sys.executable, str(script), "train", *args, "-q"], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


@pytest.mark.long
def test_sigkill_mid_checkpoint_then_resume_matches_an_uninterrupted_run(dropout_bert, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    values = settings(dropout_bert, tmp_path / "unused", max_steps=30, checkpoint_steps=6, eval_steps=6)
    del values["output_dir"]
    recipe.write_text(yaml.safe_dump(values))

    ref = run_cli([str(recipe), "--output-dir", str(tmp_path / "ref")], tmp_path)
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "run"
    killed = run_cli([str(recipe), "--output-dir", str(out)], tmp_path, kill_at=3)
    assert killed.returncode == -9  # SIGKILL while writing the checkpoint of step 18
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names[1:] == ["step-00000006", "step-00000012"]
    assert names[0].startswith(".step-00000018.incomplete-")  # a checkpoint never appears half-written

    resumed = run_cli([str(recipe), "--output-dir", str(out), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same(outcome(out), outcome(tmp_path / "ref"))


def make_checkpoints(model: Path, out: Path) -> None:
    train(TrainConfig(**settings(model, out, max_steps=24, checkpoint_steps=8, keep_checkpoints=True)))


def test_damaged_checkpoints_are_detected_and_skipped(tiny_bert_dir, tmp_path, caplog):
    out = tmp_path / "out"
    make_checkpoints(tiny_bert_dir, out)
    root = out / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-00000008", "step-00000016"]
    assert checkpoints.latest_checkpoint(out).step == 16

    newest = root / "step-00000016" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    assert "does not match its checksum" in checkpoints.verify(root / "step-00000016")
    with caplog.at_level("WARNING", logger="sbert_siamese.training.checkpoints"):
        assert checkpoints.latest_checkpoint(out).step == 8
    assert "step-00000016" in caplog.text and "truncated" in caplog.text

    (root / "step-00000008" / "optimizer.pt").unlink()
    assert "optimizer.pt is missing" in checkpoints.verify(root / "step-00000008")
    with pytest.raises(CheckpointError, match="no intact checkpoint.*step-00000016.*step-00000008"):
        checkpoints.latest_checkpoint(out)
    (root / "step-00000008" / checkpoints.MANIFEST).unlink()
    assert "the write did not finish" in checkpoints.verify(root / "step-00000008")


def test_resume_needs_a_checkpoint_and_the_same_recipe(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(TrainConfig(**settings(tiny_bert_dir, out, resume=True)))
    make_checkpoints(tiny_bert_dir, out)
    for key, value in (("learning_rate", 5e-4), ("seed", 1), ("batch_size", 4)):
        with pytest.raises(CheckpointError, match=f"different recipe \\({key}"):
            train(TrainConfig(**settings(tiny_bert_dir, out, max_steps=24, resume=True, **{key: value})))
    with pytest.raises(ConfigError, match="pick one"):
        train(TrainConfig(**settings(tiny_bert_dir, out, resume=True, overwrite=True)))


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tiny_bert_dir, tmp_path, monkeypatch):
    import sbert_siamese.training.trainer as training

    real = training.get_objective

    def poisoned(name):
        objective = real(name)
        calls = []

        def loss(*args):
            calls.append(1)
            value = objective.loss(*args)
            return value * float("nan") if len(calls) == 11 else value

        return dataclasses.replace(objective, loss=loss)

    monkeypatch.setattr(training, "get_objective", poisoned)
    out = tmp_path / "out"
    with pytest.raises(TrainingDivergedError) as err:
        train(TrainConfig(**settings(tiny_bert_dir, out, max_steps=20, checkpoint_steps=4)))
    message = str(err.value)
    assert "step 11 of 20: the loss is nan" in message
    assert "step-00000008" in message and "intact" in message and "learning_rate" in message
    assert checkpoints.verify(out / "checkpoints" / "step-00000008") is None
    assert not (out / "model.safetensors").exists()


def test_nan_before_any_checkpoint_says_so(tiny_bert_dir, tmp_path):
    cfg = TrainConfig(**settings(tiny_bert_dir, tmp_path / "out", max_steps=3, dev_data=None))
    from sbert_siamese.data.readers import PairExample

    pairs = [PairExample("a b", "c d", float("nan"))] * 8
    with pytest.raises(TrainingDivergedError, match="step 1 of 3: the loss is nan.*no checkpoint"):
        train(cfg, datasets={"train": pairs, "dev": None, "test": None})


def test_overwrite_replaces_the_folder_only_once_the_new_model_is_done(tiny_bert_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    train(TrainConfig(**settings(tiny_bert_dir, out, max_steps=2, dev_data=None)))
    before = load_file(out / "model.safetensors")
    (out / "notes.txt").write_text("mine")

    from sbert_siamese.models.siamese import SiameseModel

    def disk_full(self, path):
        (Path(path) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SiameseModel, "_write_into", disk_full)
    with pytest.raises(OutputError, match="disk full"):
        train(TrainConfig(**settings(tiny_bert_dir, out, max_steps=4, dev_data=None, overwrite=True)))
    after = load_file(out / "model.safetensors")  # the previous model, untouched and loadable
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []  # no staging left

    monkeypatch.undo()
    train(TrainConfig(**settings(tiny_bert_dir, out, max_steps=4, dev_data=None, overwrite=True)))
    assert not (out / "notes.txt").exists()  # overwrite replaces the folder as a whole
    assert json.loads((out / "metrics.json").read_text())["train/steps"] == 4


def test_overwrite_refuses_the_current_folder(tiny_bert_dir, tmp_path, monkeypatch):
    (tmp_path / "something.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="holds the current folder"):
        train(TrainConfig(**settings(tiny_bert_dir, Path("."), max_steps=2, overwrite=True)))
    assert (tmp_path / "something.txt").exists()


def test_rng_state_round_trip():
    checkpoints.set_rng_state(json.loads(json.dumps(checkpoints.rng_state())))
    state = checkpoints.rng_state()
    a = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    checkpoints.set_rng_state(json.loads(json.dumps(state)))
    b = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_resume_refuses_other_training_data(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    make_checkpoints(tiny_bert_dir, out)
    for ckpt in (out / "checkpoints").iterdir():
        progress = json.loads((ckpt / "progress.json").read_text())
        assert len(progress["data_fingerprint"]) == 64
    changed = tmp_path / "data"
    changed.mkdir()
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        (changed / name).write_text((DEMO / name).read_text())
    lines = (changed / "train.tsv").read_text().splitlines()
    (changed / "train.tsv").write_text("\n".join(lines[:-1]) + "\n")  # one pair fewer
    values = settings(tiny_bert_dir, out, max_steps=24, checkpoint_steps=8, keep_checkpoints=True)
    with pytest.raises(CheckpointError, match="other training data"):
        train(TrainConfig(**{**values, "data_dir": str(changed), "resume": True}))


@pytest.mark.long
def test_a_failed_final_save_keeps_the_checkpoints(tiny_bert_dir, tmp_path, monkeypatch):
    from sbert_siamese.models.siamese import SiameseModel

    def disk_full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SiameseModel, "_write_into", disk_full)
    out = tmp_path / "out"
    values = settings(tiny_bert_dir, out, max_steps=12, checkpoint_steps=4, keep_checkpoints=True)
    with pytest.raises(OutputError, match="disk full"):
        train(TrainConfig(**values))
    assert checkpoints.latest_checkpoint(out).step == 8  # still there: the run can be resumed
    monkeypatch.undo()
    train(TrainConfig(**{**values, "resume": True}))
    assert (out / "model.safetensors").is_file() and (out / "checkpoints" / "step-00000008").is_dir()
