"""Readers for scored sentence pairs (the bad-row policy and the row layer are in ``rows.py``, the readers
of plain texts in ``texts.py``; both are re-exported here).

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

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from .rows import (  # noqa: F401 - BadRows, ROW_REASONS, table_rows... are part of this module's API too
    BAD_ROW_POLICIES,
    EXTENSIONS,
    ROW_REASONS,
    TABLE_FORMATS,
    BadRows,
    _decode,
    _describe,
    _lines,
    _no_rows,
    _policy,
    _read_text,
    _require_columns,
    _show,
    _text,
    parquet_rows,
    parquet_table,
    table_rows,
)
from .texts import read_texts, read_texts_with_lines  # noqa: F401 - importable from here as before

DATA_FORMATS = ("stsb", "csv", "tsv", "tsv_quoted", "jsonl", "parquet", "senteval", "hf")


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
            _require_columns(row, (columns.text_a, columns.text_b, columns.score), path, line_no)
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
