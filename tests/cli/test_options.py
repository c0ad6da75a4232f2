"""What the commands share: reading rows, checking and writing row files, JSON lines output."""

from __future__ import annotations

import argparse
import csv
import json
import re

import pytest

from sbert_siamese.cli.options import (
    HelpFormatter,
    bad_rows,
    json_lines_output,
    read_pairs,
    read_texts,
    rows_output,
    shows_default,
    write_json_line,
    write_rows,
)
from sbert_siamese.errors import ConfigError

ROWS = [
    {"anchor": "a, b", "positive": "c\td", "negative": "é"},  # a delimiter of each table format, non-ASCII
    {"anchor": "x", "positive": "y", "negative": "z"},
]


@pytest.mark.parametrize(
    ("default", "shown"),
    [(None, False), (False, False), (argparse.SUPPRESS, False), ("", False), (0, True), (0.0, True),
     ("text", True), (64, True)],
)  # fmt: skip
def test_shows_default(default, shown):
    assert shows_default(argparse.Action(["--x"], "x", default=default)) is shown


def test_help_formatter_adds_defaults_and_keeps_the_epilog():
    parser = argparse.ArgumentParser(prog="p", formatter_class=HelpFormatter, epilog="one\n  two")
    parser.add_argument("--size", type=int, default=3)
    parser.add_argument("--name", help="its name", default="n")
    parser.add_argument("--said", help="default: %(default)s here", default="s")
    parser.add_argument("--off", action="store_true", help="a flag")
    parser.add_argument("--unset", help="nothing")
    out = parser.format_help()
    assert re.search(r"--size SIZE +\(default: 3\)\n", out) and "its name (default: n)\n" in out
    assert "default: s here\n" in out and out.count("(default:") == 2  # not for --off, --unset, --said
    assert out.endswith("one\n  two\n")


def test_rows_output_checks_the_extension():
    assert rows_output("x/out.tsv").name == "out.tsv"
    with pytest.raises(ConfigError, match=r"--output x/out.txt: expected a .jsonl, .csv or .tsv file name"):
        rows_output("x/out.txt")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_write_rows_by_extension(tmp_path, suffix):
    path = tmp_path / "sub" / f"rows{suffix}"
    write_rows(path, ROWS)
    if suffix == ".jsonl":
        read = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        with open(path, encoding="utf-8", newline="") as fh:
            read = list(csv.DictReader(fh, delimiter="," if suffix == ".csv" else "\t"))
    assert read == ROWS
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_rows_of_nothing_is_a_header_only_table(tmp_path):
    write_rows(tmp_path / "none.csv", [])
    assert (tmp_path / "none.csv").read_bytes() == b"i\r\n"  # the csv module ends rows with CRLF


def test_json_lines_output_to_a_file_or_stdout(tmp_path, capsys):
    with json_lines_output(str(tmp_path / "o.jsonl")) as out:
        write_json_line(out, {"t": "é"})
    assert (tmp_path / "o.jsonl").read_text(encoding="utf-8") == '{"t": "é"}\n'
    with json_lines_output(None) as out:
        write_json_line(out, {"n": 1})
    assert capsys.readouterr().out == '{"n": 1}\n'


def test_read_pairs_and_texts_share_the_commands_bad_rows(tmp_path):
    (tmp_path / "p.tsv").write_text("q1\tq2\tlabel\na\tb\t1\nc\td\tmaybe\ne\tf\t0\n")
    (tmp_path / "t.txt").write_text("one\n\nthree\n")
    args = argparse.Namespace(on_bad_rows="skip", text_a_column="q1", text_b_column="q2", column="text")
    assert read_pairs(args, str(tmp_path / "p.tsv"), "label") == (["a", "e"], ["b", "f"], [1, 0])
    assert read_pairs(args, str(tmp_path / "p.tsv")) == (["a", "c", "e"], ["b", "d", "f"], None)
    assert read_texts(args, str(tmp_path / "t.txt")) == (["one", "three"], [1, 3])
    assert bad_rows(args) is args._bad_rows and bad_rows(args).total == 2
