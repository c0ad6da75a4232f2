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
    add_engine,
    add_model,
    add_search_options,
    bad_rows,
    load_model,
    ray_engine,
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
        "search.APPROXIMATE_FROM texts, the k-means clustered index above (--index to choose).\n"
        "With --engine ray: exact search, one task per shard, below APPROXIMATE_FROM texts; above, a faiss\n"
        "IVF index (ivf-pq: compressed, memory bounded) trained on a sample, filled and searched in\n"
        "parallel.",
    )
    add_model(p)
    p.add_argument(
        "--input",
        required=True,
        help="texts: .txt (one per line), .csv/.tsv/.jsonl/.parquet; or a directory or glob of them",
    )
    p.add_argument("--column", default="text", help="the text column of a table input")
    p.add_argument("--output", required=True, help="pairs file: .jsonl, .csv or .tsv")
    p.add_argument("--groups", help="groups file (JSON lines)")
    p.add_argument("--threshold", type=float, help="override the calibrated threshold")
    p.add_argument("--similarity", choices=("cosine", "dot"), help="default: the calibrated one, else cosine")
    add_search_options(
        p,
        top_k_help="neighbours examined per text",
        embeddings_help="directory for sharded embeddings: a rerun resumes an interrupted encode",
        extra_kinds=("ivf-pq",),
    )
    add_backend(p)
    p.add_argument(
        "--shard-size",
        type=int,
        default=10_000,
        help="--engine ray: texts per piece of work and embedding shard",
    )
    p.add_argument("--nlist", type=int, help="--engine ray, ivf / ivf-pq: k-means lists; default 1.6 sqrt(N)")
    p.add_argument(
        "--nprobe",
        type=int,
        help="--engine ray, ivf / ivf-pq: lists probed per text; default 16 (see README)",
    )
    add_engine(p)
    return add_common(p, batch_size=64)


def run(args: argparse.Namespace) -> int:
    from ..search import find_duplicates

    output = rows_output(args.output)
    groups_path = Path(args.groups) if args.groups else output.with_name(output.stem + ".groups.jsonl")
    if groups_path.suffix != ".jsonl":
        raise ConfigError(
            f"--groups {groups_path}: groups hold lists of members; expected a .jsonl file name"
        )
    engine = ray_engine(args, args.shard_size)
    if args.index == "ivf-pq" and engine is None:
        raise ConfigError("--index ivf-pq is built on the cluster: add --engine ray (or use ivf)")
    if engine is None and (args.nlist is not None or args.nprobe is not None):
        raise ConfigError("--nlist and --nprobe apply to --engine ray (its ivf / ivf-pq search)")
    if engine is not None:
        result, texts, lines, count = _dedup_on_ray(args, engine)
    else:
        texts, lines = read_texts(args, args.input)
        model = load_model(args)
        result = find_duplicates(
            model, texts, args.threshold, args.similarity, args.top_k, args.index, args.batch_size,
            args.embeddings, show_progress_bar=not args.quiet, backend=args.backend,
        )  # fmt: skip
        count = len(texts)
    # i, j count the kept texts; when rows were skipped, their input lines are given too
    lines = lines if bad_rows(args).skip else None
    pairs = pair_rows(result.pairs, texts, lines)
    write_rows(output, pairs)
    groups = group_rows(result.groups, texts, lines)
    write_rows(groups_path, groups)
    summary = {
        "texts": count,
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


def _dedup_on_ray(args: argparse.Namespace, engine):
    """Encode on the cluster into the --embeddings directory (a work folder beside --output without it),
    search it shard by shard, and fetch the texts of the rows in pairs only: (result, {row: text},
    {row: line}, number of texts)."""
    import shutil
    import time

    from ..engines.ray import RAY_INDEX_KINDS, ModelSpec, Reading
    from ..io.streaming import weights_fingerprint
    from ..search.corpus import DedupResult, _rule
    from ..search.duplicates import cluster_duplicates

    if args.index not in RAY_INDEX_KINDS:  # before hours of encoding, not after
        raise ConfigError(f"--index {args.index}: with --engine ray, one of {', '.join(RAY_INDEX_KINDS)}")
    for option in ("top_k", "nlist", "nprobe"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    model = load_model(args)
    threshold, similarity = _rule(model, args.threshold, args.similarity)
    fingerprint = weights_fingerprint(model.tower("a"))
    from ..backends.choice import resolve

    backend = resolve(model.tower("a"), args.backend)  # auto: decided once here, the same for every actor
    spec = ModelSpec(args.model, "model", "a", args.allow_pickle, backend, args.batch_size, None)
    reading = Reading(args.column, bad_rows(args).policy)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    timings = {}
    # without --embeddings, a work folder beside the output: a rerun after a crash resumes from it, and it is
    # removed once the pairs are written
    scratch = not args.embeddings
    folder = output.with_name(f".{output.name}.embeddings") if scratch else Path(args.embeddings)
    with engine:
        started = time.perf_counter()
        plan = engine.plan(args.input)
        report = engine.encode_to_folder(
            args.input, folder, spec, reading, fingerprint, f"tower a, weights {fingerprint}", bad_rows(args),
            plan, scratch=scratch,
        )  # fmt: skip
        timings["encode_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        pairs, kind = engine.search_pairs(
            folder, threshold, similarity, args.top_k, args.index, args.nlist, args.nprobe
        )
        timings["search_seconds"] = time.perf_counter() - started
        groups = cluster_duplicates(report["count"], pairs)
        found = engine.texts_of(folder, plan, reading, [r for i, j, _ in pairs for r in (i, j)])
    if scratch:
        shutil.rmtree(folder, ignore_errors=True)
    texts = {row: text for row, (text, _) in found.items()}
    lines = {row: line for row, (_, line) in found.items()}
    return DedupResult(pairs, groups, threshold, similarity, kind, timings), texts, lines, report["count"]


def pair_rows(pairs, texts, lines) -> list[dict]:
    """The rows of the pairs file: i, j, score, both texts (and their input lines when given)."""
    return [
        {"i": i, "j": j, "score": round(score, 6), "text_i": texts[i], "text_j": texts[j]}
        | ({"line_i": lines[i], "line_j": lines[j]} if lines is not None else {})
        for i, j, score in pairs
    ]


def group_rows(groups, texts, lines) -> list[dict]:
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
