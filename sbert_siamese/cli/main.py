"""The ``sbert-siamese`` command line: train, evaluate, encode, demo (and, from ``cli_tools``, calibrate,
predict, dedup, search).

The CLI is the only place that configures logging and prints; errors of our own types end the command
with a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from ..data.readers import read_texts_with_lines
from ..errors import ConfigError, SbertSiameseError
from ..io.safe_io import atomic_write_bytes, atomic_write_text, describe_os_error
from .tools import bad_rows

log = logging.getLogger("sbert_siamese.cli")

DEFAULT_STS_FILES = {"stsb": "sts-test.csv"}


def _quiet_libraries() -> None:
    """Keep third-party chatter (weight-loading bars, hub warnings) out of our output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover - transformers is a hard dependency
        pass


# ---------------------------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from ..config import load_recipe, parse_overrides
    from ..training.trainer import train

    overrides = parse_overrides(args.set or [])
    for key in ("data_dir", "output_dir", "model", "epochs", "max_steps", "seed"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    for flag in ("overwrite", "resume", "allow_pickle"):
        if getattr(args, flag):
            overrides[flag] = True
    if args.on_bad_rows is not None:
        overrides["on_bad_rows"] = args.on_bad_rows
    config = load_recipe(args.recipe, overrides)
    result = train(config, show_progress_bar=not args.quiet)
    if result.output_dir is not None and _is_main_process():
        log.info("model, metrics.json and recipe.yaml written to %s", result.output_dir)
        print(json.dumps(_headline(result.metrics), indent=2))
    return 0


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _headline(metrics: dict) -> dict:
    keys = [k for k in metrics if k.endswith("spearman_cosine")] + [
        "train/steps",
        "train/seconds",
        "train/examples_per_second",
    ]
    return {k: metrics[k] for k in keys if k in metrics}


# ---------------------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from pathlib import Path as _Path

    from ..data.examples import read_examples
    from ..data.readers import Columns, ScoreRange, load_pairs
    from ..evaluation import PairClassificationEvaluator, STSEvaluator
    from ..models.siamese import SiameseModel

    if args.suite is not None:
        return _evaluate_suite(args)
    if args.task not in ("sts", "pairs", "mining"):
        raise ConfigError(f"unknown task {args.task!r}; valid: sts, pairs, mining")
    source = args.file or DEFAULT_STS_FILES.get(args.data_format)
    if source is None:
        raise ConfigError(f"--file is required with --data-format {args.data_format}")
    if args.task == "sts":
        columns = Columns(args.text_a_column, args.text_b_column, args.score_column)
        examples = load_pairs(
            source, args.data_format, args.data_dir, columns, ScoreRange(args.score_min, args.score_max),
            bad_rows=bad_rows(args),
        )  # fmt: skip
        model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
        evaluator = STSEvaluator.from_examples(
            examples, args.name, batch_size=args.batch_size, show_progress_bar=not args.quiet
        )
    else:
        path = _Path(args.data_dir) / source if args.data_dir else _Path(source)
        examples, _ = read_examples(
            path,
            None if args.data_format == "stsb" else args.data_format,
            [args.text_a_column, args.text_b_column],
            "binary",
            args.label_column,
            bad_rows=bad_rows(args),
        )
        model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
        texts_a, texts_b = [e.texts[0] for e in examples], [e.texts[1] for e in examples]
        labels = [e.target for e in examples]
        if args.task == "mining":
            from ..evaluation import DuplicateMiningEvaluator

            evaluator = DuplicateMiningEvaluator.from_labelled_pairs(
                texts_a,
                texts_b,
                labels,
                args.name,
                batch_size=args.batch_size,
                show_progress_bar=not args.quiet,
            )
        else:
            two_way = model.head is not None and model.predict(["a"], ["b"])["probabilities"].shape[1] == 2
            evaluator = PairClassificationEvaluator(
                texts_a, texts_b, labels, args.name, args.batch_size, not args.quiet, use_head=two_way
            )
            if args.output_dir:
                _pair_plots(model, texts_a, texts_b, labels, args, two_way)
    metrics = evaluator(model)
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{args.name}_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(metrics, indent=2))
    return 0


def _pair_plots(model, texts_a, texts_b, labels, args, two_way: bool) -> None:
    """Score histogram (duplicates vs not, with the model's threshold) and PR curve into --output-dir."""
    from ..evaluation import pair_scores
    from ..evaluation.plots import write_pair_plots

    score = "head" if two_way else "cosine"
    scores = pair_scores(model, texts_a, texts_b, score, args.batch_size)
    stored = (
        model.threshold.threshold if model.threshold is not None and model.threshold.score == score else None
    )
    xlabel = "P(same) from the head" if two_way else "cosine similarity"
    write_pair_plots({f"{args.name}_{score}": (scores, labels, stored)}, args.output_dir, xlabel=xlabel)


def _evaluate_suite(args) -> int:
    """``--suite sts``: STS12-16, STS-B test and SICK-R test, Spearman x 100, as a markdown table (stdout)
    and, with --output-dir, sts_suite.json + sts_suite.md."""
    from ..evaluation import evaluate_sts_suite, sts_suite_markdown
    from ..models.siamese import SiameseModel

    if args.suite != "sts":
        raise ConfigError(f"unknown suite {args.suite!r}; valid: sts")
    if not args.data_dir:
        raise ConfigError("--suite sts needs --data-dir (the folder holding sts12-16/, stsbenchmark/, sick/)")
    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
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


# ---------------------------------------------------------------------------------------------- encode
def cmd_encode(args) -> int:
    from ..models.encoder import SiameseEncoder

    output = Path(args.output)
    if output.suffix not in (".npy", "") and not output.is_dir():
        raise ConfigError(f"--output {output}: expected a .npy file name or a directory (sharded, resumable)")
    texts, lines = read_texts_with_lines(args.input, args.column, bad_rows(args))
    encoder = SiameseEncoder.from_pretrained(args.model, allow_pickle=args.allow_pickle)

    def write_lines() -> None:  # rows were skipped: which input line each output row comes from
        if bad_rows(args).total:
            lines_file = output / "lines.txt" if output.suffix != ".npy" else output.with_suffix(".lines.txt")
            atomic_write_text(lines_file, "".join(f"{n}\n" for n in lines), "the line numbers")
            log.warning("rows were skipped: row i of the output is input line %s[i]", lines_file)

    if output.suffix != ".npy":  # a directory: shards on disk, a rerun continues an interrupted encode
        from ..io.streaming import encode_to_disk, weights_fingerprint

        identity = f"{args.model}, weights {weights_fingerprint(encoder)}"
        if args.precision != "fp32":
            raise ConfigError("--precision applies to .npy output; a sharded directory is encoded in fp32")
        report = encode_to_disk(
            encoder, texts, output, args.shard_size, args.batch_size, args.normalize, identity,
            show_progress_bar=not args.quiet, backend=args.backend,
        )  # fmt: skip
        write_lines()
        print(json.dumps({"output": str(output), **report}))
        return 0
    embeddings = encoder.encode(
        texts, batch_size=args.batch_size, show_progress_bar=not args.quiet, normalize=args.normalize,
        backend=args.backend, precision=args.precision,
    )  # fmt: skip
    buffer = io.BytesIO()
    np.save(buffer, embeddings)
    atomic_write_bytes(output, buffer.getvalue(), "the embeddings")
    write_lines()
    print(
        json.dumps(
            {
                "output": str(output),
                "texts": len(texts),
                "dimension": int(embeddings.shape[1]),
                "truncated": len(encoder.last_truncated),
                "skipped_rows": bad_rows(args).total,
            }
        )
    )
    return 0


# ---------------------------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from ..backends.onnx import export_onnx
    from ..models.siamese import SiameseModel

    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
    if model.untied:
        raise ConfigError(
            f"{args.model}: untied towers are exported one at a time; export each tower's folder"
        )
    if args.output:
        folder = model.save(args.output)
    else:
        folder = Path(args.model)
        if not folder.is_dir():
            raise ConfigError(
                f"--model {args.model} is not a directory; give --output DIR to save it with the export"
            )
    info = export_onnx(model.tower("a"), folder, int8=not args.no_int8)
    files = {backend: str(folder / "onnx" / name) for backend, name in info["files"].items()}
    print(json.dumps({"model": str(folder), "files": files, "weights": info["weights"]}, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------- demo
DEMO_PAIRS = [
    ("How do I learn to cook at home?", "What is the best way to teach myself cooking?"),
    ("How do I learn to cook at home?", "How do I fix a noisy laptop fan?"),
    ("A man is playing a guitar on stage.", "A musician performs with his guitar."),
    ("A man is playing a guitar on stage.", "A man is not playing any instrument."),
    ("The city council voted to expand the bus network.", "More bus routes were approved by the council."),
]


def cmd_demo(args) -> int:
    """Fine-tune the packaged all-MiniLM-L6-v2 on data/demo and show before/after numbers."""
    from ..config import load_recipe
    from ..models.encoder import SiameseEncoder
    from ..training.trainer import train

    root = Path(__file__).resolve().parent.parent
    recipe = Path(args.recipe) if args.recipe else root / "recipes" / "demo.yaml"
    overrides = {"output_dir": args.output_dir, "overwrite": True}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    elif not Path("data/demo").is_dir():
        overrides["data_dir"] = str(root / "data" / "demo")
    config = load_recipe(recipe, overrides)
    print(f"1/3 fine-tuning {config.model} on {config.data_dir}")
    print(f"    ({config.epochs} epoch(s), batch {config.batch_size}, loss {config.loss})")
    start = SiameseEncoder.from_pretrained(config.model)
    before = [float(x) for x in _pair_cosines(start, DEMO_PAIRS)]
    result = train(config, show_progress_bar=not args.quiet)
    m = result.metrics
    test_file = Path(config.data_dir or ".") / str(config.test_data)
    print(f"\n2/3 test set ({test_file}), Spearman x 100 of cosine similarity vs gold score")
    print(f"    before fine-tuning: {100 * m['initial/sts-test_spearman_cosine']:.2f}")
    print(f"    after fine-tuning:  {100 * m['sts-test_spearman_cosine']:.2f}")
    speed = f"{m['train/examples_per_second']:.1f} pairs/s"
    print(f"    ({m['train/steps']} steps in {m['train/seconds']:.1f} s, {speed})")
    after = _pair_cosines(result.encoder, DEMO_PAIRS)
    print("\n3/3 cosine similarity of a few pairs, before -> after")
    for (a, b), x, y in zip(DEMO_PAIRS, before, after, strict=True):
        print(f"    {x:+.3f} -> {y:+.3f}  {a!r} ~ {b!r}")
    print(f"\nThe fine-tuned model is in {result.output_dir} (loadable by SentenceTransformer too).")
    return 0


def _pair_cosines(encoder, pairs):
    u = encoder.encode([a for a, _ in pairs], normalize=True)
    v = encoder.encode([b for _, b in pairs], normalize=True)
    return (u * v).sum(axis=1)


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from ..config import describe_fields

    parser = argparse.ArgumentParser(prog="sbert-siamese", description="Siamese sentence encoders.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train",
        help="fine-tune from a YAML recipe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recipe keys (also for --set):\n" + describe_fields(),
    )
    p.add_argument("recipe", help="YAML recipe, e.g. recipes/stsb_cosine.yaml")
    p.add_argument("--data-dir", help="folder that the recipe's relative data paths are read from")
    p.add_argument("--output-dir", help="where the model, metrics.json and recipe.yaml go")
    p.add_argument("--model", help="starting model: directory, known name or hub id")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seed", type=int)
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
    p.add_argument(
        "--on-bad-rows",
        choices=("error", "skip"),
        help="a malformed data row: error (default: stop, naming file and line) or skip (counted by reason "
        "in the log and metrics.json)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model, print metrics as JSON")
    p.add_argument("--model", required=True)
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
    p.add_argument("--text-a-column", default="sentence1")
    p.add_argument("--text-b-column", default="sentence2")
    p.add_argument("--score-column", default="score")
    p.add_argument("--label-column", default="label", help="0/1 label column (task pairs)")
    p.add_argument("--score-min", type=float, default=0.0)
    p.add_argument("--score-max", type=float, default=5.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "encode",
        help="embed texts from .txt/.csv/.tsv/.jsonl/.parquet into a .npy file or a sharded directory",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True, help=".txt (one text per line), .csv/.tsv/.jsonl (see --column)")
    p.add_argument(
        "--output",
        required=True,
        help="output .npy, shape (N, D), float32, input order; or a directory: shards + manifest written "
        "as they are done, and a rerun after an interruption encodes only the missing shards",
    )
    p.add_argument("--shard-size", type=int, default=10_000, help="texts per shard (directory output)")
    p.add_argument("--column", default="text", help="column/key holding the text for csv/tsv/jsonl")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    add_backend_argument(p)
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="torch backend: autocast precision (bf16/fp16 are for GPUs; fp16 needs CUDA)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "export",
        help="write ONNX files (fp32 and int8) into a model directory, for --backend onnx / onnx-int8",
    )
    p.add_argument("--model", required=True, help="model directory (or name, with --output)")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format")
    p.add_argument("--no-int8", action="store_true", help="only the fp32 file, no int8 quantised one")
    p.add_argument(
        "--output",
        help="save the model with its export here (default: into --model, which must be a directory)",
    )
    p.set_defaults(func=cmd_export)

    from .tools import add_parsers

    add_parsers(sub)

    p = sub.add_parser("demo", help="fine-tune all-MiniLM-L6-v2 on the bundled sample and show the effect")
    p.add_argument("--recipe", help="default: recipes/demo.yaml")
    p.add_argument("--data-dir", help="default: data/demo")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    for command, command_parser in sub.choices.items():
        if command not in ("train", "export", "demo"):  # every other command reads a data file
            command_parser.add_argument(
                "--on-bad-rows",
                choices=("error", "skip"),
                default="error",
                help="a malformed input row: error (stop, naming file and line) or skip (counted, reported)",
            )
        # every command that loads a model
        if command == "train" or any("--model" in a.option_strings for a in command_parser._actions):
            command_parser.add_argument(
                "--allow-pickle",
                action="store_true",
                help="load pickle weights (.bin/.pt) of a model without safetensors; only for models you "
                "trust: a pickle file can carry code (it is read with torch.load(weights_only=True))",
            )
    return parser


def add_backend_argument(p) -> None:
    from .tools import add_backend_argument as add

    add(p)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    main_process = os.environ.get("RANK", "0") == "0"  # other ranks only speak up about problems
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.INFO if main_process else logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    _quiet_libraries()
    try:
        status = args.func(args)
    except SbertSiameseError as exc:
        print(f"sbert-siamese {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command itself opens (e.g. --output): one line, not a traceback
        print(f"sbert-siamese {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    skipped = getattr(args, "_bad_rows", None)
    if skipped is not None and skipped.total:
        log.warning("--on-bad-rows skip: %s", skipped.summary(3))
    return status


if __name__ == "__main__":
    sys.exit(main())
