"""Adding a large file to an archive: read in chunks, encode, commit chunk by chunk, resumable.

``add_file`` streams a .txt (one question per line), .csv / .tsv (a header row), .jsonl (one object per
line) or .parquet file; it never holds more than a chunk of texts. Each chunk is committed with a record of
the last input line it covers (table ``ingests``, keyed by the file's sha256 and the columns read), in the
same transaction. A run that is interrupted (Ctrl-C, ``kill -9``, a full disk) and started again skips
the lines already committed, and gives the others the ids the first run would have given:

- from ``id_column`` when given (non-negative integers);
- otherwise line (row) number + the largest id in the archive when the file was first added, so the ids of
  one file are stable across resumes. Adding the same file again after it completed adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data.rows import BadRows, _policy, json_object
from ..errors import ArchiveError, ConfigError, DataError
from .checks import MAX_ID
from .store import NewRow

logger = logging.getLogger(__name__)

FORMATS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
DEFAULT_CHUNK = 2048


@dataclass
class IngestReport:
    path: str
    added: int  # new questions committed by this run
    skipped: int  # rows already in the archive (an earlier run, or the same id and text)
    bad_rows: int  # rows left out under --on-bad-rows skip
    rows: int  # rows of the file committed in all runs
    resumed_from_line: int  # 0: a fresh start
    first_id: int | None
    last_id: int | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: unsupported input type {path.suffix!r}; use {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "expected a file", str(path))
    return fmt


def fingerprint_file(path: Path) -> tuple[str, int]:
    """(sha256 of the bytes, number of lines) in one pass."""
    digest, lines = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def _decoded_lines(path: Path, bad_rows: BadRows, placeholder: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end), decoding line by line so errors name the line; a line
    that is not UTF-8 goes to ``bad_rows`` (raised, or skipped and counted; with ``placeholder`` an empty
    line stands in for it, so that the csv reader's line numbers stay the file's)."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                problem = f"invalid UTF-8 byte {raw[exc.start]:#04x} (expected UTF-8 text)"
                bad_rows.handle(DataError(problem, str(path), line_no, "invalid_utf8"))
                if placeholder:
                    yield line_no, ""
                continue
            yield line_no, line.removesuffix("\n").removesuffix("\r")


def _text_and_id(
    row: dict, column: str, id_column: str | None, path: str, line: int
) -> tuple[str, int | None]:
    if column not in row:
        raise DataError(
            f"no column {column!r}; found columns {sorted(map(str, row))}", path, line, "missing_column"
        )
    text = row[column]
    if not isinstance(text, str):
        raise DataError(f"column {column!r} must be a string, found {text!r:.60}", path, line, "not_a_string")
    if not text.strip():
        raise DataError(f"column {column!r} is empty", path, line, "empty_text")
    if id_column is None:
        return text, None
    if id_column not in row:
        raise DataError(
            f"no id column {id_column!r}; found columns {sorted(map(str, row))}", path, line, "missing_column"
        )
    value = row[id_column]
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise DataError(
            f"id column {id_column!r} must hold an integer in 0..{MAX_ID}, found {value!r:.60}",
            path,
            line,
            "bad_id",
        )
    return text, value


def iter_rows(
    path: str | Path, column: str = "text", id_column: str | None = None, bad_rows: BadRows | None = None
) -> Iterator[tuple[int, str, int | None]]:
    """(line or row number, text, id or None) of each row, streamed. ``.txt`` has no columns: each line is a
    text and ``id_column`` is refused."""
    path = Path(path)
    fmt = _format(path)
    bad_rows = _policy(bad_rows)
    name = str(path)
    if fmt == "txt":
        if id_column is not None:
            raise ConfigError(
                f"{path}: a .txt file has no columns; --id-column needs .csv/.tsv/.jsonl/.parquet"
            )
        for line_no, line in _decoded_lines(path, bad_rows):
            if line.strip():
                yield line_no, line, None
            else:
                bad_rows.handle(DataError("blank line; expected a question", name, line_no, "empty_text"))
        return
    if fmt == "parquet":
        yield from _parquet_rows(path, column, id_column, bad_rows)
        return
    if fmt == "jsonl":
        records = _jsonl_records(path, bad_rows)
    else:
        records = _table_records(path, "\t" if fmt == "tsv" else ",", bad_rows)
    for line_no, row in records:
        try:
            text, question_id = _text_and_id(row, column, id_column, name, line_no)
        except DataError as err:
            bad_rows.handle(err)
            continue
        yield line_no, text, question_id


def _jsonl_records(path: Path, bad_rows: BadRows) -> Iterator[tuple[int, dict]]:
    for line_no, line in _decoded_lines(path, bad_rows):
        if not line.strip():
            continue
        row = json_object(line, str(path), line_no, bad_rows)
        if row is None:
            continue
        yield line_no, row


def _table_records(path: Path, delimiter: str, bad_rows: BadRows) -> Iterator[tuple[int, dict]]:
    lines = (line + "\n" for _, line in _decoded_lines(path, bad_rows, placeholder=True))
    reader = csv.reader(
        lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    )
    header = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if header is None:
                raise DataError(
                    f"cannot parse the header ({exc})", str(path), reader.line_num, "bad_header"
                ) from None
            bad_rows.handle(
                DataError(f"cannot parse this row ({exc})", str(path), reader.line_num, "malformed_row")
            )
            continue
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [h.strip() for h in row]
            continue
        if len(row) != len(header):
            bad_rows.handle(
                DataError(
                    f"expected {len(header)} fields as in the header, found {len(row)}",
                    str(path),
                    reader.line_num,
                    "wrong_field_count",
                )
            )
            continue
        yield reader.line_num, dict(zip(header, row, strict=True))
    if header is None:
        raise DataError("file is empty; expected a header line", str(path), reason="empty_file")


def _parquet_rows(path: Path, column: str, id_column: str | None, bad_rows: BadRows):
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"cannot read parquet ({exc})", str(path), reason="unreadable_file") from None
    names = parquet.schema_arrow.names
    wanted = [column] + ([id_column] if id_column else [])
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(
            f"no column(s) {missing}; found columns {sorted(names)}", str(path), None, "columns_not_found"
        )
    row_no = 0
    for batch in parquet.iter_batches(batch_size=DEFAULT_CHUNK, columns=wanted):
        for row in batch.to_pylist():
            row_no += 1
            try:
                text, question_id = _text_and_id(row, column, id_column, str(path), row_no)
            except DataError as err:
                bad_rows.handle(err)
                continue
            yield row_no, text, question_id


def _parquet_rows_count(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"cannot read parquet ({exc})", str(path), reason="unreadable_file") from None


def add_file(
    archive,
    path: str | Path,
    column: str = "text",
    id_column: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    bad_rows: BadRows | None = None,
    show_progress_bar: bool = False,
    engine=None,
) -> IngestReport:
    """Add every row of ``path`` to ``archive``, committing every ``chunk_size`` rows; resumes an earlier,
    interrupted run of the same file (same bytes, same columns). See the module docstring for ids.

    ``engine``: a ``RayEngine`` (entered) to encode on a cluster, a piece of ``engine.piece_rows`` rows at a
    time, each committed as one chunk; the rows, ids and resumes are those of the local path."""
    path = Path(path)
    fmt = _format(path)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    if fmt == "txt" and id_column is not None:
        raise ConfigError(f"{path}: a .txt file has no columns; --id-column needs .csv/.tsv/.jsonl/.parquet")
    bad_rows = _policy(bad_rows)
    plan = None
    if engine is None:
        digest, line_count = fingerprint_file(path)
        if fmt == "parquet":  # newline bytes mean nothing in a binary file
            line_count = _parquet_rows_count(path)
    else:
        plan = engine.plan(path)  # on the cluster: the sha256 and line count come with the pieces
        digest, line_count = plan.files[0]["sha256"], plan.files[0]["lines"]
    source = json.dumps({"sha256": digest, "column": column, "id_column": id_column})
    store = archive.store
    reserve = None if id_column is not None else line_count + 1  # ids offset + line, for every line
    offset, last_line, committed, done = archive.start_ingest(source, reserve)
    report = IngestReport(str(path), 0, 0, 0, committed, last_line, None, None)
    if done:
        logger.info("%s: already added to this archive (%d rows); nothing to do", path, committed)
        return report
    before = bad_rows.total
    bar = tqdm(
        total=line_count or None,
        initial=last_line,
        unit="line",
        disable=not show_progress_bar,
        desc="archive add",
        file=sys.stderr,
    )
    reached = last_line

    def commit(chunk: list[tuple[int, str, int | None]], vectors, covers: int | None, final: bool) -> None:
        """Encode (unless ``vectors`` come with it) and commit one chunk with the ingest's progress."""
        nonlocal committed, reached
        rows = [NewRow(offset + line if qid is None else qid, text, None) for line, text, qid in chunk]
        if vectors is None:
            vectors = (
                archive.encode([r.text for r in rows], side="b")
                if rows
                else np.zeros((0, archive.dim), np.float32)
            )
        # the last line this chunk covers (a piece of skipped rows covers lines too); never backwards
        end = reached = max(reached, covers if covers is not None else chunk[-1][0] if chunk else last_line)

        def record(conn):
            store.save_ingest(conn, source, offset, end, committed + len(rows), final)

        try:
            ids, added = archive.add_rows(rows, vectors, on_commit=record) if rows else ([], 0)
        except ArchiveError as exc:
            raise _with_line(exc, chunk, path) from None
        if not rows:
            with store.transaction() as conn:
                record(conn)
        committed += len(rows)
        report.added += added
        report.skipped += len(rows) - added
        if ids:
            report.first_id = ids[0] if report.first_id is None else report.first_id
            report.last_id = ids[-1]
        bar.update(max(0, end - bar.n))

    if engine is None:
        chunks = _local_chunks(path, column, id_column, bad_rows, last_line, chunk_size)
    else:
        from ..engines.ray import Reading

        reading = Reading(column, bad_rows.policy, "archive", id_column)
        chunks = engine.archive_chunks(archive, path, plan, reading, last_line, bad_rows)
    try:
        for chunk, vectors, covers in chunks:
            commit(chunk, vectors, covers, False)
        commit([], None, None, True)
    finally:
        bar.close()
    if engine is not None:
        engine.archive_done(archive, plan)  # all committed: no resume needs its work folder
    report.rows = committed
    report.bad_rows = bad_rows.total - before
    return report


def _local_chunks(
    path: Path, column: str, id_column: str | None, bad_rows: BadRows, after_line: int, chunk_size: int
) -> Iterator[tuple[list[tuple[int, str, int | None]], None, None]]:
    """The rows after ``after_line``, ``chunk_size`` at a time, to be encoded here (no vectors yet)."""
    chunk = []
    for line, text, question_id in iter_rows(path, column, id_column, bad_rows):
        if line > after_line:
            chunk.append((line, text, question_id))
            if len(chunk) >= chunk_size:
                yield chunk, None, None
                chunk = []
    if chunk:
        yield chunk, None, None


def _with_line(exc: ArchiveError, chunk, path: Path) -> DataError | ArchiveError:
    """An id clash inside a chunk, re-raised naming the input line."""
    field = exc.field or ""
    if field.startswith("ids[") and field.endswith("]"):
        line = chunk[int(field[4:-1])][0]
        return DataError(str(exc), str(path), line, "bad_id")
    if field == "ids":  # ids repeat within the chunk
        seen: dict[int, int] = {}
        for line, _, question_id in chunk:
            if question_id in seen:
                return DataError(
                    f"id {question_id} repeats line {seen[question_id]}", str(path), line, "bad_id"
                )
            seen[question_id] = line
    return exc
