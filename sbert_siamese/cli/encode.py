"""``sbert-siamese encode``: embed texts into a .npy file, or into a sharded directory that a rerun after an
interruption completes."""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

from ..errors import ConfigError
from ..io.safe_io import atomic_write_bytes, atomic_write_text
from .options import (
    add_backend,
    add_common,
    add_engine,
    add_model,
    bad_rows,
    ray_engine,
    read_texts,
)

log = logging.getLogger("sbert_siamese.cli")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "encode",
        help="embed texts from .txt/.csv/.tsv/.jsonl/.parquet into a .npy file or a sharded directory",
    )
    add_model(p)
    p.add_argument(
        "--input",
        required=True,
        help=".txt (one text per line), .csv/.tsv/.jsonl/.parquet (see --column); or a directory or glob of "
        "them, read in sorted order",
    )
    p.add_argument(
        "--output",
        required=True,
        help="output .npy, shape (N, D), float32, input order; or a directory: shards + manifest written "
        "as they are done, and a rerun after an interruption encodes only the missing shards",
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=10_000,
        help="texts per shard (directory output); with --engine ray, rows per piece of work (at most)",
    )
    p.add_argument("--column", default="text", help="column/key holding the text for csv/tsv/jsonl")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    add_backend(p)
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="torch backend: autocast precision (bf16/fp16 are for GPUs; fp16 needs CUDA)",
    )
    add_engine(p)
    return add_common(p, batch_size=32)


def run(args: argparse.Namespace) -> int:
    from ..models.encoder import SiameseEncoder

    output = Path(args.output)
    # both checks come before anything is read or loaded: a wrong option fails at once
    if output.suffix not in (".npy", "") and not output.is_dir():
        raise ConfigError(f"--output {output}: expected a .npy file name or a directory (sharded, resumable)")
    sharded = output.suffix != ".npy"
    engine = ray_engine(args, args.shard_size)
    if sharded and args.precision != "fp32" and engine is None:
        raise ConfigError("--precision applies to .npy output; a sharded directory is encoded in fp32")
    if engine is not None:
        return _run_on_ray(args, engine, output, sharded)
    texts, lines = read_texts(args, args.input)
    encoder = SiameseEncoder.from_pretrained(args.model, allow_pickle=args.allow_pickle)
    if sharded:
        report = _encode_to_directory(args, encoder, texts, output)
    else:
        report = _encode_to_npy(args, encoder, texts, output)
    _write_lines(args, output, lines)
    print(json.dumps(report))
    return 0


def _run_on_ray(args: argparse.Namespace, engine, output: Path, sharded: bool) -> int:
    """``--engine ray``: the actors encode the pieces of the input into shards (see ``engines.ray``)."""
    from ..engines.ray import ModelSpec, Reading
    from ..io.streaming import weights_fingerprint
    from ..models.encoder import SiameseEncoder

    if args.shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1, got {args.shard_size}")
    # the driver loads the model once, for the fingerprint every actor's copy must match
    from ..backends.choice import resolve

    encoder = SiameseEncoder.from_pretrained(args.model, allow_pickle=args.allow_pickle)
    fingerprint = weights_fingerprint(encoder)
    backend = resolve(encoder, args.backend)  # auto: decided once here, the same for every actor
    model = ModelSpec(
        args.model, "encoder", "a", args.allow_pickle, backend, args.batch_size, args.normalize,
        args.precision,
    )  # fmt: skip
    reading = Reading(args.column, bad_rows(args).policy)
    identity = f"{args.model}, weights {fingerprint}"
    with engine:
        plan = engine.plan(args.input)
        job = engine.encode_to_folder if sharded else engine.encode_to_npy
        report = job(args.input, output, model, reading, fingerprint, identity, bad_rows(args), plan)
    lines = report.pop("lines", None)
    if lines is not None:
        _write_lines(args, output, lines)
    report["skipped_rows"] = bad_rows(args).total
    print(json.dumps({"output": str(output), "engine": "ray", **report}))
    return 0


def _encode_to_directory(args: argparse.Namespace, encoder, texts: list[str], output: Path) -> dict:
    """Shards on disk: a rerun continues an interrupted encode of the same model and texts."""
    from ..io.streaming import encode_to_disk, weights_fingerprint

    identity = f"{args.model}, weights {weights_fingerprint(encoder)}"
    report = encode_to_disk(
        encoder, texts, output, args.shard_size, args.batch_size, args.normalize, identity,
        show_progress_bar=not args.quiet, backend=args.backend,
    )  # fmt: skip
    return {"output": str(output), **report}


def _encode_to_npy(args: argparse.Namespace, encoder, texts: list[str], output: Path) -> dict:
    """One (N, D) array, written to a temporary name and renamed so a crash leaves no partial file."""
    import numpy as np

    embeddings = encoder.encode(
        texts, batch_size=args.batch_size, show_progress_bar=not args.quiet, normalize=args.normalize,
        backend=args.backend, precision=args.precision,
    )  # fmt: skip
    buffer = io.BytesIO()
    np.save(buffer, embeddings)
    atomic_write_bytes(output, buffer.getvalue(), "the embeddings")
    return {
        "output": str(output),
        "texts": len(texts),
        "dimension": int(embeddings.shape[1]),
        "truncated": len(encoder.last_truncated),
        "skipped_rows": bad_rows(args).total,
    }


def _write_lines(args: argparse.Namespace, output: Path, lines: list[int]) -> None:
    """Rows were skipped: write which input line each output row comes from."""
    if not bad_rows(args).total:
        return
    lines_file = output / "lines.txt" if output.suffix != ".npy" else output.with_suffix(".lines.txt")
    atomic_write_text(lines_file, "".join(f"{n}\n" for n in lines), "the line numbers")
    log.warning("rows were skipped: row i of the output is input line %s[i]", lines_file)
