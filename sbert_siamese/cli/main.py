"""The ``sbert-siamese`` command line: one module per command (``add_parser`` and ``run``), assembled here.

The CLI is the only place that configures logging and prints; errors of our own types end the command
with a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys

from ..errors import SbertSiameseError
from ..io.safe_io import describe_os_error
from . import archive, calibrate, dedup, demo, encode, evaluate, export, mine, predict, search, serve, train
from .options import HelpFormatter, is_main_process

log = logging.getLogger("sbert_siamese.cli")

# The commands in the order ``--help`` lists them; a new command is a module here with
# ``add_parser(subparsers) -> parser`` and ``run(args) -> exit status``.
COMMANDS = (train, evaluate, encode, export, calibrate, predict, dedup, search, mine, archive, serve, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbert-siamese", description="Siamese sentence encoders.", formatter_class=HelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # every command's help shows its defaults (subparsers do not inherit the parent's formatter)
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HelpFormatter),
    )
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def _quiet_libraries() -> None:
    """Keep third-party chatter (weight-loading bars, hub warnings) out of our output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover - transformers is a hard dependency
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(  # other ranks of a distributed run only speak up about problems
        level=logging.DEBUG if args.verbose else (logging.INFO if is_main_process() else logging.WARNING),
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
    skipped = getattr(args, "_bad_rows", None)  # set by options.bad_rows when the command read data
    if skipped is not None and skipped.total:
        log.warning("--on-bad-rows skip: %s", skipped.summary(3))
    return status


if __name__ == "__main__":
    sys.exit(main())
