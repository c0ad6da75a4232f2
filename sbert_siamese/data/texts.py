"""Readers of plain texts (one per line or row), for encoding, search and de-duplication: .txt, .csv, .tsv,
.jsonl and .parquet, with the same file:line errors and bad-row policy as the pair readers."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DataError
from .rows import (
    EXTENSIONS,
    BadRows,
    _decode,
    _lines,
    _no_rows,
    _policy,
    _show,
    _text,
    parquet_table,
    table_rows,
)


def _string(value, column: str, path: str, line: int | None) -> str:
    if not isinstance(value, str):
        raise DataError(
            f"column {column!r} must be a string, found {_show(value)}", path, line, "not_a_string"
        )
    return _text(value, f"column {column!r}", path, line)


def read_texts(path: str | Path, column: str = "text", bad_rows: BadRows | None = None) -> list[str]:
    """Texts from .txt (one per line), .csv/.tsv (a header naming ``column``), .jsonl (objects with key
    ``column``) or .parquet (a string column ``column``). Errors name the file and line (parquet: row).

    Text i of the output is the i-th line (row) of the input: a blank line is an error, not skipped. With
    ``bad_rows`` set to skip, bad lines are left out instead; ``read_texts_with_lines`` then says which
    line each text came from."""
    return read_texts_with_lines(path, column, bad_rows)[0]


def read_texts_with_lines(
    path: str | Path, column: str = "text", bad_rows: BadRows | None = None
) -> tuple[list[str], list[int]]:
    """``read_texts`` and, for each text, its line (.txt, .jsonl), the line its record ends on (.csv,
    .tsv), or its row counted from 1 (.parquet)."""
    path = str(path)
    bad_rows = _policy(bad_rows)
    before = bad_rows.total
    suffix = Path(path).suffix.lower()
    texts, lines = [], []
    if suffix == ".txt":
        text, dropped = _decode(path, "texts", bad_rows)
        numbered = list(_lines(text))
        if numbered and not numbered[-1][1]:
            numbered.pop()  # the newline that ends the last line
        for line_no, line in numbered:
            if line_no in dropped:
                continue  # counted as invalid_utf8
            try:
                texts.append(_text(line, "text", path, line_no))
                lines.append(line_no)
            except DataError as err:
                bad_rows.handle(err)
    elif suffix in (".csv", ".tsv", ".jsonl"):
        rows = table_rows(path, EXTENSIONS[suffix], required=[column], expected="texts", bad_rows=bad_rows)
        for line_no, row in rows:
            try:
                if column not in row:
                    raise DataError(
                        f"no column {column!r}; found columns {sorted(map(str, row))}",
                        path,
                        line_no,
                        "missing_column",
                    )
                texts.append(_string(row[column], column, path, line_no))
                lines.append(line_no)
            except DataError as err:
                bad_rows.handle(err)
    elif suffix == ".parquet":
        table = parquet_table(path, "texts")
        if column not in table.column_names:
            raise DataError(
                f"no column {column!r}; found columns {sorted(table.column_names)}",
                path,
                None,
                "columns_not_found",
            )
        for row, value in enumerate(table.column(column).to_pylist(), start=1):
            try:
                texts.append(_string(value, column, path, row))
                lines.append(row)
            except DataError as err:
                bad_rows.handle(err)
    else:
        raise ConfigError(
            f"{path}: unsupported input type {suffix!r}; use .txt, .csv, .tsv, .jsonl or .parquet"
        )
    if not texts:
        raise _no_rows("texts", path, bad_rows, before)
    return texts, lines
