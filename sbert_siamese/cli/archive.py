"""``sbert-siamese archive create|add|remove|query|compact|info``: a persistent question archive."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys

from ..errors import ConfigError
from .options import (
    HelpFormatter,
    add_allow_pickle,
    add_batch_size,
    add_engine,
    add_on_bad_rows,
    add_quiet,
    bad_rows,
    ray_engine,
)

EPILOG = """An archive is a folder: archive.json (model path + weights fingerprint), questions.sqlite (the
source of truth: texts, ids, metadata, embeddings) and index/ (rebuilt, or caught up when it lags the
database).
Serve it with `sbert-siamese serve --archive DIR`.

  sbert-siamese archive create qa --model runs/qqp
  sbert-siamese archive add qa --input questions.csv --column question --id-column qid
  sbert-siamese archive query qa --text "How do I learn Python?" --top-k 5
"""


def _dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="the archive folder")


def _open_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="load the model from here instead of the path in archive.json (same weights)"
    )
    add_allow_pickle(p)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..backends import CHOICES
    from ..search import KINDS

    p = subparsers.add_parser(
        "archive",
        help="a persistent archive of questions: create, add, query, ...",
        description=EPILOG,
        formatter_class=HelpFormatter,
    )
    sub = p.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HelpFormatter),
    )

    c = sub.add_parser("create", help="a new, empty archive for a model")
    _dir(c)
    c.add_argument("--model", required=True, help="model directory or name")
    c.add_argument(
        "--index",
        default="auto",
        choices=KINDS,
        help="vector index kind; auto: exact below 20k questions, HNSW (faiss) above",
    )
    c.add_argument(
        "--backend", default="torch", choices=CHOICES, help="encode backend used by add / query / serve"
    )
    c.add_argument(
        "--threshold",
        type=float,
        help="duplicate when cosine similarity >= this; default: the model's calibrated threshold "
        "(`sbert-siamese calibrate`), without which decisions are null",
    )
    add_allow_pickle(c)

    a = sub.add_parser("add", help="add the questions of a file (resumable; ids stable across resumes)")
    _dir(a)
    a.add_argument(
        "--input",
        required=True,
        help="questions: .txt (one per line), .csv/.tsv/.jsonl/.parquet; or a directory or glob of them, "
        "added file by file in sorted order",
    )
    a.add_argument("--column", default="text", help="the text column of a table input")
    a.add_argument(
        "--id-column",
        help="integer ids from this column; default: line (row) number + the largest "
        "id in the archive when the file was first added",
    )
    a.add_argument("--chunk-size", type=int, default=2048, help="rows encoded and committed together")
    _open_options(a)
    add_backend_override(a, CHOICES)
    add_batch_size(a, 16)
    add_quiet(a)
    add_on_bad_rows(a)
    add_engine(a, piece="--chunk-size")

    q = sub.add_parser("query", help="nearest archived questions for texts (JSON lines)")
    _dir(q)
    q.add_argument("--text", action="append", help="a question (repeatable)")
    q.add_argument("--input", help="a file of questions (.txt/.csv/.tsv/.jsonl/.parquet)")
    q.add_argument("--column", default="text", help="the text column of a table --input")
    q.add_argument("--top-k", type=int, default=5, help="matches per question")
    _open_options(q)
    add_backend_override(q, CHOICES)

    r = sub.add_parser("remove", help="remove questions by id")
    _dir(r)
    r.add_argument("--ids", required=True, nargs="+", type=int, help="ids to remove")
    _open_options(r)

    k = sub.add_parser("compact", help="rebuild the index without removed questions; reclaim their space")
    _dir(k)
    _open_options(k)

    i = sub.add_parser("info", help="size, model, index and threshold of an archive (JSON)")
    _dir(i)
    _open_options(i)
    return p


def add_backend_override(p: argparse.ArgumentParser, backends) -> None:
    p.add_argument(
        "--backend", choices=backends, help="encode backend; default: the archive's (archive create)"
    )


def _open(args: argparse.Namespace):
    from ..archive import Archive
    from ..models.siamese import SiameseModel

    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle) if args.model else None
    return Archive.open(
        args.dir,
        model=model,
        backend=getattr(args, "backend", None),
        batch_size=getattr(args, "batch_size", 16),
        allow_pickle=args.allow_pickle,
    )


def _print(row: dict) -> None:
    sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args)


def _create(args) -> int:
    from ..archive import Archive
    from ..models.siamese import SiameseModel

    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle) if args.allow_pickle else args.model
    with Archive.create(
        args.dir, model, index=args.index, backend=args.backend, threshold=args.threshold
    ) as a:
        _print(a.info())
    return 0


def _add(args) -> int:
    from ..archive.ingest import add_file

    if args.chunk_size < 1:
        raise ConfigError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    from ..data.pieces import input_files

    engine = ray_engine(args, args.chunk_size)
    files = input_files(args.input)
    reports = []
    # the reports are printed once the engine is done: a Ray engine sends Ray's own lines to stderr till then
    with _open(args) as archive, engine or contextlib.nullcontext():
        for path in files:  # each file is its own resumable ingest
            report = add_file(
                archive,
                path,
                args.column,
                args.id_column,
                args.chunk_size,
                bad_rows(args),
                show_progress_bar=not args.quiet,
                engine=engine,
            )
            reports.append(report.to_dict() | {"questions": len(archive)})
            if engine is None:
                _print(reports.pop())
    for report in reports:
        _print(report)
    return 0


def _query(args) -> int:
    from ..data.texts import read_texts

    texts = list(args.text or [])
    if args.input:
        texts += read_texts(args.input, args.column)
    if not texts:
        raise ConfigError("give --text TEXT (repeatable) or --input FILE")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    with _open(args) as archive:
        for start in range(0, len(texts), 256):
            chunk = texts[start : start + 256]
            for text, matches in zip(chunk, archive.query(chunk, args.top_k), strict=True):
                _print({"text": text, "matches": [m.to_dict() for m in matches]})
    return 0


def _remove(args) -> int:
    with _open(args) as archive:
        removed = archive.remove(args.ids)
        missing = sorted(set(args.ids) - set(removed))
        _print({"removed": removed, "not_found": missing, "questions": len(archive)})
    return 0 if not missing else 1


def _compact(args) -> int:
    with _open(args) as archive:
        _print(archive.compact())
    return 0


def _info(args) -> int:
    with _open(args) as archive:
        _print(archive.info())
    return 0


ACTIONS = {
    "create": _create,
    "add": _add,
    "query": _query,
    "remove": _remove,
    "compact": _compact,
    "info": _info,
}
