"""``sbert-siamese search``: the top-k nearest corpus texts for each query, as JSON lines."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .options import (
    add_backend,
    add_common,
    add_model,
    add_search_options,
    bad_rows,
    json_lines_output,
    load_model,
    read_texts,
    write_json_line,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("search", help="top-k nearest corpus texts for queries (JSON lines)")
    add_model(p)
    p.add_argument("--corpus", required=True, help="texts: .txt, .csv/.tsv/.jsonl/.parquet")
    p.add_argument("--query", action="append", help="a query text (repeatable)")
    p.add_argument("--queries", help="a file of queries (same formats as --corpus)")
    p.add_argument("--column", default="text", help="the text column of a table input (corpus and queries)")
    add_search_options(
        p,
        top_k_help="results per query",
        embeddings_help="directory for the corpus embeddings (reused by later searches)",
    )
    p.add_argument("--output", help="JSON lines file (default: standard output)")
    add_backend(p)
    return add_common(p, batch_size=64)


def run(args: argparse.Namespace) -> int:
    from ..search import semantic_search

    queries = list(args.query or [])
    if args.queries:
        queries += read_texts(args, args.queries)[0]
    if not queries:
        raise ConfigError("give --query TEXT (repeatable) or --queries FILE")
    corpus, lines = read_texts(args, args.corpus)
    skipping = bad_rows(args).skip  # "index" counts kept texts; "line" is the corpus line
    model = load_model(args)
    hits = semantic_search(
        model, corpus, queries, args.top_k, args.index, args.batch_size, args.embeddings,
        show_progress_bar=not args.quiet, backend=args.backend,
    )  # fmt: skip
    with json_lines_output(args.output) as out:
        for query, row in zip(queries, hits, strict=True):
            results = [
                {"rank": r, "index": i, "score": round(s, 6), "text": corpus[i]}
                | ({"line": lines[i]} if skipping else {})
                for r, (i, s) in enumerate(row, 1)
            ]
            write_json_line(out, {"query": query, "results": results})
    return 0
