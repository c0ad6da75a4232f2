"""The accelerate training loop on the tiny BERT: it learns, it is reproducible, it writes every file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sbert_siamese import ConfigError, SiameseEncoder
from sbert_siamese.config import TrainConfig, load_recipe
from sbert_siamese.data.readers import PairExample, read_pairs
from sbert_siamese.evaluation.pair_classification import STSEvaluator
from sbert_siamese.training.trainer import train

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


@pytest.fixture(scope="module")
def demo_data():
    return {
        "train": read_pairs(DEMO / "train.tsv")[:32],
        "dev": read_pairs(DEMO / "dev.tsv")[:16],
        "test": read_pairs(DEMO / "test.tsv")[:16],
    }


def config(tmp_path, model, **overrides) -> TrainConfig:
    values = dict(
        model=str(model),
        data_format="tsv",
        data_dir=str(DEMO),
        train_data="train.tsv",
        dev_data="dev.tsv",
        test_data="test.tsv",
        batch_size=8,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        eval_steps=2,
        output_dir=str(tmp_path / "out"),
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_overfits_one_batch(tiny_bert_dir, tmp_path):
    batch = [
        PairExample("a man is playing the guitar", "a man plays guitar", 1.0),
        PairExample("a dog runs in the park", "the government said no", 0.0),
        PairExample("two children play football", "children play soccer", 0.8),
        PairExample("the cat eats fish", "a plane over the sea", 0.1),
    ]
    cfg = config(tmp_path, tiny_bert_dir, batch_size=4, max_steps=60, epochs=100, learning_rate=2e-3)
    result = train(cfg, datasets={"train": batch, "dev": None, "test": None}, save=False)
    assert len(result.losses) == 60
    assert result.losses[-1] < 0.01 < result.losses[0]
    cos = STSEvaluator.from_examples(batch).compute
    enc = result.encoder
    u = enc.encode([e.text_a for e in batch], normalize=True)
    v = enc.encode([e.text_b for e in batch], normalize=True)
    predicted = (u * v).sum(axis=1)
    assert predicted == pytest.approx([1.0, 0.0, 0.8, 0.1], abs=0.15)
    assert cos(u, v)["sts_spearman_cosine"] == pytest.approx(1.0)


def test_same_seed_same_losses_other_seed_other_losses(tiny_bert_dir, tmp_path, demo_data):
    def run(seed):
        cfg = config(tmp_path, tiny_bert_dir, seed=seed, max_steps=4, dev_data=None, test_data=None)
        return train(cfg, datasets={**demo_data, "dev": None, "test": None}, save=False).losses

    first, second, other = run(0), run(0), run(1)
    assert first == second
    assert first != other


def test_gradient_accumulation_equals_the_larger_batch(tiny_bert_dir, tmp_path, demo_data):
    data = {**demo_data, "dev": None, "test": None}
    big = train(config(tmp_path, tiny_bert_dir, batch_size=8, max_steps=3), datasets=data, save=False)
    big_state = {k: v.clone() for k, v in big.encoder.state_dict().items()}
    accumulated = train(
        config(tmp_path, tiny_bert_dir, batch_size=4, gradient_accumulation_steps=2, max_steps=3),
        datasets=data,
        save=False,
    )
    assert accumulated.losses == pytest.approx(big.losses, abs=1e-5)
    for name, tensor in accumulated.encoder.state_dict().items():
        torch.testing.assert_close(tensor, big_state[name], atol=2e-5, rtol=0, msg=name)


def test_run_writes_every_promised_file(tiny_bert_dir, tmp_path):
    cfg = config(tmp_path, tiny_bert_dir, max_steps=4)
    result = train(cfg)
    out = Path(cfg.output_dir)
    assert result.output_dir == out
    promised = (
        "modules.json",
        "model.safetensors",
        "metrics.json",
        "recipe.yaml",
        "train_log.jsonl",
        "README.md",
    )
    for name in promised:
        assert (out / name).is_file(), name
    assert "| sts-test_spearman_cosine |" in (out / "README.md").read_text()

    metrics = json.loads((out / "metrics.json").read_text())
    assert all(isinstance(v, int | float) for v in metrics.values())
    finals = [k for k in metrics if k.startswith("sts-test_")]
    assert len(finals) == 8
    for key in finals:
        assert f"initial/{key}" in metrics
    assert metrics["train/steps"] == 4

    # The recipe copy loads back into the same config.
    assert load_recipe(out / "recipe.yaml") == cfg
    assert yaml.safe_load((out / "recipe.yaml").read_text())["max_steps"] == 4

    # The saved model reproduces the final test metrics, and the initial ones come from the start model.
    test = STSEvaluator.from_examples(read_pairs(DEMO / "test.tsv"), "sts-test")
    saved = test(SiameseEncoder.from_pretrained(out))
    start = test(SiameseEncoder.from_pretrained(tiny_bert_dir))
    for key, value in saved.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6)
        assert metrics[f"initial/{key}"] == pytest.approx(start[key], abs=1e-6)

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3, 4]
    assert all("loss" in r for r in log[1:]) and "sts-dev_spearman_cosine" in log[2]


def test_keeps_the_best_dev_weights(tiny_bert_dir, tmp_path):
    # A learning rate this high makes dev quality move around; the saved model must be the best one seen.
    cfg = config(tmp_path, tiny_bert_dir, max_steps=8, eval_steps=1, learning_rate=5e-3)
    result = train(cfg)
    log = [json.loads(line) for line in (Path(cfg.output_dir) / "train_log.jsonl").read_text().splitlines()]
    dev_scores = {r["step"]: r["sts-dev_spearman_cosine"] for r in log}
    best_step = max(dev_scores, key=lambda s: (dev_scores[s], -s))
    assert result.metrics["best/step"] == best_step
    assert result.metrics["best/sts-dev_spearman_cosine"] == pytest.approx(dev_scores[best_step])
    dev = STSEvaluator.from_examples(read_pairs(DEMO / "dev.tsv"), "sts-dev")
    saved = dev(SiameseEncoder.from_pretrained(cfg.output_dir))
    assert saved["sts-dev_spearman_cosine"] == pytest.approx(dev_scores[best_step], abs=1e-6)


def test_existing_output_dir_needs_overwrite(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="--overwrite"):
        train(config(tmp_path, tiny_bert_dir, max_steps=1))
    assert (out / "keep.txt").read_text() == "precious"
    train(config(tmp_path, tiny_bert_dir, max_steps=1, overwrite=True, dev_data=None))
    assert (out / "model.safetensors").is_file()


def test_bad_data_fails_before_the_model_loads(tmp_path):
    bad = tmp_path / "train.tsv"
    bad.write_text("sentence1\tsentence2\tscore\na\tb\t2.0\nc\td\tlots\n")
    cfg = config(tmp_path, tmp_path / "no-model-here", data_dir=str(tmp_path), dev_data=None, test_data=None)
    with pytest.raises(Exception, match=r"train\.tsv:3: score 'lots' is not a number"):
        train(cfg)


def test_a_sampler_that_cannot_fill_a_batch_is_refused_at_start(tiny_bert_dir, tmp_path):
    pairs = [PairExample(f"text {i}", f"other {i}", 0.5) for i in range(5)]
    cfg = config(
        tmp_path, tiny_bert_dir, batch_size=8, sampler="no_duplicates", dev_data=None, test_data=None
    )
    with pytest.raises(ConfigError, match="sampler no_duplicates cannot fill one batch of 8 from 5"):
        train(cfg, datasets={"train": pairs, "dev": None, "test": None}, save=False)


def test_fp16_on_cpu_is_refused(tiny_bert_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        train(config(tmp_path, tiny_bert_dir, mixed_precision="fp16", max_steps=1))


def test_weights_actually_change(tiny_bert_dir, tmp_path, demo_data):
    before = load_file(tiny_bert_dir / "model.safetensors")
    cfg = config(tmp_path, tiny_bert_dir, max_steps=2, keep_best=False)
    result = train(cfg, datasets={**demo_data, "test": None}, save=False)
    after = result.encoder.transformer.state_dict()
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert "embeddings.word_embeddings.weight" in changed
    assert "encoder.layer.0.attention.self.query.weight" in changed


def test_bf16_autocast_runs_on_cpu(tiny_bert_dir, tmp_path, demo_data):
    data = {**demo_data, "dev": None, "test": None}
    fp32 = train(config(tmp_path, tiny_bert_dir, max_steps=3), datasets=data, save=False).losses
    bf16 = train(
        config(tmp_path, tiny_bert_dir, max_steps=3, mixed_precision="bf16"), datasets=data, save=False
    )
    assert all(torch.isfinite(torch.tensor(bf16.losses)))
    assert bf16.losses != fp32  # autocast really changed the arithmetic...
    assert bf16.losses == pytest.approx(fp32, rel=0.05)  # ...but not the result beyond bf16 rounding
    assert next(bf16.encoder.parameters()).dtype == torch.float32  # master weights stay float32


def test_max_steps_overrides_epochs(tiny_bert_dir, tmp_path, demo_data):
    data = {**demo_data, "dev": None, "test": None}  # 32 pairs, batch 8: 4 steps per epoch
    result = train(config(tmp_path, tiny_bert_dir, epochs=1, max_steps=10), datasets=data, save=False)
    assert len(result.losses) == 10


def test_compiled_training_matches_eager_and_saves_the_same_names(tiny_bert_dir, tmp_path, demo_data):
    data = {**demo_data, "dev": None, "test": None}

    def run(compile, out):
        cfg = config(tmp_path, tiny_bert_dir, max_steps=3, compile=compile, dev_data=None, test_data=None,
                     output_dir=str(tmp_path / out), plots=False)  # fmt: skip
        return train(cfg, datasets=data, save=True)

    eager, compiled = run(False, "eager"), run(True, "compiled")
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-4, abs=1e-6)
    eager_state = load_file(Path(eager.output_dir) / "model.safetensors")
    compiled_state = load_file(Path(compiled.output_dir) / "model.safetensors")
    assert compiled_state.keys() == eager_state.keys()
    for name in eager_state:
        torch.testing.assert_close(compiled_state[name], eager_state[name], atol=1e-5, rtol=1e-4, msg=name)
