"""``sbert-siamese train``: fine-tune from a YAML recipe; options override the recipe's keys."""

from __future__ import annotations

import argparse
import json
import logging

from .options import add_allow_pickle, add_quiet, is_main_process

log = logging.getLogger("sbert_siamese.cli")

# options that override the recipe key of the same name when given
VALUE_OVERRIDES = ("data_dir", "output_dir", "model", "epochs", "max_steps", "seed")
FLAG_OVERRIDES = ("overwrite", "resume", "allow_pickle")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..config import describe_fields

    p = subparsers.add_parser(
        "train",
        help="fine-tune from a YAML recipe",
        epilog="recipe keys (also for --set):\n" + describe_fields(),
    )
    p.add_argument("recipe", help="YAML recipe, e.g. recipes/stsb_cosine.yaml")
    p.add_argument("--data-dir", help="folder that the recipe's relative data paths are read from")
    p.add_argument("--output-dir", help="where the model, metrics.json and recipe.yaml go")
    p.add_argument("--model", help="starting model: directory, known name or hub id")
    # these three default to the recipe's values (see the recipe keys below)
    p.add_argument("--epochs", type=int, help="passes over the training data")
    p.add_argument("--max-steps", type=int, help="train exactly this many optimizer steps (overrides epochs)")
    p.add_argument("--seed", type=int, help="seed for shuffling, dropout and initialisation")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any recipe key (repeatable)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty output dir (its old content goes once the new model is complete)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output-dir from its newest intact checkpoint (same recipe)",
    )
    # no default here: without the option the recipe's on_bad_rows stands
    p.add_argument(
        "--on-bad-rows",
        choices=("error", "skip"),
        help="a malformed data row: error (default: stop, naming file and line) or skip (counted by reason "
        "in the log and metrics.json)",
    )
    add_quiet(p)
    add_allow_pickle(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..config import load_recipe, parse_overrides
    from ..training.trainer import train

    overrides = parse_overrides(args.set or [])
    for key in VALUE_OVERRIDES:
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    for flag in FLAG_OVERRIDES:
        if getattr(args, flag):
            overrides[flag] = True
    if args.on_bad_rows is not None:
        overrides["on_bad_rows"] = args.on_bad_rows
    config = load_recipe(args.recipe, overrides)
    result = train(config, show_progress_bar=not args.quiet)
    if result.output_dir is not None and is_main_process():
        log.info("model, metrics.json and recipe.yaml written to %s", result.output_dir)
        print(json.dumps(headline(result.metrics), indent=2))
    return 0


def headline(metrics: dict) -> dict:
    """What train prints: the Spearman correlations of cosine similarity, steps, time and speed (the rest
    is in metrics.json)."""
    keys = [k for k in metrics if k.endswith("spearman_cosine")] + [
        "train/steps",
        "train/seconds",
        "train/examples_per_second",
    ]
    return {k: metrics[k] for k in keys if k in metrics}
