"""Readers for scored sentence pairs, and the training collator.

Every reader returns a list of ``PairExample`` with the score scaled to [0, 1], or raises ``DataError``
naming the file, the line and what was expected. Nothing here reads from the network unless a Hugging
Face dataset *name* is given.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, DataError

DATA_FORMATS = ("stsb", "csv", "tsv", "tsv_quoted", "jsonl", "parquet", "senteval", "hf")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


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
            raise DataError(f"score {raw!r} is not a number", path, line) from None
        if not math.isfinite(value):
            raise DataError(f"score {raw!r} is not finite", path, line)
        if not self.low <= value <= self.high:
            raise DataError(f"score {value} is outside [{self.low}, {self.high}]", path, line)
        return (value - self.low) / (self.high - self.low)


def _text(value, what: str, path: str, line: int | None) -> str:
    if value is None or not isinstance(value, str | int | float) or not str(value).strip():
        raise DataError(f"{what} is empty or missing", path, line)
    return str(value)


def _read_text(path: str | Path, expected: str = "sentence pairs") -> str:
    """Whole file as UTF-8 text; errors name the file (and the line of a bad byte)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", str(path))
    if path.is_dir():
        raise DataError("expected a file, found a directory", str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"invalid UTF-8 byte {raw[exc.start]:#04x} (expected UTF-8 text)", str(path), line
        ) from None
    if not text.strip():
        raise DataError(f"file is empty; expected {expected}", str(path))
    return text


def _lines(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) pairs. Only \\n ends a line (str.splitlines would also split on U+2028,
    form feeds and other characters that may sit inside a sentence or a JSON string)."""
    for line_no, line in enumerate(text.split("\n"), start=1):
        yield line_no, line.removesuffix("\r")


def read_stsb(path: str | Path, score_range: ScoreRange = ScoreRange()) -> list[PairExample]:
    """Read an original STS Benchmark file (``sts-train.csv`` etc.).

    Format: UTF-8, tab-separated, no header, no quoting (sentences contain unbalanced quotes):
    ``genre  file  year  id  score  sentence1  sentence2  [source1  source2]``. Extra fields are ignored.
    """
    path = str(path)
    examples = []
    for line_no, line in _lines(_read_text(path)):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise DataError(
                f"expected at least 7 tab-separated fields (genre, file, year, id, score, sentence1, "
                f"sentence2), found {len(fields)}",
                path,
                line_no,
            )
        score = score_range.scale(fields[4], path, line_no)
        a = _text(fields[5], "sentence1", path, line_no)
        b = _text(fields[6], "sentence2", path, line_no)
        examples.append(PairExample(a, b, score, f"{path}:{line_no}"))
    return examples


def _rows_from_table(
    path: str, delimiter: str, quoting: int, required: Sequence[str] = (), expected: str = "sentence pairs"
) -> Iterable[tuple[int, dict]]:
    text = _read_text(path, expected)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header = None
    for row in reader:
        line_no = reader.line_num
        if header is None:
            header = [h.strip() for h in row]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(f"missing column(s) {missing} in the header; found {header}", path, line_no)
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(
                f"expected {len(header)} fields as in the header, found {len(row)}", path, line_no
            )
        yield line_no, dict(zip(header, row, strict=True))
    if header is None:
        raise DataError("file is empty; expected a header line", path)


def _rows_from_jsonl(path: str, expected: str = "sentence pairs") -> Iterable[tuple[int, dict]]:
    for line_no, line in _lines(_read_text(path, expected)):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON ({exc.msg}); expected one JSON object per line", path, line_no
            ) from None
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, found {type(row).__name__}", path, line_no)
        yield line_no, row


# How each table format is parsed: (delimiter, quoting); jsonl is one object per line.
TABLE_FORMATS = {
    "csv": (",", csv.QUOTE_MINIMAL),
    "tsv": ("\t", csv.QUOTE_NONE),
    "tsv_quoted": ("\t", csv.QUOTE_MINIMAL),  # tab-separated with CSV quoting, like Quora's QQP release
}


def table_rows(
    path: str, fmt: str | None, required: Sequence[str] = (), expected: str = "sentence pairs"
) -> Iterable[tuple[int, dict]] | None:
    """(line, row) pairs of a csv / tsv / tsv_quoted / jsonl file; None for any other format."""
    if fmt in TABLE_FORMATS:
        delimiter, quoting = TABLE_FORMATS[fmt]
        return _rows_from_table(path, delimiter, quoting, required, expected)
    if fmt == "jsonl":
        return _rows_from_jsonl(path, expected)
    return None


def _rows_to_examples(
    rows: Iterable[tuple[int | None, dict]], path: str, columns: Columns, score_range: ScoreRange
) -> list[PairExample]:
    examples = []
    for line_no, row in rows:
        for column in (columns.text_a, columns.text_b, columns.score):
            if column not in row:
                raise DataError(
                    f"missing column {column!r}; found columns {sorted(map(str, row))}", path, line_no
                )
        a = _text(row[columns.text_a], f"column {columns.text_a!r}", path, line_no)
        b = _text(row[columns.text_b], f"column {columns.text_b!r}", path, line_no)
        score = score_range.scale(row[columns.score], path, line_no)
        where = f"{path}:{line_no}" if line_no is not None else path
        examples.append(PairExample(a, b, score, where))
    if not examples:
        raise DataError("no pairs found", path)
    return examples


def read_pairs(
    path: str | Path,
    data_format: str | None = None,
    columns: Columns = Columns(),
    score_range: ScoreRange = ScoreRange(),
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
        return read_stsb(path, score_range)
    if fmt == "parquet":
        if not Path(path).exists():
            raise DataError("file not found", path)
        import datasets

        return dataset_to_pairs(datasets.Dataset.from_parquet(path), columns, score_range, name=path)
    rows = table_rows(path, fmt, required)
    if rows is None:
        raise ConfigError(
            f"{path}: cannot tell the format (extension {Path(path).suffix!r}); "
            f"pass one of {', '.join(DATA_FORMATS)}"
        )
    return _rows_to_examples(rows, path, columns, score_range)


def dataset_to_pairs(
    dataset, columns: Columns = Columns(), score_range: ScoreRange = ScoreRange(), name: str = "dataset"
) -> list[PairExample]:
    """Scored pairs from a Hugging Face ``datasets.Dataset`` (row numbers count from 0)."""
    missing = [c for c in (columns.text_a, columns.text_b, columns.score) if c not in dataset.column_names]
    if missing:
        raise DataError(f"missing column(s) {missing}; found columns {dataset.column_names}", name)
    rows = ((i, row) for i, row in enumerate(dataset))
    examples = []
    for i, row in rows:
        where = f"row {i}"
        a = _text(row[columns.text_a], f"column {columns.text_a!r} ({where})", name, None)
        b = _text(row[columns.text_b], f"column {columns.text_b!r} ({where})", name, None)
        try:
            score = score_range.scale(row[columns.score], name, None)
        except DataError as exc:
            raise DataError(f"{where}: {exc.problem}", name) from None
        examples.append(PairExample(a, b, score, f"{name}[{i}]"))
    if not examples:
        raise DataError("no pairs found", name)
    return examples


def load_hf_pairs(
    source, split: str | None = None, columns: Columns = Columns(), score_range: ScoreRange = ScoreRange()
) -> list[PairExample]:
    """Pairs from a ``datasets.Dataset`` object, a ``save_to_disk`` folder, or a dataset name (online).

    ``source`` may be written ``"name:split"``.
    """
    import datasets

    if isinstance(source, datasets.Dataset):
        return dataset_to_pairs(source, columns, score_range)
    text = str(source)
    head, _, tail = text.rpartition(":")
    if not Path(text).is_dir() and head and Path(head).is_dir() and split is None:
        text, split = head, tail  # "folder:split" for a saved DatasetDict
    if Path(text).is_dir():
        loaded = datasets.load_from_disk(text)
        if isinstance(loaded, datasets.DatasetDict):
            if split is None or split not in loaded:
                raise DataError(f"expected a split name, one of {list(loaded)} (write 'folder:split')", text)
            loaded = loaded[split]
        return dataset_to_pairs(loaded, columns, score_range, name=text)
    if ":" in text and split is None:
        text, split = text.rsplit(":", 1)
    try:
        loaded = datasets.load_dataset(text, split=split or "train")
    except Exception as exc:
        raise DataError(
            f"cannot load dataset ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", text
        ) from None
    return dataset_to_pairs(loaded, columns, score_range, name=f"{text}:{split or 'train'}")


def load_pairs(
    source,
    data_format: str,
    data_dir: str | Path | None = None,
    columns: Columns = Columns(),
    score_range: ScoreRange = ScoreRange(),
) -> list[PairExample]:
    """Dispatch on ``data_format``; relative paths are taken inside ``data_dir``."""
    if data_format not in DATA_FORMATS:
        raise ConfigError(f"unknown data_format {data_format!r}; valid: {', '.join(DATA_FORMATS)}")
    if data_format == "hf":
        if isinstance(source, str) and data_dir is not None:
            folder = source.rpartition(":")[0] if ":" in source else source
            if folder and (Path(data_dir) / folder).is_dir():
                source = str(Path(data_dir) / source)
        return load_hf_pairs(source, columns=columns, score_range=score_range)
    path = Path(source)
    if data_dir is not None and not path.is_absolute():
        path = Path(data_dir) / path
    return read_pairs(path, data_format, columns, score_range)


def _parquet_texts(path: str, column: str) -> list[str]:
    """The string column ``column`` of a parquet file; errors name the row (1-based) like a line."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DataError("file not found (expected texts)", path) from None
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"cannot read parquet ({type(exc).__name__}: {exc})", path) from None
    if column not in table.column_names:
        raise DataError(f"no column {column!r}; found columns {sorted(table.column_names)}", path)
    texts = []
    for row, value in enumerate(table.column(column).to_pylist(), start=1):
        if not isinstance(value, str):
            raise DataError(f"column {column!r} must be a string, found {value!r}", path, row)
        texts.append(_text(value, f"column {column!r}", path, row))
    return texts


def read_texts(path: str | Path, column: str = "text") -> list[str]:
    """Texts from .txt (one per line), .csv/.tsv (a header naming ``column``), .jsonl (objects with key
    ``column``) or .parquet (a string column ``column``). Errors name the file and line (parquet: row)."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".txt":
        lines = list(_lines(_read_text(path, "texts")))
        if lines and not lines[-1][1]:
            lines.pop()  # the newline that ends the last line
        # Row i of the output must be line i of the input: a blank line is an error, not skipped.
        texts = [_text(line, "text", path, line_no) for line_no, line in lines]
    elif suffix in (".csv", ".tsv", ".jsonl"):
        rows = table_rows(path, EXTENSIONS[suffix], required=[column], expected="texts")
        texts = []
        for line_no, row in rows:
            if column not in row:
                raise DataError(f"no column {column!r}; found columns {sorted(map(str, row))}", path, line_no)
            if not isinstance(row[column], str):
                raise DataError(f"column {column!r} must be a string, found {row[column]!r}", path, line_no)
            texts.append(_text(row[column], f"column {column!r}", path, line_no))
    elif suffix == ".parquet":
        texts = _parquet_texts(path, column)
    else:
        raise ConfigError(
            f"{path}: unsupported input type {suffix!r}; use .txt, .csv, .tsv, .jsonl or .parquet"
        )
    if not texts:
        raise DataError("no texts found", path)
    return texts
