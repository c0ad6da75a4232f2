"""Readers for scored sentence pairs and for plain texts, and the bad-row policy they share.

Every reader returns a list of ``PairExample`` with the score scaled to [0, 1], or raises ``DataError``
naming the file, the line and what was expected. Nothing here reads from the network unless a Hugging
Face dataset *name* is given.

Bad rows: each reader takes an optional ``bad_rows`` (a ``BadRows``). Without one, or with the policy
``error``, the first malformed row raises. With ``skip``, a malformed row is left out and counted by its
``DataError.reason`` (one of ``ROW_REASONS``); the rows kept keep their line numbers in ``source``.
Problems with a whole file (not found, a directory, empty, unreadable, a header without the needed
columns, no rows left) are raised under either policy.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, DataError

DATA_FORMATS = ("stsb", "csv", "tsv", "tsv_quoted", "jsonl", "parquet", "senteval", "hf")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
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


@dataclass(frozen=True)
class PairExample:
    """One scored pair. ``score`` is in [0, 1]; ``source`` says where it came from (``file:line``)."""

    text_a: str
    text_b: str
    score: float
    source: str = ""


@dataclass(frozen=True)
class Columns:
    """Which columns (CSV/TSV header names, JSON keys, dataset features) hold the pair and its score."""

    text_a: str = "sentence1"
    text_b: str = "sentence2"
    score: str = "score"


@dataclass(frozen=True)
class ScoreRange:
    """Gold scores are scaled from [low, high] to [0, 1]; values outside the range are errors."""

    low: float = 0.0
    high: float = 5.0

    def __post_init__(self):
        if not self.high > self.low:
            raise ConfigError(f"score range needs high > low, got [{self.low}, {self.high}]")

    def scale(self, raw, path: str, line: int | None) -> float:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"score {_show(raw)} is not a number", path, line, reason="bad_score") from None
        except OverflowError:  # an integer too large for a float
            raise DataError(
                f"score {_show(raw)} is outside [{self.low}, {self.high}]", path, line, "score_out_of_range"
            ) from None
        if not math.isfinite(value):
            raise DataError(f"score {_show(raw)} is not finite", path, line, reason="score_not_finite")
        if not self.low <= value <= self.high:
            raise DataError(
                f"score {value} is outside [{self.low}, {self.high}]", path, line, reason="score_out_of_range"
            )
        return (value - self.low) / (self.high - self.low)


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


STSB_FIELDS = "genre, file, year, id, score, sentence1, sentence2"
_HEADER_WORDS = {"genre", "year", "id", "score", "sentence1", "sentence2", "label", "text_a", "text_b"}


def _looks_like_header(fields: list[str]) -> bool:
    """A line whose score field is not a number and that holds column names (``score``, ``sentence1``...)."""
    if len(fields) > 4:
        try:
            float(fields[4])
            return False
        except ValueError:
            pass
    names = [f.strip().lower() for f in fields]
    return any(n in _HEADER_WORDS or ("score" in n and len(n) < 30) for n in names)


def read_stsb(
    path: str | Path, score_range: ScoreRange = ScoreRange(), bad_rows: BadRows | None = None
) -> list[PairExample]:
    """Read an original STS Benchmark file (``sts-train.csv`` etc.).

    Format: UTF-8, tab-separated, no header, no quoting (sentences contain unbalanced quotes):
    ``genre  file  year  id  score  sentence1  sentence2  [source1  source2]``. Extra fields are ignored.
    A first line that looks like a header is an error (``unexpected_header``; skipped under ``skip``).
    """
    path = str(path)
    bad_rows = _policy(bad_rows)
    before = bad_rows.total
    text, dropped = _decode(path, bad_rows=bad_rows)
    examples, first = [], True
    for line_no, line in _lines(text):
        if line_no in dropped or not line.strip():
            continue  # counted as invalid_utf8 when decoding; blank lines are not rows
        fields = line.split("\t")
        try:
            if first and _looks_like_header(fields):
                raise DataError(
                    f"line {line_no} looks like a header; the stsb format has none (expected "
                    f"tab-separated {STSB_FIELDS}; use data_format csv or tsv for a file with a header)",
                    path,
                    line_no,
                    "unexpected_header",
                )
            if len(fields) < 7:
                raise DataError(
                    f"expected at least 7 tab-separated fields ({STSB_FIELDS}), found {len(fields)}",
                    path,
                    line_no,
                    "wrong_field_count",
                )
            score = score_range.scale(fields[4], path, line_no)
            a = _text(fields[5], "sentence1", path, line_no)
            b = _text(fields[6], "sentence2", path, line_no)
        except DataError as err:
            bad_rows.handle(err)
            continue
        finally:
            first = False
        examples.append(PairExample(a, b, score, f"{path}:{line_no}"))
    if not examples:
        raise _no_rows("pairs", path, bad_rows, before)
    return examples


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


def _rows_from_jsonl(
    path: str, expected: str = "sentence pairs", bad_rows: BadRows | None = None
) -> Iterator[tuple[int, dict]]:
    bad_rows = _policy(bad_rows)
    text, dropped = _decode(path, expected, bad_rows)
    for line_no, line in _lines(text):
        if line_no in dropped or not line.strip():
            continue  # counted as invalid_utf8 when decoding; blank lines are not rows
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # also: nesting too deep, an integer too long
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
            bad_rows.handle(
                DataError(
                    f"invalid JSON ({msg}); expected one JSON object per line", path, line_no, "invalid_json"
                )
            )
            continue
        if not isinstance(row, dict):
            bad_rows.handle(
                DataError(
                    f"expected a JSON object, found {type(row).__name__}", path, line_no, "not_an_object"
                )
            )
            continue
        yield line_no, row


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


def _rows_to_examples(
    rows: Iterable[tuple[int | None, dict]],
    path: str,
    columns: Columns,
    score_range: ScoreRange,
    bad_rows: BadRows | None = None,
) -> list[PairExample]:
    bad_rows = _policy(bad_rows)
    before = bad_rows.total
    examples = []
    for line_no, row in rows:
        try:
            for column in (columns.text_a, columns.text_b, columns.score):
                if column not in row:
                    raise DataError(
                        f"missing column {column!r}; found columns {sorted(map(str, row))}",
                        path,
                        line_no,
                        "missing_column",
                    )
            a = _text(row[columns.text_a], f"column {columns.text_a!r}", path, line_no)
            b = _text(row[columns.text_b], f"column {columns.text_b!r}", path, line_no)
            score = score_range.scale(row[columns.score], path, line_no)
        except DataError as err:
            bad_rows.handle(err)
            continue
        where = f"{path}:{line_no}" if line_no is not None else path
        examples.append(PairExample(a, b, score, where))
    if not examples:
        raise _no_rows("pairs", path, bad_rows, before)
    return examples


def read_pairs(
    path: str | Path,
    data_format: str | None = None,
    columns: Columns = Columns(),
    score_range: ScoreRange = ScoreRange(),
    bad_rows: BadRows | None = None,
) -> list[PairExample]:
    """Read scored pairs from CSV (with a header, standard quoting), TSV (header, no quoting), tsv_quoted
    (header, tab-separated, CSV quoting: Quora's QQP files), JSONL
    (one object per line) or parquet; the format follows the extension unless given.

    Example:
        >>> read_pairs("data/demo/train.tsv")  # doctest: +SKIP
        [PairExample(text_a='...', text_b='...', score=0.84, source='data/demo/train.tsv:2'), ...]
    """
    path = str(path)
    fmt = data_format or EXTENSIONS.get(Path(path).suffix.lower())
    required = [columns.text_a, columns.text_b, columns.score]
    if fmt == "stsb":
        return read_stsb(path, score_range, bad_rows)
    if fmt == "parquet":
        table = parquet_table(path)
        return _records_to_pairs(
            table.column_names, parquet_rows(table), columns, score_range, path, bad_rows
        )
    rows = table_rows(path, fmt, required, bad_rows=bad_rows)
    if rows is None:
        raise ConfigError(
            f"{path}: cannot tell the format (extension {Path(path).suffix!r}); "
            f"pass one of {', '.join(DATA_FORMATS)}"
        )
    return _rows_to_examples(rows, path, columns, score_range, bad_rows)


def _records_to_pairs(
    column_names: Sequence[str],
    rows: Iterable[dict],
    columns: Columns,
    score_range: ScoreRange,
    name: str,
    bad_rows: BadRows | None = None,
) -> list[PairExample]:
    """Pairs from dataset / parquet rows; errors say ``name: row i: ...`` (rows count from 0)."""
    bad_rows = _policy(bad_rows)
    before = bad_rows.total
    missing = [c for c in (columns.text_a, columns.text_b, columns.score) if c not in column_names]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; found columns {list(column_names)}",
            name,
            reason="columns_not_found",
        )
    examples = []
    for i, row in enumerate(rows):
        where = f"row {i}"
        try:
            a = _text(row[columns.text_a], f"column {columns.text_a!r} ({where})", name, None)
            b = _text(row[columns.text_b], f"column {columns.text_b!r} ({where})", name, None)
            try:
                score = score_range.scale(row[columns.score], name, None)
            except DataError as exc:
                raise DataError(f"{where}: {exc.problem}", name, reason=exc.reason) from None
        except DataError as err:
            bad_rows.handle(err)
            continue
        examples.append(PairExample(a, b, score, f"{name}[{i}]"))
    if not examples:
        raise _no_rows("pairs", name, bad_rows, before)
    return examples


def dataset_to_pairs(
    dataset,
    columns: Columns = Columns(),
    score_range: ScoreRange = ScoreRange(),
    name: str = "dataset",
    bad_rows: BadRows | None = None,
) -> list[PairExample]:
    """Scored pairs from a Hugging Face ``datasets.Dataset`` (row numbers count from 0)."""
    return _records_to_pairs(dataset.column_names, dataset, columns, score_range, name, bad_rows)


def load_hf_pairs(
    source,
    split: str | None = None,
    columns: Columns = Columns(),
    score_range: ScoreRange = ScoreRange(),
    bad_rows: BadRows | None = None,
) -> list[PairExample]:
    """Pairs from a ``datasets.Dataset`` object, a ``save_to_disk`` folder, or a dataset name (online).

    ``source`` may be written ``"name:split"``.
    """
    import datasets

    if isinstance(source, datasets.Dataset):
        return dataset_to_pairs(source, columns, score_range, bad_rows=bad_rows)
    text = str(source)
    head, _, tail = text.rpartition(":")
    if not Path(text).is_dir() and head and Path(head).is_dir() and split is None:
        text, split = head, tail  # "folder:split" for a saved DatasetDict
    if Path(text).is_dir():
        try:
            loaded = datasets.load_from_disk(text)
        except Exception as exc:
            raise DataError(
                f"cannot load a saved dataset ({_describe(exc)}); expected a folder written by save_to_disk",
                text,
                reason="unreadable_file",
            ) from None
        if isinstance(loaded, datasets.DatasetDict):
            if split is None or split not in loaded:
                raise DataError(
                    f"expected a split name, one of {list(loaded)} (write 'folder:split')",
                    text,
                    None,
                    "unknown_split",
                )
            loaded = loaded[split]
        return dataset_to_pairs(loaded, columns, score_range, name=text, bad_rows=bad_rows)
    if ":" in text and split is None:
        text, split = text.rsplit(":", 1)
    try:
        loaded = datasets.load_dataset(text, split=split or "train")
    except Exception as exc:
        raise DataError(
            f"cannot load dataset ({_describe(exc)})",
            text,
            reason="unreadable_file",
        ) from None
    return dataset_to_pairs(
        loaded, columns, score_range, name=f"{text}:{split or 'train'}", bad_rows=bad_rows
    )


def load_pairs(
    source,
    data_format: str,
    data_dir: str | Path | None = None,
    columns: Columns = Columns(),
    score_range: ScoreRange = ScoreRange(),
    bad_rows: BadRows | None = None,
) -> list[PairExample]:
    """Dispatch on ``data_format``; relative paths are taken inside ``data_dir``."""
    if data_format not in DATA_FORMATS:
        raise ConfigError(f"unknown data_format {data_format!r}; valid: {', '.join(DATA_FORMATS)}")
    if data_format == "hf":
        if isinstance(source, str) and data_dir is not None:
            folder = source.rpartition(":")[0] if ":" in source else source
            if folder and (Path(data_dir) / folder).is_dir():
                source = str(Path(data_dir) / source)
        return load_hf_pairs(source, columns=columns, score_range=score_range, bad_rows=bad_rows)
    path = Path(source)
    if data_dir is not None and not path.is_absolute():
        path = Path(data_dir) / path
    return read_pairs(path, data_format, columns, score_range, bad_rows)


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
