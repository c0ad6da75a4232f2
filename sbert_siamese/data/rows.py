"""From a data file to ``(line, record)`` pairs, and the bad-row policy every reader shares.

- ``BadRows``: what to do with a malformed row (``error``: raise; ``skip``: leave it out and count it by
  ``DataError.reason``, one of ``ROW_REASONS``).
- ``table_rows``: the records of a csv / tsv / tsv_quoted / jsonl file with their line numbers; only ``\\n``
  ends a line. ``parquet_table`` / ``parquet_rows`` read parquet with pyarrow.
- ``_decode``: a file as UTF-8 text; under ``skip`` the lines with bytes that are not UTF-8 are dropped.
- ``_text``: a cell as a text, or the ``DataError`` saying why it is not one.

The readers of pairs, examples and texts (``readers.py``, ``examples.py``, ``texts.py``) build on these.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import ConfigError, DataError

BAD_ROW_POLICIES = ("error", "skip")

# ``DataError.reason`` of the problems that concern one row; only these can be skipped. Any other error
# (reason None, or a file-level code: ``file_not_found``, ``not_a_file``, ``unreadable_file``,
# ``empty_file``, ``bad_header``, ``columns_not_found``, ``no_rows``, ``misaligned_files``,
# ``unknown_split``) is raised under either policy.
ROW_REASONS = (
    "wrong_field_count",  # a CSV/TSV/STS-B row with the wrong number of fields
    "malformed_row",  # a row the csv module cannot parse (a field over its size limit)
    "missing_column",  # a JSON object (or parquet row) without a needed key
    "empty_text",  # a text that is empty, blank or null
    "not_a_string",  # a text that is a list, an object, ... (read_texts: anything but a string)
    "bad_score",  # a score that is not a number
    "score_not_finite",  # NaN or infinite
    "score_out_of_range",  # outside the score range
    "bad_label",  # a label outside the known set, or an unusable group id
    "invalid_json",  # a JSONL line that is not JSON
    "not_an_object",  # a JSONL line that is JSON but not an object
    "invalid_utf8",  # a line with bytes that are not UTF-8 (or a JSON string with a lone surrogate)
    "unexpected_header",  # a header line in the STS-B format, which has none
    "bad_id",  # an id that is not a non-negative integer (archive add --id-column)
)


class BadRows:
    """What to do with a malformed row: ``error`` raises the reader's ``DataError``; ``skip`` leaves the row
    out and counts it by ``DataError.reason``.

    One collector is meant to be shared by all the reads of a run. ``counts`` (reason -> rows), ``total``
    and ``examples`` (the first ``max_examples`` messages, ``file:line: problem``) say what was skipped;
    ``to_stats()`` gives them as metrics. Errors that are not about one row (see ``ROW_REASONS``) are
    raised under either policy.

    Example:
        >>> bad_rows = BadRows("skip")
        >>> pairs = read_pairs("train.tsv", bad_rows=bad_rows)  # doctest: +SKIP
        >>> bad_rows.to_stats()  # doctest: +SKIP
        {'data/skipped_rows': 2, 'data/skipped_rows/bad_score': 1, 'data/skipped_rows/empty_text': 1}
    """

    def __init__(self, policy: str = "error", max_examples: int = 5):
        if policy not in BAD_ROW_POLICIES:
            raise ConfigError(f"on_bad_rows must be one of {', '.join(BAD_ROW_POLICIES)}; got {policy!r}")
        self.policy = policy
        self.max_examples = max_examples
        self.counts: dict[str, int] = {}
        self.examples: list[str] = []

    @property
    def skip(self) -> bool:
        return self.policy == "skip"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def handle(self, err: DataError) -> None:
        """Raise ``err`` under ``error`` (or when it is not about one row); otherwise count it."""
        if not self.skip or err.reason not in ROW_REASONS:
            raise err
        self.counts[err.reason] = self.counts.get(err.reason, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(err))

    def copy(self) -> BadRows:
        other = BadRows(self.policy, self.max_examples)
        other.counts, other.examples = dict(self.counts), list(self.examples)
        return other

    def since(self, earlier: BadRows) -> BadRows:
        """The rows skipped after ``earlier`` (a ``copy()`` of this collector) was taken."""
        other = BadRows(self.policy, self.max_examples)
        for reason, n in self.counts.items():
            if n > earlier.counts.get(reason, 0):
                other.counts[reason] = n - earlier.counts.get(reason, 0)
        other.examples = self.examples[len(earlier.examples) :]
        return other

    def to_stats(self, prefix: str = "data/skipped_rows") -> dict[str, float]:
        """``{prefix: total, prefix/<reason>: n, ...}``, reasons in alphabetical order."""
        stats: dict[str, float] = {prefix: self.total}
        stats.update({f"{prefix}/{reason}": n for reason, n in sorted(self.counts.items())})
        return stats

    def summary(self, n_examples: int = 3) -> str:
        """One line for a log: the count by reason and the first few skipped rows."""
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
        text = f"skipped {self.total} bad row(s) ({reasons})"
        if self.examples and n_examples > 0:
            text += "; first: " + "; ".join(self.examples[:n_examples])
        return text

    def __repr__(self) -> str:
        return f"BadRows({self.policy!r}, counts={self.counts})"


def _policy(bad_rows: BadRows | None) -> BadRows:
    return bad_rows if bad_rows is not None else BadRows()


def _no_rows(what: str, path: str, bad_rows: BadRows, before: int) -> DataError:
    """The error for a source with no usable row; says how many bad rows were skipped in it."""
    skipped = bad_rows.total - before
    note = f" ({skipped} bad row(s) skipped)" if skipped else ""
    return DataError(f"no {what} found{note}", path, reason="no_rows")


def _describe(exc: Exception) -> str:
    """``Type: first line of the message`` of a library's exception, for an error of ours."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


def _show(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a whole document does not belong in an error)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def _require_columns(row: dict, columns: Iterable[str], path: str, line: int | None) -> None:
    """A ``missing_column`` error for the first of ``columns`` that ``row`` (a JSON object, a parquet row)
    lacks."""
    for column in columns:
        if column not in row:
            raise DataError(
                f"missing column {column!r}; found columns {sorted(map(str, row))}",
                path,
                line,
                "missing_column",
            )


def _text(value, what: str, path: str, line: int | None) -> str:
    """``value`` as a text; errors for a missing, blank or non-text value (numbers are taken as text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):  # NaN: pandas' missing value
        raise DataError(f"{what} is empty or missing", path, line, reason="empty_text")
    if not isinstance(value, str | int | float):
        raise DataError(
            f"{what} must be text, found {type(value).__name__}", path, line, reason="not_a_string"
        )
    text = str(value)
    if not text.strip():
        raise DataError(f"{what} is empty or missing", path, line, reason="empty_text")
    if isinstance(value, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, from a JSON escape such as "\ud800"
            raise DataError(
                f"{what} holds {text[exc.start]!r}, a lone surrogate (expected valid Unicode text)",
                path,
                line,
                reason="invalid_utf8",
            ) from None
    return text


def _decode(
    path: str | Path, expected: str = "sentence pairs", bad_rows: BadRows | None = None
) -> tuple[str, dict[int, DataError]]:
    """Whole file as UTF-8 text, and the lines dropped for bytes that are not UTF-8 (line -> error).

    Under ``error`` the first bad byte raises (naming its line and value). Under ``skip`` each line with a
    bad byte is counted as ``invalid_utf8`` and decoded with U+FFFD for the bad bytes, so that quotes and
    separators still parse; the readers then leave out the rows on those lines."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", str(path), reason="file_not_found")
    if path.is_dir():
        raise DataError("expected a file, found a directory", str(path), reason="not_a_file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read the file ({exc.strerror or exc})", str(path), reason="unreadable_file"
        ) from None
    dropped: dict[int, DataError] = {}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        err = DataError(
            f"invalid UTF-8 byte {raw[exc.start]:#04x} (expected UTF-8 text)", str(path), line, "invalid_utf8"
        )
        if bad_rows is None or not bad_rows.skip:
            raise err from None
        lines = []
        for line_no, chunk in enumerate(raw.split(b"\n"), start=1):
            try:
                lines.append(chunk.decode("utf-8-sig" if line_no == 1 else "utf-8"))
            except UnicodeDecodeError as bad:
                err = DataError(
                    f"invalid UTF-8 byte {chunk[bad.start]:#04x} (expected UTF-8 text)",
                    str(path),
                    line_no,
                    "invalid_utf8",
                )
                bad_rows.handle(err)
                dropped[line_no] = err
                lines.append(chunk.decode("utf-8-sig" if line_no == 1 else "utf-8", errors="replace"))
        text = "\n".join(lines)
    if not text.strip():
        raise DataError(f"file is empty; expected {expected}", str(path), reason="empty_file")
    return text, dropped


def _read_text(path: str | Path, expected: str = "sentence pairs") -> str:
    """Whole file as UTF-8 text; errors name the file (and the line of a bad byte)."""
    return _decode(path, expected)[0]


def _lines(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) pairs. Only \\n ends a line (str.splitlines would also split on U+2028,
    form feeds and other characters that may sit inside a sentence or a JSON string)."""
    for line_no, line in enumerate(text.split("\n"), start=1):
        yield line_no, line.removesuffix("\r")


def _rows_from_table(
    path: str,
    delimiter: str,
    quoting: int,
    required: Sequence[str] = (),
    expected: str = "sentence pairs",
    bad_rows: BadRows | None = None,
) -> Iterator[tuple[int, dict]]:
    bad_rows = _policy(bad_rows)
    text, dropped = _decode(path, expected, bad_rows)
    # Lines end at \n only, as everywhere else here: the csv module would also end a line at a bare \r,
    # and then its line numbers (and the rows dropped for bad bytes) would drift from the file's.
    pieces = text.split("\n")
    physical = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    reader = csv.reader(physical, delimiter=delimiter, quoting=quoting)
    header = None
    end = 0  # the last line of the previous record
    bad_lines, next_bad = sorted(dropped), 0  # lines with invalid UTF-8, and the first not yet passed
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field larger than csv.field_size_limit()
            end = reader.line_num
            if header is None:
                raise DataError(f"cannot parse the header ({exc})", path, end, "bad_header") from None
            bad_rows.handle(DataError(f"cannot parse this row ({exc})", path, end, "malformed_row"))
            continue
        end = line_no = reader.line_num
        while next_bad < len(bad_lines) and bad_lines[next_bad] < start:
            next_bad += 1
        hit = next_bad < len(bad_lines) and bad_lines[next_bad] <= end  # the record holds such a line
        if header is None:
            if hit:  # the header cannot be skipped
                err = dropped[bad_lines[next_bad]]
                raise DataError(f"{err.problem} in the header", path, err.line, "bad_header")
            if not any(cell.strip() for cell in row):
                continue
            header = [h.strip() for h in row]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"missing column(s) {missing} in the header; found {header}",
                    path,
                    line_no,
                    "columns_not_found",
                )
            continue
        if hit or not any(cell.strip() for cell in row):
            continue  # counted as invalid_utf8 when decoding; blank lines are not rows
        if len(row) != len(header):
            spans = f" (the record spans lines {start}-{end}: an unbalanced quote?)" if end > start else ""
            problem = f"expected {len(header)} fields as in the header, found {len(row)}{spans}"
            bad_rows.handle(DataError(problem, path, line_no, "wrong_field_count"))
            continue
        yield line_no, dict(zip(header, row, strict=True))
    if header is None:
        raise DataError("file is empty; expected a header line", path, reason="empty_file")


def json_object(line: str, path: str, line_no: int, bad_rows: BadRows) -> dict | None:
    """The JSON object on one line of a JSONL file, or None once ``bad_rows`` has taken the problem (invalid
    JSON, or JSON that is not an object). Every JSONL reader goes through here, so all say it alike."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as exc:  # also: nesting too deep, an integer too long
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        bad_rows.handle(
            DataError(
                f"invalid JSON ({msg}); expected one JSON object per line", path, line_no, "invalid_json"
            )
        )
        return None
    if not isinstance(row, dict):
        bad_rows.handle(
            DataError(f"expected a JSON object, found {type(row).__name__}", path, line_no, "not_an_object")
        )
        return None
    return row


def _rows_from_jsonl(
    path: str, expected: str = "sentence pairs", bad_rows: BadRows | None = None
) -> Iterator[tuple[int, dict]]:
    bad_rows = _policy(bad_rows)
    text, dropped = _decode(path, expected, bad_rows)
    for line_no, line in _lines(text):
        if line_no in dropped or not line.strip():
            continue  # counted as invalid_utf8 when decoding; blank lines are not rows
        row = json_object(line, path, line_no, bad_rows)
        if row is None:
            continue
        yield line_no, row


# The data format a file's extension implies when none is given.
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}

# How each table format is parsed: (delimiter, quoting); jsonl is one object per line.
TABLE_FORMATS = {
    "csv": (",", csv.QUOTE_MINIMAL),
    "tsv": ("\t", csv.QUOTE_NONE),
    "tsv_quoted": ("\t", csv.QUOTE_MINIMAL),  # tab-separated with CSV quoting, like Quora's QQP release
}


def table_rows(
    path: str,
    fmt: str | None,
    required: Sequence[str] = (),
    expected: str = "sentence pairs",
    bad_rows: BadRows | None = None,
) -> Iterable[tuple[int, dict]] | None:
    """(line, row) pairs of a csv / tsv / tsv_quoted / jsonl file; None for any other format.

    Rows with the wrong number of fields, and JSONL lines that are not JSON objects, go to ``bad_rows``."""
    if fmt in TABLE_FORMATS:
        delimiter, quoting = TABLE_FORMATS[fmt]
        return _rows_from_table(path, delimiter, quoting, required, expected, bad_rows)
    if fmt == "jsonl":
        return _rows_from_jsonl(path, expected, bad_rows)
    return None


def parquet_table(path: str, expected: str = "sentence pairs"):
    """A parquet file as a ``pyarrow.Table``; errors name the file."""
    import pyarrow.parquet as pq

    if not Path(path).exists():
        raise DataError(f"file not found (expected {expected})", path, reason="file_not_found")
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(
            f"cannot read parquet ({_describe(exc)}); expected {expected}",
            path,
            reason="unreadable_file",
        ) from None


def parquet_rows(table) -> Iterator[dict]:
    """The rows of a ``pyarrow.Table`` as dicts, a record batch at a time."""
    for batch in table.to_batches():
        yield from batch.to_pylist()
