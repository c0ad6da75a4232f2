"""``sbert-siamese predict``: for text pairs, the head's labels and probabilities, or (no head, or
``--threshold``) same / different under the calibrated threshold; JSON lines."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .options import (
    add_common,
    add_model,
    add_pair_columns,
    json_lines_output,
    load_model,
    read_pairs,
    write_json_line,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="same/different (calibrated threshold) or the head's labels and probabilities for pairs",
        epilog="A model with a softmax/verification head prints its labels and probabilities; a model\n"
        "without one (or --threshold) prints same/different under its calibrated threshold.",
    )
    add_model(p)
    p.add_argument(
        "--input", help="pairs: .csv/.tsv/.jsonl/.parquet with --text-a-column and --text-b-column"
    )
    p.add_argument("--a", help="first text of a single pair")
    p.add_argument("--b", help="second text of a single pair")
    add_pair_columns(p)
    p.add_argument("--threshold", type=float, help="override the calibrated threshold (its score, or cosine)")
    p.add_argument("--output", help="JSON lines file (default: standard output)")
    return add_common(p, batch_size=32, quiet=False)  # no progress bar to silence


def run(args: argparse.Namespace) -> int:
    if args.input is None and (args.a is None or args.b is None):
        raise ConfigError("give --input FILE, or both --a TEXT and --b TEXT")
    if args.input is not None:  # the data first: a bad row fails before the model loads
        texts_a, texts_b, _ = read_pairs(args, args.input)
    else:
        texts_a, texts_b = [args.a], [args.b]
    model = load_model(args)
    with json_lines_output(args.output) as out:
        if model.head is not None and args.threshold is None:
            _write_head_predictions(out, model, texts_a, texts_b, args.batch_size)
        else:  # no head (or an explicit threshold): the calibrated same / different rule
            _write_verdicts(out, model, texts_a, texts_b, args.threshold, args.batch_size)
    return 0


def _write_head_predictions(out, model, texts_a: list[str], texts_b: list[str], batch_size: int) -> None:
    """One row per pair: its label and the probability of every label (``p_<name>``)."""
    result = model.predict(texts_a, texts_b, batch_size=batch_size)
    rows = zip(texts_a, texts_b, result["labels"], result["probabilities"], strict=True)
    for a, b, label, probs in rows:
        row = {"text_a": a, "text_b": b, "label": label}
        row.update({f"p_{n}": round(float(p), 6) for n, p in zip(result["label_names"], probs, strict=True)})
        write_json_line(out, row)


def _write_verdicts(out, model, texts_a, texts_b, threshold: float | None, batch_size: int) -> None:
    """One row per pair: same / different, its score and the threshold it was held against."""
    result = model.verify(texts_a, texts_b, threshold=threshold, batch_size=batch_size)
    for a, b, same, score in zip(texts_a, texts_b, result["same"], result["scores"], strict=True):
        row = {"text_a": a, "text_b": b, "label": "same" if same else "different"}
        row.update({result["score"]: round(float(score), 6), "threshold": result["threshold"]})
        write_json_line(out, row)
