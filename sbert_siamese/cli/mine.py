"""``sbert-siamese mine``: offline hard negatives. For (anchor, positive) pairs, the most similar corpus
text that is not a known positive, written as triplets for the triplet objectives."""

from __future__ import annotations

import argparse
import json

from .options import (
    add_common,
    add_model,
    add_pair_columns,
    load_model,
    read_pairs,
    read_texts,
    rows_output,
    write_rows,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "mine", help="offline hard negatives for (anchor, positive) pairs, written as triplets"
    )
    add_model(p)
    p.add_argument(
        "--pairs", required=True, help="pairs: .csv/.tsv/.jsonl/.parquet (labelled or positives only)"
    )
    add_pair_columns(p)
    p.add_argument("--label-column", help="0/1 labels; without it every pair is a positive")
    p.add_argument("--corpus", help="texts to draw negatives from (default: every text of --pairs)")
    p.add_argument("--column", default="text", help="text column of --corpus")
    p.add_argument(
        "--max-relative-similarity",
        type=float,
        default=0.95,
        help="skip candidates with cos(anchor, n) >= this x cos(anchor, positive): likely duplicates",
    )
    p.add_argument("--candidates", type=int, default=30, help="nearest texts examined per anchor")
    p.add_argument(
        "--output", required=True, help="triplets: .jsonl, .csv or .tsv (anchor, positive, negative)"
    )
    return add_common(p, batch_size=64)


def run(args: argparse.Namespace) -> int:
    from ..data.examples import Example, known_positives
    from ..search import mine_hard_negatives

    output = rows_output(args.output)
    texts_a, texts_b, labels = read_pairs(args, args.pairs, args.label_column)
    labels = labels or [1] * len(texts_a)  # no label column: every pair is a positive
    labelled = [Example((a, b), y) for a, b, y in zip(texts_a, texts_b, labels, strict=True)]
    pairs = [Example(e.texts, None) for e in labelled if e.target == 1]
    corpus = read_texts(args, args.corpus)[0] if args.corpus else [t for e in labelled for t in e.texts]
    same = known_positives(labelled)  # no member of an anchor's duplicate cluster becomes its negative
    model = load_model(args)
    triplets, report = mine_hard_negatives(
        model.tower("a"), pairs, corpus, same, args.max_relative_similarity, args.candidates, args.batch_size,
        show_progress_bar=not args.quiet,
    )  # fmt: skip
    rows = [{"anchor": a, "positive": p, "negative": n} for a, p, n in (t.texts for t in triplets)]
    write_rows(output, rows)
    print(json.dumps({"output": str(output), **report}, indent=2))
    return 0
