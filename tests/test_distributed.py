"""The same training script on 2 processes (`accelerate launch --multi_gpu`, which on a CPU-only machine
forms a gloo group: accelerate's MULTI_CPU) and on 1 process.

``batch_size`` is the global batch, split across processes, so with dropout off both runs see the same
pairs per step and must reach the same weights up to float noise (per-process padding and gradient
all-reduce change the summation order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"


def _train(args: list[str], out: Path, tiny_bert_dir: Path, recipe: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [*args, "-m", "sbert_siamese.cli", "train", str(recipe), "--model", str(tiny_bert_dir),
           "--data-dir", str(DEMO), "--output-dir", str(out), "-q"]  # fmt: skip
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


@pytest.mark.parametrize("loss", ["cosine", "cosent"])  # cosent needs the global batch: gathered
def test_two_processes_match_one_process(tiny_bert_dir, recipe, tmp_path, loss):
    recipe.write_text(recipe.read_text() + f"loss: {loss}\n")
    one = _train([sys.executable], tmp_path / "one", tiny_bert_dir, recipe)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "29517"]  # fmt: skip
    two = _train(launch, tmp_path / "two", tiny_bert_dir, recipe)
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
    for key, value in one.items():
        if key.startswith(("sts-", "initial/", "best/")):
            assert two[key] == pytest.approx(value, abs=1e-4), key
