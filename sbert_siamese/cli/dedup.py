"""``sbert-siamese dedup``: the duplicate pairs of a corpus (scoring at or above the threshold) and the
groups they form, each with a representative."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .options import (
    add_backend,
    add_common,
    add_model,
    add_search_options,
    bad_rows,
    load_model,
    read_texts,
    rows_output,
    write_rows,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dedup",
        help="find duplicate pairs and groups in a corpus (threshold: the model's calibrated one)",
        epilog="Writes every pair scoring >= the threshold (i, j, score, texts) to --output and the groups\n"
        "they form (connected components, each with a representative: the member closest to the others)\n"
        "to --groups (default: OUTPUT's name + .groups.jsonl). Exact chunked search below\n"
        "search.APPROXIMATE_FROM texts, the k-means clustered index above (--index to choose).",
    )
    add_model(p)
    p.add_argument("--input", required=True, help="texts: .txt (one per line), .csv/.tsv/.jsonl/.parquet")
    p.add_argument("--column", default="text", help="the text column of a table input")
    p.add_argument("--output", required=True, help="pairs file: .jsonl, .csv or .tsv")
    p.add_argument("--groups", help="groups file (JSON lines)")
    p.add_argument("--threshold", type=float, help="override the calibrated threshold")
    p.add_argument("--similarity", choices=("cosine", "dot"), help="default: the calibrated one, else cosine")
    add_search_options(
        p,
        top_k_help="neighbours examined per text",
        embeddings_help="directory for sharded embeddings: a rerun resumes an interrupted encode",
    )
    add_backend(p)
    return add_common(p, batch_size=64)


def run(args: argparse.Namespace) -> int:
    from ..search import find_duplicates

    output = rows_output(args.output)
    groups_path = Path(args.groups) if args.groups else output.with_name(output.stem + ".groups.jsonl")
    if groups_path.suffix != ".jsonl":
        raise ConfigError(
            f"--groups {groups_path}: groups hold lists of members; expected a .jsonl file name"
        )
    texts, lines = read_texts(args, args.input)
    # i, j count the kept texts; when rows were skipped, their input lines are given too
    lines = lines if bad_rows(args).skip else None
    model = load_model(args)
    result = find_duplicates(
        model, texts, args.threshold, args.similarity, args.top_k, args.index, args.batch_size,
        args.embeddings, show_progress_bar=not args.quiet, backend=args.backend,
    )  # fmt: skip
    pairs = pair_rows(result.pairs, texts, lines)
    write_rows(output, pairs)
    groups = group_rows(result.groups, texts, lines)
    write_rows(groups_path, groups)
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


def pair_rows(pairs, texts: list[str], lines: list[int] | None) -> list[dict]:
    """The rows of the pairs file: i, j, score, both texts (and their input lines when given)."""
    return [
        {"i": i, "j": j, "score": round(score, 6), "text_i": texts[i], "text_j": texts[j]}
        | ({"line_i": lines[i], "line_j": lines[j]} if lines is not None else {})
        for i, j, score in pairs
    ]


def group_rows(groups, texts: list[str], lines: list[int] | None) -> list[dict]:
    """The rows of the groups file: members, texts and representative (and input lines when given)."""
    return [
        {
            "group": g,
            "size": len(group.members),
            "representative": group.representative,
            "representative_text": texts[group.representative],
            "members": group.members,
            "texts": [texts[m] for m in group.members],
        }
        | ({"member_lines": [lines[m] for m in group.members]} if lines is not None else {})
        for g, group in enumerate(groups)
    ]
