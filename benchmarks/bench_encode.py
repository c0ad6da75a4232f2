"""Encoding speed: sentence-transformers ``encode`` against ours in every mode, same model, texts, batch size
and thread count, in one process.

Text sets:
- ``stsb``: the STS-B test sentences (2 x 1,379 = 2,758, about 14 tokens each);
- ``long``: 1,000 distinct MultiNLI premises of 35 words or more (about 55 tokens each).

Modes: sentence-transformers fp32 (``SentenceTransformer.encode``); ours ``torch`` fp32, ``onnx`` (ONNX
Runtime fp32) and ``onnx-int8`` (per-channel dynamic int8). Every mode is run once to warm up (the ONNX files
are exported then, outside the timing), then ``--rounds`` times in turn, interleaved so that a busy machine
slows all modes alike; the best round is reported (and the median in the JSON).

Reported per set and mode: texts/s, ratio to sentence-transformers, max |difference| of the embeddings
from sentence-transformers', STS-B test Spearman (cosine) of that mode, and the linear layers' useful
FLOP/s (2 x weights x real tokens, padding not counted) as a fraction of this machine's measured fp32
matrix-multiply peak: the roofline for this work, since the linear layers are ~90% of a BERT's FLOPs at
these lengths. The last line prints the ratios.

Usage:
    python benchmarks/bench_encode.py --data-dir ../shared/data [--batch-size 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
MODES = ("st", "torch", "onnx", "onnx-int8")


def load_sets(data_dir: Path, long_count: int = 1000) -> tuple[dict[str, list[str]], list]:
    from sbert_siamese.data.readers import read_stsb

    test = read_stsb(data_dir / "stsbenchmark" / "sts-test.csv")
    sets = {"stsb": [p.text_a for p in test] + [p.text_b for p in test]}
    mnli = data_dir / "mnli-pieces" / "mnli_pieces.tsv"
    if mnli.exists():
        seen: dict[str, None] = {}
        with open(mnli, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                text = (row.get("sentence1") or "").strip()
                if len(text.split()) >= 35:
                    seen.setdefault(text)
                if len(seen) >= long_count:
                    break
        sets["long"] = list(seen)
    return sets, test


def matmul_peak(threads: int, seconds: float = 2.0) -> float:
    """Best fp32 GFLOP/s over BERT-sized products ((4096 x 384) @ (384 x 1536) and the like)."""
    best = 0.0
    for m, k, n in ((4096, 384, 1536), (4096, 1536, 384), (2048, 1024, 1024)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        reps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            a @ b
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - started) / 1e9)
    return best


def linear_weights(encoder) -> int:
    """Weights of the transformer's Linear layers (the embeddings' lookup and the unused pooler excluded)."""
    return sum(
        module.weight.numel()
        for name, module in encoder.transformer.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.startswith("pooler")
    )


def spearman(embeddings: np.ndarray, test) -> float:
    from scipy.stats import spearmanr

    n = len(test)
    a, b = embeddings[:n], embeddings[n:]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(spearmanr(cos, [p.score for p in test]).correlation)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_encode.json")
    args = parser.parse_args(argv)
    if not (args.data_dir / "stsbenchmark").is_dir():
        sys.exit(f"no STS-B under {args.data_dir}: pass --data-dir (the folder that holds stsbenchmark/)")
    torch.set_num_threads(args.threads)

    from sentence_transformers import SentenceTransformer

    from sbert_siamese import SiameseEncoder
    from sbert_siamese.models.resolve import resolve_model_path

    sets, test = load_sets(args.data_dir)
    path = resolve_model_path("all-MiniLM-L6-v2")
    st = SentenceTransformer(str(path), device="cpu")
    ours = SiameseEncoder.from_pretrained(path)
    weights = linear_weights(ours)
    peak = matmul_peak(args.threads)
    print(f"{args.threads} threads, batch {args.batch_size}; fp32 matmul peak {peak:.0f} GFLOP/s; "
          f"{weights:,} linear weights")  # fmt: skip

    def run(mode: str, texts: list[str]) -> np.ndarray:
        if mode == "st":
            return st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
        return ours.encode(texts, batch_size=args.batch_size, backend=mode)

    record: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "versions": {"torch": torch.__version__},
        "batch_size": args.batch_size,
        "matmul_peak_gflops": peak,
        "sets": {},
    }
    ratios = []
    for name, texts in sets.items():
        tokens = sum(
            len(ids)
            for ids in ours.tokenizer(texts, truncation=True, max_length=ours.max_seq_length)["input_ids"]
        )
        embeddings = {mode: run(mode, texts) for mode in args.modes}  # warm-up; ONNX export happens here
        times: dict[str, list[float]] = {mode: [] for mode in args.modes}
        for _ in range(args.rounds):
            for mode in args.modes:
                started = time.perf_counter()
                embeddings[mode] = run(mode, texts)
                times[mode].append(time.perf_counter() - started)
        reference = embeddings.get("st", embeddings.get("torch"))
        rows = {}
        print(f"\n{name}: {len(texts)} texts, {tokens / len(texts):.1f} tokens each on average")
        print(
            f"{'mode':>10} {'texts/s':>9} {'vs ST':>6} {'max |diff|':>11} {'spearman':>9} {'% fp32 peak':>12}"
        )
        for mode in args.modes:
            best = min(times[mode])
            rate = len(texts) / best
            flops = 2 * weights * tokens / best / 1e9
            row = {
                "texts_per_s": rate,
                "median_texts_per_s": len(texts) / statistics.median(times[mode]),
                "max_abs_diff_vs_st": float(np.abs(embeddings[mode] - reference).max()),
                "linear_gflops": flops,
                "fraction_of_fp32_peak": flops / peak,
            }
            if name == "stsb":
                row["spearman"] = spearman(embeddings[mode], test)
            rows[mode] = row
            base = rows.get("st", rows[mode])["texts_per_s"]
            print(
                f"{mode:>10} {rate:9.1f} {rate / base:5.2f}x {row['max_abs_diff_vs_st']:11.2e} "
                f"{row.get('spearman', float('nan')):9.4f} {100 * flops / peak:11.0f}%"
            )
        record["sets"][name] = {"texts": len(texts), "tokens": tokens, "modes": rows}
        if "st" in rows:
            ratios += [
                f"{name}/{m} {rows[m]['texts_per_s'] / rows['st']['texts_per_s']:.2f}x"
                for m in rows
                if m != "st"
            ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if ratios:
        print("\nspeed vs sentence-transformers encode: " + ", ".join(ratios))


if __name__ == "__main__":
    main()
