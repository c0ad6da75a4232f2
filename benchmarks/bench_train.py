"""Fine-tuning speed: the sentence-transformers trainer against ours, same model, data and settings, one run.

STS-B train, cosine-similarity regression (gold scores scaled to [0, 1]), all-MiniLM-L6-v2, 1 epoch, batch 16,
AdamW lr 2e-5 with 10% linear warm-up then linear decay, weight decay 0.01, gradient clipping 1.0, seed 0,
no evaluation during training. Both toolkits run in this process, one after the other, with the same torch
thread count.

Reported per run: pairs/s over the training loop (model loading and the final evaluation excluded), and
STS-B test Spearman (cosine) of the trained model, computed the same way for both (our STS evaluator on each
model's embeddings). A last line prints the speed ratios against sentence-transformers.

Runs:
- ``st``: ``SentenceTransformerTrainer`` with ``CosineSimilarityLoss`` (its defaults otherwise).
- ``ours-plain``: our trainer with random batches (``sampler: random``).
- ``ours``: our defaults for speed (``sampler: length_grouped``: batches of similar length, so both sides pad
  little, and one forward pass for both sides of every pair).

Usage:
    python benchmarks/bench_train.py --data-dir ../shared/data [--runs st ours-plain ours] [--max-pairs N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RUNS = ("st", "ours-plain", "ours")


def _spearman(encode, pairs) -> float:
    """STS-B test Spearman of cosine similarity (x100 is the paper's unit; we print the raw value)."""
    from scipy.stats import spearmanr

    a = encode([p.text_a for p in pairs])
    b = encode([p.text_b for p in pairs])
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(spearmanr((a * b).sum(axis=1), [p.score for p in pairs]).correlation)


def run_st(train, test, args) -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, losses
    from sentence_transformers.training_args import SentenceTransformerTrainingArguments

    from sbert_siamese.models.resolve import resolve_model_path

    model = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
    data = Dataset.from_dict(
        {
            "sentence1": [p.text_a for p in train],
            "sentence2": [p.text_b for p in train],
            "score": [p.score for p in train],  # read_stsb already scales gold scores to [0, 1]
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=1,
            per_device_train_batch_size=args.batch_size,
            learning_rate=2e-5,
            warmup_ratio=0.1,
            weight_decay=0.01,
            max_grad_norm=1.0,
            seed=0,
            eval_strategy="no",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            logging_steps=10_000,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=data, loss=losses.CosineSimilarityLoss(model)
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    return {
        "pairs_per_s": len(train) / seconds,
        "seconds": seconds,
        "spearman": _spearman(lambda t: model.encode(t, batch_size=64), test),
    }


def run_ours(train, test, args, sampler: str) -> dict:
    from sbert_siamese.config import TrainConfig
    from sbert_siamese.training.trainer import train as train_model

    config = TrainConfig(
        model="all-MiniLM-L6-v2",
        loss="cosine",
        epochs=1,
        batch_size=args.batch_size,
        learning_rate=2e-5,
        warmup_ratio=0.1,
        weight_decay=0.01,
        max_grad_norm=1.0,
        seed=0,
        sampler=sampler,
        dev_data=None,
        test_data=None,
        eval_steps=0,
        keep_best=False,
        plots=False,
    )
    started = time.perf_counter()
    result = train_model(config, datasets={"train": train, "dev": None, "test": None}, save=False)
    wall = time.perf_counter() - started
    loop = result.metrics["train/seconds"]
    return {
        "pairs_per_s": len(train) / loop,
        "seconds": loop,
        "wall_seconds": wall,
        "spearman": _spearman(lambda t: result.encoder.encode(t, batch_size=64), test),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--max-pairs", type=int, default=None, help="train on the first N pairs (quick look)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_train.json")
    args = parser.parse_args(argv)

    from sbert_siamese.data.readers import read_stsb

    folder = args.data_dir / "stsbenchmark"
    if not folder.is_dir():
        sys.exit(f"no STS-B under {folder}: pass --data-dir (the folder that holds stsbenchmark/)")
    torch.set_num_threads(args.threads)
    train = read_stsb(folder / "sts-train.csv")[: args.max_pairs]
    test = read_stsb(folder / "sts-test.csv")
    print(
        f"STS-B train {len(train)} pairs, test {len(test)}; batch {args.batch_size}; {args.threads} threads"
    )

    results = {}
    for name in args.runs:
        torch.manual_seed(0)
        if name == "st":
            results[name] = run_st(train, test, args)
        else:
            results[name] = run_ours(
                train, test, args, "random" if name == "ours-plain" else "length_grouped"
            )
        r = results[name]
        print(
            f"{name:>11}: {r['pairs_per_s']:7.1f} pairs/s {r['seconds']:7.1f} s spearman {r['spearman']:.4f}"
        )
        sys.stdout.flush()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "versions": {"torch": torch.__version__},
        "train_pairs": len(train),
        "results": results,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if "st" in results:
        base = results["st"]["pairs_per_s"]
        ratios = [f"{n} {results[n]['pairs_per_s'] / base:.2f}x" for n in results if n != "st"]
        print("speed vs sentence-transformers trainer (pairs/s): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
