"""What several commands share: the help formatter, the options of every command that reads data or loads a
model, reading pairs and texts, and writing rows.

Nothing here prints; the commands do, and ``cli.main`` reports errors and skipped rows.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError

ROWS_SUFFIXES = (".jsonl", ".csv", ".tsv")


# ---------------------------------------------------------------------------------------------- help
def shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` should show the option's default: not for None, False (a flag that is off),
    suppressed or empty values, which say nothing a reader could use, nor for required positionals."""
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS:
        return False
    if isinstance(default, str | list | tuple) and not default:
        return False
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written (train's recipe keys, predict's and dedup's notes), and ``(default: X)`` after
    every option that has a real default (see ``shows_default``), with or without a help text of its own."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action) and "%(default)" not in text:
            text = f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text

    def _format_action(self, action: argparse.Action) -> str:
        # argparse prints no help column for an option without help text, so its default would not show
        if not action.help and shows_default(action):
            action = copy.copy(action)
            action.help = self._get_help_string(action)
        return super()._format_action(action)


# ---------------------------------------------------------------------------------------------- options
def add_model(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """The required ``--model`` (its ``--allow-pickle`` comes from ``add_common`` or ``add_allow_pickle``)."""
    p.add_argument("--model", required=True, help=help)


def add_allow_pickle(p: argparse.ArgumentParser) -> None:
    """``--allow-pickle`` for every command that loads a model."""
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load pickle weights (.bin/.pt) of a model without safetensors; only for models you "
        "trust: a pickle file can carry code (it is read with torch.load(weights_only=True))",
    )


def add_on_bad_rows(p: argparse.ArgumentParser) -> None:
    """``--on-bad-rows`` for every command that reads a data file (train has its own: the recipe's value
    stands unless the option is given)."""
    p.add_argument(
        "--on-bad-rows",
        choices=("error", "skip"),
        default="error",
        help="a malformed input row: error (stop, naming file and line) or skip (counted, reported)",
    )


def add_pair_columns(p: argparse.ArgumentParser) -> None:
    """``--text-a-column`` and ``--text-b-column`` of a pair file."""
    p.add_argument("--text-a-column", default="sentence1", help="column/key of the first text of a pair")
    p.add_argument("--text-b-column", default="sentence2", help="column/key of the second text of a pair")


def add_batch_size(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--batch-size", type=int, default=default, help="texts per forward pass")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_common(p: argparse.ArgumentParser, batch_size: int, quiet: bool = True) -> argparse.ArgumentParser:
    """The options that close the list of every command that reads a data file and loads a model:
    ``--batch-size``, ``-q/--quiet`` (where there is a progress bar), ``--on-bad-rows``, ``--allow-pickle``;
    returns ``p``."""
    add_batch_size(p, batch_size)
    if quiet:
        add_quiet(p)
    add_on_bad_rows(p)
    add_allow_pickle(p)
    return p


def add_backend(p: argparse.ArgumentParser) -> None:
    """``--backend`` of the commands that encode texts (encode, dedup, search)."""
    from ..backends import CHOICES

    p.add_argument(
        "--backend",
        default="torch",
        choices=CHOICES,
        help="torch; onnx / openvino (fp32, same embeddings within 1e-5); openvino-bf16 (near-exact, CPUs "
        "with bf16); onnx-int8 / openvino-int8 (int8, the fastest on CPU, STS-B Spearman within 0.005); auto "
        "(the fastest within the budget that export measured for this model). Uses the model's onnx/ and "
        "openvino/ exports (see export), or exports once for this run",
    )


def add_engine(p: argparse.ArgumentParser, piece: str = "--shard-size") -> None:
    """``--engine`` and the Ray options of the corpus jobs (encode, dedup, archive add)."""
    from ..engines import ENGINES

    g = p.add_argument_group(
        "engine",
        "where the job runs: here, or on a Ray cluster (pip install 'sbert-siamese[ray]'; inputs, model and "
        f"outputs on a filesystem every node sees; {piece} rows per piece of work)",
    )
    g.add_argument(
        "--engine", default="local", choices=ENGINES, help="local: this process; ray: a Ray cluster"
    )
    g.add_argument(
        "--ray-address",
        help="the cluster to join: auto (the one `ray start` joined this machine to) or ray://HOST:10001; "
        "default: start a Ray on this machine",
    )
    g.add_argument(
        "--actors", type=int, help="encoders in the actor pool; default: as many as the cluster fits"
    )
    g.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs each encoder actor reserves")
    g.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs each encoder actor reserves")


def ray_engine(args: argparse.Namespace, piece_rows: int):
    """The ``RayEngine`` of ``--engine ray`` and its options (a context manager), or None for local."""
    if getattr(args, "engine", "local") != "ray":
        defaults = {"ray_address": None, "actors": None, "cpus_per_actor": 1.0, "gpus_per_actor": 0.0}
        for option, default in defaults.items():
            if getattr(args, option, default) != default:
                raise ConfigError(f"--{option.replace('_', '-')} applies to --engine ray")
        return None
    from ..engines.ray import RayEngine, import_ray

    import_ray()  # Ray Data sets up its loggers on import: quiet them after
    # Ray's own INFO lines (execution plans, progress notes) would bury the command's output
    for name in [n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]:
        logging.getLogger(name).setLevel(logging.ERROR)
    return RayEngine(
        address=args.ray_address, actors=args.actors, cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor, piece_rows=piece_rows,
        show_progress=not getattr(args, "quiet", True),
    )  # fmt: skip


def add_search_options(
    p: argparse.ArgumentParser, top_k_help: str | None, embeddings_help: str, extra_kinds: tuple = ()
) -> None:
    """``--top-k``, ``--index`` and ``--embeddings`` of the commands that search a corpus (dedup, search)."""
    from ..search import KINDS

    p.add_argument("--top-k", type=int, default=10, help=top_k_help)
    p.add_argument("--index", default="auto", choices=KINDS + extra_kinds, help="nearest-neighbour index")
    p.add_argument("--embeddings", help=embeddings_help)


# ---------------------------------------------------------------------------------------------- running
def is_main_process() -> bool:
    """Rank 0 of a torchrun / accelerate launch (or a plain run): the process that prints results."""
    return os.environ.get("RANK", "0") == "0"


def bad_rows(args: argparse.Namespace):
    """The command's collector of malformed rows (``--on-bad-rows``); ``cli.main`` reports what it skipped."""
    from ..data.readers import BadRows

    if getattr(args, "_bad_rows", None) is None:
        args._bad_rows = BadRows(getattr(args, "on_bad_rows", None) or "error")
    return args._bad_rows


def load_model(args: argparse.Namespace):
    """The ``SiameseModel`` of ``--model`` (``--allow-pickle`` honoured)."""
    from ..models.siamese import SiameseModel

    return SiameseModel.load(args.model, allow_pickle=args.allow_pickle)


def read_pairs(args: argparse.Namespace, path: str, label: str | None = None):
    """(texts_a, texts_b, labels or None) from a .csv/.tsv/.jsonl/.parquet pair file, in the columns of
    ``--text-a-column`` / ``--text-b-column`` (and 0/1 labels from ``label`` when given)."""
    from ..data.examples import read_examples

    examples, _ = read_examples(
        path, None, [args.text_a_column, args.text_b_column], "binary" if label else "none", label,
        bad_rows=bad_rows(args),
    )  # fmt: skip
    labels = [e.target for e in examples] if label else None
    return [e.texts[0] for e in examples], [e.texts[1] for e in examples], labels


def read_texts(args: argparse.Namespace, path: str) -> tuple[list[str], list]:
    """The texts of ``path`` (one file, a directory or a glob; its ``--column`` for a table) and the input
    line of each (``path:line`` with several files; rows can be skipped under ``--on-bad-rows skip``, so
    text i need not be line i + 1)."""
    from ..engines.local import read_inputs

    return read_inputs(path, args.column, bad_rows(args))


def rows_output(path: str) -> Path:
    """``--output`` of a command that writes rows, checked before anything is loaded."""
    output = Path(path)
    if output.suffix not in ROWS_SUFFIXES:
        raise ConfigError(f"--output {output}: expected a .jsonl, .csv or .tsv file name")
    return output


def write_rows(path: Path, rows: list[dict]) -> None:
    """JSON lines, or CSV / TSV by the file's extension; written to a temporary name, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        if path.suffix in (".csv", ".tsv"):
            delimiter = "," if path.suffix == ".csv" else "\t"
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["i"], delimiter=delimiter)
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


@contextmanager
def json_lines_output(path: str | None) -> Iterator:
    """The ``--output`` file to write JSON lines to, or standard output without one (left open)."""
    if not path:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as fh:
        yield fh


def write_json_line(out, row: dict) -> None:
    out.write(json.dumps(row, ensure_ascii=False) + "\n")
