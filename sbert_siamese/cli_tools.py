"""Commands that apply a trained model: calibrate, verify-style predict without a head, dedup, search.

Registered by ``cli.build_parser``; like the rest of the CLI, these are the only places that print.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ConfigError


def _read_pairs(path: str, text_a: str, text_b: str, label: str | None):
    """(texts_a, texts_b, labels or None) from a .csv/.tsv/.jsonl/.parquet pair file."""
    from .examples import read_examples

    examples, _ = read_examples(path, None, [text_a, text_b], "binary" if label else "none", label)
    labels = [e.target for e in examples] if label else None
    return [e.texts[0] for e in examples], [e.texts[1] for e in examples], labels


# ---------------------------------------------------------------------------------------------- calibrate
def cmd_calibrate(args) -> int:
    from .calibration import calibrate
    from .model import SiameseModel
    from .resolve import resolve_model_path

    target = Path(args.output) if args.output else Path(args.model)
    if not args.output and not (target.is_dir() and (target / "modules.json").exists()):
        raise ConfigError(
            f"--model {args.model} is not a model directory of yours to write threshold.json into; "
            "pass --output DIR to save the model with its threshold there"
        )
    texts_a, texts_b, labels = _read_pairs(
        args.pairs, args.text_a_column, args.text_b_column, args.label_column
    )
    model = SiameseModel.load(args.model)
    threshold = calibrate(
        model, texts_a, texts_b, labels, args.score, args.metric, args.batch_size,
        source=str(args.pairs), show_progress_bar=not args.quiet,
    )  # fmt: skip
    model.threshold = threshold
    if args.output:
        model.save(target)
    else:
        from .calibration import save_threshold

        save_threshold(resolve_model_path(args.model), threshold)
    print(json.dumps({"model": str(target), **threshold.to_dict()}, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    from .model import SiameseModel

    if args.input is None and (args.a is None or args.b is None):
        raise ConfigError("give --input FILE, or both --a TEXT and --b TEXT")
    model = SiameseModel.load(args.model)
    if args.input is not None:
        texts_a, texts_b, _ = _read_pairs(args.input, args.text_a_column, args.text_b_column, None)
    else:
        texts_a, texts_b = [args.a], [args.b]
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        if model.head is not None and args.threshold is None:
            result = model.predict(texts_a, texts_b, batch_size=args.batch_size)
            rows = zip(texts_a, texts_b, result["labels"], result["probabilities"], strict=True)
            for a, b, label, probs in rows:
                row = {"text_a": a, "text_b": b, "label": label}
                row.update(
                    {f"p_{n}": round(float(p), 6) for n, p in zip(result["label_names"], probs, strict=True)}
                )
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:  # no head (or an explicit threshold): the calibrated same / different rule
            result = model.verify(texts_a, texts_b, threshold=args.threshold, batch_size=args.batch_size)
            for a, b, same, score in zip(texts_a, texts_b, result["same"], result["scores"], strict=True):
                row = {"text_a": a, "text_b": b, "label": "same" if same else "different"}
                row.update({result["score"]: round(float(score), 6), "threshold": result["threshold"]})
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def add_parsers(sub) -> None:
    from .calibration import METRICS, SCORES

    p = sub.add_parser(
        "calibrate",
        help="choose the best-F1 (or accuracy) threshold on labelled pairs and store it with the model",
    )
    p.add_argument("--model", required=True, help="model directory (threshold.json is written into it)")
    p.add_argument("--pairs", required=True, help="labelled pairs: .csv/.tsv/.jsonl/.parquet")
    p.add_argument("--text-a-column", default="sentence1")
    p.add_argument("--text-b-column", default="sentence2")
    p.add_argument("--label-column", default="label", help="1 = same / duplicate, 0 = different")
    p.add_argument("--score", default="cosine", choices=SCORES, help="what the threshold applies to")
    p.add_argument("--metric", default="f1", choices=METRICS, help="what the threshold maximises")
    p.add_argument("--output", help="save the model with its threshold here instead of in --model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "predict",
        help="same/different (calibrated threshold) or the head's labels and probabilities for pairs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="A model with a softmax/verification head prints its labels and probabilities; a model\n"
        "without one (or --threshold) prints same/different under its calibrated threshold.",
    )
    p.add_argument("--model", required=True)
    p.add_argument(
        "--input", help="pairs: .csv/.tsv/.jsonl/.parquet with --text-a-column and --text-b-column"
    )
    p.add_argument("--a", help="first text of a single pair")
    p.add_argument("--b", help="second text of a single pair")
    p.add_argument("--text-a-column", default="sentence1")
    p.add_argument("--text-b-column", default="sentence2")
    p.add_argument("--threshold", type=float, help="override the calibrated threshold (its score, or cosine)")
    p.add_argument("--output", help="JSON lines file (default: standard output)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=cmd_predict)
