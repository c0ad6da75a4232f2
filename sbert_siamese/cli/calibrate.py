"""``sbert-siamese calibrate``: choose the threshold that maximises F1 (or accuracy) on labelled pairs and
store it with the model (threshold.json), for predict and dedup."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .options import (
    add_common,
    add_model,
    add_pair_columns,
    load_model,
    read_pairs,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..evaluation import METRICS, SCORES

    p = subparsers.add_parser(
        "calibrate",
        help="choose the best-F1 (or accuracy) threshold on labelled pairs and store it with the model",
    )
    add_model(p, help="model directory (threshold.json is written into it)")
    p.add_argument("--pairs", required=True, help="labelled pairs: .csv/.tsv/.jsonl/.parquet")
    add_pair_columns(p)
    p.add_argument("--label-column", default="label", help="1 = same / duplicate, 0 = different")
    p.add_argument("--score", default="cosine", choices=SCORES, help="what the threshold applies to")
    p.add_argument("--metric", default="f1", choices=METRICS, help="what the threshold maximises")
    p.add_argument("--output", help="save the model with its threshold here instead of in --model")
    return add_common(p, batch_size=64)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import calibrate, save_threshold
    from ..models.resolve import resolve_model_path

    target = Path(args.output) if args.output else Path(args.model)
    # writing into --model is only for a model directory of the user's (not a name from the cache)
    if not args.output and not (target.is_dir() and (target / "modules.json").exists()):
        raise ConfigError(
            f"--model {args.model} is not a model directory of yours to write threshold.json into; "
            "pass --output DIR to save the model with its threshold there"
        )
    texts_a, texts_b, labels = read_pairs(args, args.pairs, args.label_column)
    model = load_model(args)
    threshold = calibrate(
        model, texts_a, texts_b, labels, args.score, args.metric, args.batch_size,
        source=str(args.pairs), show_progress_bar=not args.quiet,
    )  # fmt: skip
    model.threshold = threshold
    if args.output:
        model.save(target)
    else:
        save_threshold(resolve_model_path(args.model), threshold)
    print(json.dumps({"model": str(target), **threshold.to_dict()}, indent=2))
    return 0
