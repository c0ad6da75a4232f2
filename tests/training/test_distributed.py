"""The same training script on 2 processes (`accelerate launch --multi_gpu`, which on a CPU-only machine
forms a gloo group: accelerate's MULTI_CPU) and on 1 process.

``batch_size`` is the global batch, split across processes, so with dropout off both runs see the same
pairs per step and must reach the same weights up to float noise (per-process padding and gradient
all-reduce change the summation order).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sbert_siamese.training import checkpoints

# Each test launches 2-3 training processes (torchrun / a 1-process reference): make test, not test-fast.
pytestmark = pytest.mark.long

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def _train(
    args: list[str], out: Path, tiny_bert_dir: Path, recipe: Path, data_dir: Path = DEMO, resume: bool = False
) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [*args, "-m", "sbert_siamese.cli", "train", str(recipe), "--model", str(tiny_bert_dir),
           "--data-dir", str(data_dir), "--output-dir", str(out), "-q"]  # fmt: skip
    if resume:
        cmd.append("--resume")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "data_format: tsv\ntrain_data: train.tsv\ndev_data: dev.tsv\ntest_data: test.tsv\n"
        "batch_size: 16\nmax_steps: 6\nlearning_rate: 5.0e-4\nwarmup_ratio: 0.2\neval_steps: 3\nseed: 3\n"
        "keep_best: false\n"
    )
    return path


def labelled_demo(folder: Path) -> Path:
    """The demo pairs with a 0/1 label (score >= 3 means 'same'), as a QQP-like labelled file."""
    folder.mkdir()
    for split in ("train", "dev", "test"):
        lines = (DEMO / f"{split}.tsv").read_text().splitlines()[1:]
        rows = [line.rsplit("\t", 1) for line in lines]
        body = "".join(f"{texts}\t{int(float(score) >= 3.0)}\n" for texts, score in rows)
        (folder / f"{split}.tsv").write_text("sentence1\tsentence2\tlabel\n" + body)
    return folder


CASES = {
    "cosine": "loss: cosine\n",
    "cosent": "loss: cosent\n",  # batch-wide: gathered across processes
    "softmax": "loss: softmax\nnum_labels: 2\nhead_learning_rate: 1.0e-2\n",  # a head outside DDP's forward
    "in_batch_negatives": (  # batch-wide, with text ids gathered too, and a custom batch sampler
        "loss: in_batch_negatives\nderive: positives\nsampler: no_duplicates\nbatch_size: 8\n"
    ),
}


@pytest.mark.parametrize("loss", list(CASES))
def test_two_processes_match_one_process(tiny_bert_dir, recipe, tmp_path, loss):
    recipe.write_text(recipe.read_text() + CASES[loss])
    data_dir = DEMO if loss in ("cosine", "cosent") else labelled_demo(tmp_path / "labelled")
    one = _train([sys.executable], tmp_path / "one", tiny_bert_dir, recipe, data_dir)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "29517"]  # fmt: skip
    two = _train(launch, tmp_path / "two", tiny_bert_dir, recipe, data_dir)
    assert one["train/num_processes"] == 1 and two["train/num_processes"] == 2
    assert one["train/steps"] == two["train/steps"] == 6

    start = load_file(tiny_bert_dir / "model.safetensors")
    w1 = load_file(tmp_path / "one" / "model.safetensors")
    w2 = load_file(tmp_path / "two" / "model.safetensors")
    assert w1.keys() == w2.keys()
    moved = max((w1[k] - start[k]).abs().max().item() for k in w1 if k in start)
    assert moved > 1e-3  # training really changed the weights...
    for key in w1:  # ...and both runs changed them the same way
        torch.testing.assert_close(w2[key], w1[key], atol=2e-5, rtol=0, msg=key)
    if loss == "softmax":
        h1 = load_file(tmp_path / "one" / "head" / "model.safetensors")
        h2 = load_file(tmp_path / "two" / "head" / "model.safetensors")
        for key in h1:
            torch.testing.assert_close(h2[key], h1[key], atol=2e-5, rtol=0, msg=key)
    for key, value in one.items():
        if key.startswith(("sts-", "pairs-", "initial/", "best/")):
            assert two[key] == pytest.approx(value, abs=1e-4), key


def test_two_processes_resume_from_a_checkpoint(tiny_bert_dir, recipe, tmp_path):
    """Checkpoints hold every process's random generators: a 2-process run resumed from its step-4
    checkpoint ends where the uninterrupted 2-process run ends."""
    recipe.write_text(recipe.read_text() + "loss: cosine\ncheckpoint_steps: 2\ncheckpoint_limit: 3\n")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "29518"]  # fmt: skip
    full = tmp_path / "full"
    recipe_keep = tmp_path / "keep.yaml"
    recipe_keep.write_text(recipe.read_text() + "keep_checkpoints: true\n")
    reference = _train(launch, full, tiny_bert_dir, recipe_keep)
    saved = sorted(p.name for p in (full / "checkpoints").iterdir())
    assert saved == ["step-00000002", "step-00000004"]
    rng = json.loads((full / "checkpoints" / "step-00000004" / "rng.json").read_text())
    assert len(rng) == 2  # one state per process

    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-00000004", resumed_dir / "checkpoints" / "step-00000004")
    resumed = _train(launch, resumed_dir, tiny_bert_dir, recipe_keep, resume=True)
    assert resumed["train/steps"] == reference["train/steps"] == 6
    w1, w2 = load_file(full / "model.safetensors"), load_file(resumed_dir / "model.safetensors")
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], atol=1e-6, rtol=0, msg=key)
    for key, value in reference.items():
        if key.startswith(("sts-", "initial/")):
            assert resumed[key] == pytest.approx(value, abs=1e-6), key


def test_two_processes_stop_together_when_the_loss_diverges(tiny_bert_dir, recipe, tmp_path):
    """A learning rate of 1e3 makes the loss NaN within a few steps; every process must stop at the same
    step (none left waiting in a collective), with the message, and the last checkpoint intact."""
    recipe.write_text(
        recipe.read_text() + "loss: cosine\nlearning_rate: 1.0e+3\nmax_grad_norm: 0\nmax_steps: 30\n"
        "checkpoint_steps: 2\ndev_data: null\n"
    )
    out = tmp_path / "out"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "29519"]  # fmt: skip
    cmd = [*launch, "-m", "sbert_siamese.cli", "train", str(recipe), "--model", str(tiny_bert_dir),
           "--data-dir", str(DEMO), "--output-dir", str(out), "-q"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    # Each process that gets to print says where it stopped (the launcher may end the other one first, and
    # two messages can share a line of stderr): the steps must agree, and nothing may hang.
    stops = re.findall(r"training stopped at step (\d+) of 30: the loss is (nan|inf)", result.stderr)
    assert stops, result.stderr[-3000:]
    assert len(set(stops)) == 1
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept and checkpoints.verify(out / "checkpoints" / kept[-1]) is None
    assert not (out / "model.safetensors").exists()
