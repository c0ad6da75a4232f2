"""Commands that apply a trained model: calibrate, verify-style predict without a head, dedup, search.

Registered by ``cli.build_parser``; like the rest of the CLI, these are the only places that print.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError


def bad_rows(args):
    """The command's collector of malformed rows (``--on-bad-rows``); ``cli.main`` reports what it skipped."""
    from ..data.readers import BadRows

    if getattr(args, "_bad_rows", None) is None:
        args._bad_rows = BadRows(getattr(args, "on_bad_rows", None) or "error")
    return args._bad_rows


def _read_pairs(path: str, text_a: str, text_b: str, label: str | None, bad=None):
    """(texts_a, texts_b, labels or None) from a .csv/.tsv/.jsonl/.parquet pair file."""
    from ..data.examples import read_examples

    examples, _ = read_examples(
        path, None, [text_a, text_b], "binary" if label else "none", label, bad_rows=bad
    )
    labels = [e.target for e in examples] if label else None
    return [e.texts[0] for e in examples], [e.texts[1] for e in examples], labels


# ---------------------------------------------------------------------------------------------- calibrate
def cmd_calibrate(args) -> int:
    from ..evaluation import calibrate
    from ..models.resolve import resolve_model_path
    from ..models.siamese import SiameseModel

    target = Path(args.output) if args.output else Path(args.model)
    if not args.output and not (target.is_dir() and (target / "modules.json").exists()):
        raise ConfigError(
            f"--model {args.model} is not a model directory of yours to write threshold.json into; "
            "pass --output DIR to save the model with its threshold there"
        )
    texts_a, texts_b, labels = _read_pairs(
        args.pairs, args.text_a_column, args.text_b_column, args.label_column, bad_rows(args)
    )
    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
    threshold = calibrate(
        model, texts_a, texts_b, labels, args.score, args.metric, args.batch_size,
        source=str(args.pairs), show_progress_bar=not args.quiet,
    )  # fmt: skip
    model.threshold = threshold
    if args.output:
        model.save(target)
    else:
        from ..evaluation import save_threshold

        save_threshold(resolve_model_path(args.model), threshold)
    print(json.dumps({"model": str(target), **threshold.to_dict()}, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    from ..models.siamese import SiameseModel

    if args.input is None and (args.a is None or args.b is None):
        raise ConfigError("give --input FILE, or both --a TEXT and --b TEXT")
    if args.input is not None:  # the data first: a bad row fails before the model loads
        texts_a, texts_b, _ = _read_pairs(
            args.input, args.text_a_column, args.text_b_column, None, bad_rows(args)
        )
    else:
        texts_a, texts_b = [args.a], [args.b]
    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
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


# ---------------------------------------------------------------------------------------------- dedup
def _write_rows(path: Path, rows: list[dict]) -> None:
    """JSON lines, or CSV / TSV by the file's extension; written to a temporary name, then renamed."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        if path.suffix in (".csv", ".tsv"):
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["i"], delimiter=","
                                    if path.suffix == ".csv" else "\t")  # fmt: skip
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def cmd_dedup(args) -> int:
    from ..data.readers import read_texts_with_lines
    from ..models.siamese import SiameseModel
    from ..search import find_duplicates

    output = Path(args.output)
    if output.suffix not in (".jsonl", ".csv", ".tsv"):
        raise ConfigError(f"--output {output}: expected a .jsonl, .csv or .tsv file name")
    groups_path = Path(args.groups) if args.groups else output.with_name(output.stem + ".groups.jsonl")
    if groups_path.suffix != ".jsonl":
        raise ConfigError(
            f"--groups {groups_path}: groups hold lists of members; expected a .jsonl file name"
        )
    texts, lines = read_texts_with_lines(args.input, args.column, bad_rows(args))
    skipping = bad_rows(args).skip  # i, j count kept texts; their input lines are given too
    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
    result = find_duplicates(
        model, texts, args.threshold, args.similarity, args.top_k, args.index, args.batch_size,
        args.embeddings, show_progress_bar=not args.quiet, backend=args.backend,
    )  # fmt: skip
    pairs = [
        {"i": i, "j": j, "score": round(score, 6), "text_i": texts[i], "text_j": texts[j]}
        | ({"line_i": lines[i], "line_j": lines[j]} if skipping else {})
        for i, j, score in result.pairs
    ]
    _write_rows(output, pairs)
    groups = [
        {
            "group": g,
            "size": len(group.members),
            "representative": group.representative,
            "representative_text": texts[group.representative],
            "members": group.members,
            "texts": [texts[m] for m in group.members],
        }
        | ({"member_lines": [lines[m] for m in group.members]} if skipping else {})
        for g, group in enumerate(result.groups)
    ]
    _write_rows(groups_path, groups)
    summary = {
        "texts": len(texts),
        "pairs": len(pairs),
        "groups": len(groups),
        "texts_in_groups": sum(g["size"] for g in groups),
        "threshold": result.threshold,
        "similarity": result.similarity,
        "index": result.index,
        "pairs_file": str(output),
        "groups_file": str(groups_path),
        **{k: round(v, 3) for k, v in result.timings.items()},
    }
    print(json.dumps(summary, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------- search
def cmd_search(args) -> int:
    from ..data.readers import read_texts, read_texts_with_lines
    from ..models.siamese import SiameseModel
    from ..search import semantic_search

    queries = list(args.query or [])
    if args.queries:
        queries += read_texts(args.queries, args.column, bad_rows(args))
    if not queries:
        raise ConfigError("give --query TEXT (repeatable) or --queries FILE")
    corpus, lines = read_texts_with_lines(args.corpus, args.column, bad_rows(args))
    skipping = bad_rows(args).skip  # "index" counts kept texts; "line" is the corpus line
    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
    hits = semantic_search(
        model, corpus, queries, args.top_k, args.index, args.batch_size, args.embeddings,
        show_progress_bar=not args.quiet, backend=args.backend,
    )  # fmt: skip
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for query, row in zip(queries, hits, strict=True):
            results = [
                {"rank": r, "index": i, "score": round(s, 6), "text": corpus[i]}
                | ({"line": lines[i]} if skipping else {})
                for r, (i, s) in enumerate(row, 1)
            ]
            out.write(json.dumps({"query": query, "results": results}, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


# ---------------------------------------------------------------------------------------------- mine
def cmd_mine(args) -> int:
    """Offline hard negatives: for (anchor, positive) pairs, the most similar corpus text that is not a
    known positive; written as triplets for the triplet objectives."""
    from ..data.examples import Example, known_positives
    from ..data.readers import read_texts
    from ..models.siamese import SiameseModel
    from ..search import mine_hard_negatives

    output = Path(args.output)
    if output.suffix not in (".jsonl", ".csv", ".tsv"):
        raise ConfigError(f"--output {output}: expected a .jsonl, .csv or .tsv file name")
    texts_a, texts_b, labels = _read_pairs(
        args.pairs, args.text_a_column, args.text_b_column, args.label_column, bad_rows(args)
    )
    labels = labels or [1] * len(texts_a)  # no label column: every pair is a positive
    labelled = [Example((a, b), y) for a, b, y in zip(texts_a, texts_b, labels, strict=True)]
    pairs = [Example(e.texts, None) for e in labelled if e.target == 1]
    corpus = (
        read_texts(args.corpus, args.column, bad_rows(args))
        if args.corpus
        else [t for e in labelled for t in e.texts]
    )
    same = known_positives(labelled)  # no member of an anchor's duplicate cluster becomes its negative
    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle)
    triplets, report = mine_hard_negatives(
        model.tower("a"), pairs, corpus, same, args.max_relative_similarity, args.candidates, args.batch_size,
        show_progress_bar=not args.quiet,
    )  # fmt: skip
    _write_rows(
        output, [{"anchor": a, "positive": p, "negative": n} for a, p, n in (t.texts for t in triplets)]
    )
    print(json.dumps({"output": str(output), **report}, indent=2))
    return 0


def add_backend_argument(p) -> None:
    from ..backends.onnx import BACKENDS

    p.add_argument(
        "--backend",
        default="torch",
        choices=BACKENDS,
        help="torch; onnx (ONNX Runtime fp32, same embeddings within 1e-5); onnx-int8 (int8 weights: about "
        "2x faster on CPU, STS-B Spearman within 0.005). Uses the model's onnx/ export (see export), or "
        "exports once for this run",
    )


def add_parsers(sub) -> None:
    from ..evaluation import METRICS, SCORES
    from ..search import KINDS

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

    p = sub.add_parser(
        "dedup",
        help="find duplicate pairs and groups in a corpus (threshold: the model's calibrated one)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes every pair scoring >= the threshold (i, j, score, texts) to --output and the groups\n"
        "they form (connected components, each with a representative: the member closest to the others)\n"
        "to --groups (default: OUTPUT's name + .groups.jsonl). Exact chunked search below\n"
        "search.APPROXIMATE_FROM texts, a faiss HNSW index above (--index to choose).",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True, help="texts: .txt (one per line), .csv/.tsv/.jsonl/.parquet")
    p.add_argument("--column", default="text", help="the text column of a table input")
    p.add_argument("--output", required=True, help="pairs file: .jsonl, .csv or .tsv")
    p.add_argument("--groups", help="groups file (JSON lines)")
    p.add_argument("--threshold", type=float, help="override the calibrated threshold")
    p.add_argument("--similarity", choices=("cosine", "dot"), help="default: the calibrated one, else cosine")
    p.add_argument("--top-k", type=int, default=10, help="neighbours examined per text")
    p.add_argument("--index", default="auto", choices=KINDS)
    p.add_argument(
        "--embeddings", help="directory for sharded embeddings: a rerun resumes an interrupted encode"
    )
    p.add_argument("--batch-size", type=int, default=64)
    add_backend_argument(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("search", help="top-k nearest corpus texts for queries (JSON lines)")
    p.add_argument("--model", required=True)
    p.add_argument("--corpus", required=True, help="texts: .txt, .csv/.tsv/.jsonl/.parquet")
    p.add_argument("--query", action="append", help="a query text (repeatable)")
    p.add_argument("--queries", help="a file of queries (same formats as --corpus)")
    p.add_argument("--column", default="text")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--index", default="auto", choices=KINDS)
    p.add_argument("--embeddings", help="directory for the corpus embeddings (reused by later searches)")
    p.add_argument("--output", help="JSON lines file (default: standard output)")
    p.add_argument("--batch-size", type=int, default=64)
    add_backend_argument(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "mine", help="offline hard negatives for (anchor, positive) pairs, written as triplets"
    )
    p.add_argument("--model", required=True)
    p.add_argument(
        "--pairs", required=True, help="pairs: .csv/.tsv/.jsonl/.parquet (labelled or positives only)"
    )
    p.add_argument("--text-a-column", default="sentence1")
    p.add_argument("--text-b-column", default="sentence2")
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
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_mine)
