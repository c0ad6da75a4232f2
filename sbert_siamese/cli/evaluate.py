"""``sbert-siamese evaluate``: a model's metrics on STS scores, 0/1 labelled pairs or duplicate mining, or
the STS suite (STS12-16, STS-B, SICK-R) as a table; printed as JSON (or markdown) and optionally saved."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import ConfigError
from .options import (
    add_common,
    add_model,
    add_pair_columns,
    bad_rows,
    load_model,
)

log = logging.getLogger("sbert_siamese.cli")

DEFAULT_STS_FILES = {"stsb": "sts-test.csv"}
TASKS = ("sts", "pairs", "mining")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="evaluate a model, print metrics as JSON")
    add_model(p)
    p.add_argument(
        "--task",
        default="sts",
        help="sts (Spearman/Pearson of similarities vs gold scores), pairs (0/1 labels: AP, F1, ... at the "
        "best thresholds) or mining (0/1 labelled pairs: find the duplicates among all their texts)",
    )
    p.add_argument(
        "--suite",
        choices=("sts",),
        help="sts: STS12-16, STS-B test and SICK-R test in the SBERT paper's Table 1 layout (--data-dir)",
    )
    p.add_argument("--output-dir", help="also write the metrics (and plots for --task pairs) here")
    p.add_argument("--data-dir", help="folder of the evaluation data (e.g. STS-B's folder)")
    p.add_argument("--file", help="file inside --data-dir (default for stsb: sts-test.csv)")
    p.add_argument("--data-format", default="stsb", help="stsb, csv, tsv, jsonl, parquet or hf")
    p.add_argument("--name", default="sts-test", help="metric key prefix")
    add_pair_columns(p)
    p.add_argument("--score-column", default="score", help="gold similarity score column (task sts)")
    p.add_argument("--label-column", default="label", help="0/1 label column (tasks pairs and mining)")
    p.add_argument("--score-min", type=float, default=0.0, help="lowest gold score (task sts)")
    p.add_argument("--score-max", type=float, default=5.0, help="highest gold score (task sts)")
    return add_common(p, batch_size=64)


def run(args: argparse.Namespace) -> int:
    if args.suite is not None:
        return run_suite(args)
    if args.task not in TASKS:
        raise ConfigError(f"unknown task {args.task!r}; valid: {', '.join(TASKS)}")
    source = args.file or DEFAULT_STS_FILES.get(args.data_format)
    if source is None:
        raise ConfigError(f"--file is required with --data-format {args.data_format}")
    if args.task == "sts":
        model, evaluator = _sts_evaluator(args, source)
    else:
        model, evaluator = _labelled_pairs_evaluator(args, source)
    metrics = evaluator(model)
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{args.name}_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(metrics, indent=2))
    return 0


def _sts_evaluator(args: argparse.Namespace, source: str):
    """The model and an ``STSEvaluator`` on the gold scores of ``source`` (read before the model loads)."""
    from ..data.readers import Columns, ScoreRange, load_pairs
    from ..evaluation import STSEvaluator

    columns = Columns(args.text_a_column, args.text_b_column, args.score_column)
    examples = load_pairs(
        source, args.data_format, args.data_dir, columns, ScoreRange(args.score_min, args.score_max),
        bad_rows=bad_rows(args),
    )  # fmt: skip
    model = load_model(args)
    evaluator = STSEvaluator.from_examples(
        examples, args.name, batch_size=args.batch_size, show_progress_bar=not args.quiet
    )
    return model, evaluator


def _labelled_pairs_evaluator(args: argparse.Namespace, source: str):
    """The model and a duplicate-mining (``--task mining``) or pair-classification evaluator on the 0/1
    labelled pairs of ``source``; the latter also writes its plots into ``--output-dir``."""
    from ..data.examples import read_examples
    from ..evaluation import DuplicateMiningEvaluator, PairClassificationEvaluator

    path = Path(args.data_dir) / source if args.data_dir else Path(source)
    examples, _ = read_examples(
        path,
        None if args.data_format == "stsb" else args.data_format,
        [args.text_a_column, args.text_b_column],
        "binary",
        args.label_column,
        bad_rows=bad_rows(args),
    )
    model = load_model(args)
    texts_a, texts_b = [e.texts[0] for e in examples], [e.texts[1] for e in examples]
    labels = [e.target for e in examples]
    if args.task == "mining":
        evaluator = DuplicateMiningEvaluator.from_labelled_pairs(
            texts_a, texts_b, labels, args.name, batch_size=args.batch_size, show_progress_bar=not args.quiet
        )
        return model, evaluator
    # a two-way head (different / same) is scored by its P(same); otherwise by cosine similarity
    two_way = model.head is not None and model.predict(["a"], ["b"])["probabilities"].shape[1] == 2
    evaluator = PairClassificationEvaluator(
        texts_a, texts_b, labels, args.name, args.batch_size, not args.quiet, use_head=two_way
    )
    if args.output_dir:
        _pair_plots(model, texts_a, texts_b, labels, args, two_way)
    return model, evaluator


def _pair_plots(model, texts_a, texts_b, labels, args: argparse.Namespace, two_way: bool) -> None:
    """Score histogram (duplicates vs not, with the model's threshold) and PR curve into --output-dir."""
    from ..evaluation import pair_scores, plots

    score = "head" if two_way else "cosine"
    scores = pair_scores(model, texts_a, texts_b, score, args.batch_size)
    stored = (
        model.threshold.threshold if model.threshold is not None and model.threshold.score == score else None
    )
    xlabel = "P(same) from the head" if two_way else "cosine similarity"
    plots.write_pair_plots({f"{args.name}_{score}": (scores, labels, stored)}, args.output_dir, xlabel=xlabel)


def run_suite(args: argparse.Namespace) -> int:
    """``--suite sts``: STS12-16, STS-B test and SICK-R test, Spearman x 100, as a markdown table (stdout)
    and, with --output-dir, sts_suite.json + sts_suite.md."""
    from ..evaluation import evaluate_sts_suite, sts_suite_markdown

    if args.suite != "sts":
        raise ConfigError(f"unknown suite {args.suite!r}; valid: sts")
    if not args.data_dir:
        raise ConfigError("--suite sts needs --data-dir (the folder holding sts12-16/, stsbenchmark/, sick/)")
    model = load_model(args)
    results = evaluate_sts_suite(model, args.data_dir, args.batch_size, show_progress_bar=not args.quiet)
    table = sts_suite_markdown({Path(str(args.model)).name: results})
    if results.missing:
        log.warning("not found under %s: %s", args.data_dir, ", ".join(results.missing))
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"model": str(args.model), "spearman_x100": dict(results), "details": results.details,
                   "missing": dict(results.missing)}  # fmt: skip
        (out / "sts_suite.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        (out / "sts_suite.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0
