"""Input files cut into pieces that workers read on their own: the unit of work of the cluster engine.

A corpus is one file, a directory or a glob of .txt / .csv / .tsv / .jsonl / .parquet files
(``input_files``), taken in sorted order. ``plan_file`` scans one file once, in constant memory, and cuts it
into ``Piece`` s of at most ``rows`` records and ``max_bytes`` bytes; it also gives the file's sha256, so a
rerun can tell the same bytes from changed ones. A piece of a text file is a byte range that starts and ends
on a record boundary (for csv, a newline outside quotes) and knows the line it starts on; a piece of a
parquet file is a row range of one row group. ``read_piece`` then reads only those bytes (rows) and yields
``(line, value)`` records with the same file:line errors and bad-row policy as the whole-file readers in
``rows.py`` and ``texts.py``, so text i of the pieces, in order, is text i of ``read_texts``.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from .rows import EXTENSIONS, TABLE_FORMATS, BadRows, _policy, _show, _text, json_object

SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
DEFAULT_MAX_BYTES = 32 << 20  # a piece's block stays well under Ray Data's 128 MiB block target


def input_files(spec: str | Path) -> list[Path]:
    """The files of an input: one file, a directory (its files with a supported suffix, not recursive) or a
    glob pattern; sorted by name. Errors name the spec and what was expected."""
    spec = str(spec)
    path = Path(spec)
    if path.is_file():  # a name that exists is never a pattern, even with [ ] * ? in it
        if path.suffix.lower() not in SUFFIXES:
            raise ConfigError(f"{spec}: unsupported input type {path.suffix!r}; use {', '.join(SUFFIXES)}")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(
                f"no {', '.join(SUFFIXES)} files in this directory", spec, reason="file_not_found"
            )
        return files
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        if not files:
            raise DataError("no file matches this pattern", spec, reason="file_not_found")
        unsupported = [str(p) for p in files if p.suffix.lower() not in SUFFIXES]
        if unsupported:
            raise ConfigError(
                f"{unsupported[0]}: unsupported input type; use {', '.join(SUFFIXES)} (pattern {spec})"
            )
        return files
    if not path.exists():
        raise DataError("file not found", spec, reason="file_not_found")
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"{spec}: unsupported input type {path.suffix!r}; use {', '.join(SUFFIXES)}")
    return [path]


@dataclass(frozen=True)
class Piece:
    """Records ``[start, end)`` of one file: bytes for text formats, rows for parquet (``group``: its row
    group). ``first_line`` is the line (parquet: row, from 1) the piece starts on; ``records`` how many
    records it holds (blank lines of csv/jsonl are not records; every line of a .txt is)."""

    file: int  # index into the plan's files
    path: str
    fmt: str  # txt, csv, tsv, jsonl, parquet
    start: int
    end: int
    first_line: int
    records: int
    header: tuple[str, ...] | None = None  # csv/tsv: the header's cells
    group: int | None = None  # parquet: the row group
    header_line: int | None = None  # csv/tsv: the line the header ends on

    def to_dict(self) -> dict:
        """As JSON has it (the header a list), so a manifest read back compares equal."""
        data = asdict(self)
        if data["header"] is not None:
            data["header"] = list(data["header"])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Piece:
        data = dict(data)
        if data.get("header") is not None:
            data["header"] = tuple(data["header"])
        return cls(**data)


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return "txt"
    if suffix not in EXTENSIONS:
        raise ConfigError(f"{path}: unsupported input type {suffix!r}; use {', '.join(SUFFIXES)}")
    return EXTENSIONS[suffix]


def plan_file(
    path: str | Path, file: int = 0, rows: int = 10_000, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict:
    """``{"sha256": of the bytes, "lines": newline count (parquet: rows), "pieces": [Piece]}``. One
    sequential pass; raises for what no policy can skip (a missing or empty file, a header that does not
    parse)."""
    if rows < 1 or max_bytes < 1:
        raise ConfigError(f"piece size must be >= 1 row and >= 1 byte, got {rows} rows, {max_bytes} bytes")
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise DataError(
            "file not found" if not path.exists() else "expected a file, found a directory",
            str(path),
            reason="file_not_found" if not path.exists() else "not_a_file",
        )
    if fmt == "parquet":
        pieces = _plan_parquet(path, file, rows)
        lines = sum(p.records for p in pieces)
        return {
            "sha256": _sha256(path),
            "lines": lines,
            "pieces": pieces,
            "header": None,
            "header_line": None,
        }
    return _plan_text(path, fmt, file, rows, max_bytes)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _plan_text(path: Path, fmt: str, file: int, rows: int, max_bytes: int) -> dict:
    name = str(path)
    digest = hashlib.sha256()
    pieces: list[Piece] = []
    header: tuple[str, ...] | None = None
    header_at = None
    tabular = fmt in TABLE_FORMATS
    quoted = tabular and TABLE_FORMATS[fmt][1] != csv.QUOTE_NONE
    delimiter = ord(TABLE_FORMATS[fmt][0]) if tabular else 0
    start = offset = 0  # the current piece's first byte; the next line's first byte
    first_line = 1
    records = 0
    inside = False  # csv: the record goes on past this newline (an open quote)
    header_lines: list[bytes] = []
    anything = False  # a non-blank byte seen
    last_line = newlines = 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            digest.update(raw)
            offset += len(raw)
            last_line = line_no
            newlines += raw.endswith(b"\n")
            blank = not raw.strip()
            anything = anything or not blank
            if tabular and header is None:
                if blank and not header_lines:
                    start, first_line = offset, line_no + 1
                    continue
                header_lines.append(raw)
                if quoted:  # (a BOM before the first cell would hide its opening quote)
                    inside = _quoted_after(raw.removeprefix(b"\xef\xbb\xbf"), inside, delimiter)
                if inside:
                    continue
                header = _parse_header(b"".join(header_lines), fmt, name, line_no)
                header_at = line_no
                start, first_line = offset, line_no + 1
                continue
            if quoted:
                inside = _quoted_after(raw, inside, delimiter)
            if inside:
                continue
            if fmt == "txt" or not blank:
                records += 1
            if records >= rows or offset - start >= max_bytes:
                pieces.append(
                    Piece(file, name, fmt, start, offset, first_line, records, header, None, header_at)
                )
                start, first_line, records = offset, line_no + 1, 0
    if not anything:
        raise DataError("file is empty; expected texts", name, reason="empty_file")
    if tabular and header is None:
        if header_lines:  # an open quote ran to the end of the file
            raise DataError("cannot parse the header (unbalanced quote)", name, last_line, "bad_header")
        raise DataError("file is empty; expected a header line", name, reason="empty_file")
    if offset > start and (records or inside):
        pieces.append(
            Piece(file, name, fmt, start, offset, first_line, max(records, 1), header, None, header_at)
        )
    return {
        "sha256": digest.hexdigest(),
        "lines": newlines,
        "pieces": pieces,
        "header": header,
        "header_line": header_at,
    }


def _quoted_after(raw: bytes, inside: bool, delimiter: int) -> bool:
    """Whether a csv record goes on past this line: ``raw`` read with the csv module's rules (a quote opens
    a quoted field only at the start of a field, ``""`` inside one is a quote), starting inside a quoted
    field or not."""
    if not inside and b'"' not in raw:
        return False
    at_start = not inside  # a line outside quotes starts a record, so a field
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if inside:
            if c == 34:  # "
                if i + 1 < n and raw[i + 1] == 34:
                    i += 2
                    continue
                inside = False
        elif c == 34 and at_start:
            inside = True
        at_start = not inside and c == delimiter
        i += 1
    return inside


def _parse_header(raw: bytes, fmt: str, path: str, line: int) -> tuple[str, ...]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"invalid UTF-8 byte {raw[exc.start]:#04x} (expected UTF-8 text) in the header", path, line,
            "bad_header",
        ) from None  # fmt: skip
    delimiter, quoting = TABLE_FORMATS[fmt]
    try:
        cells = next(csv.reader([text], delimiter=delimiter, quoting=quoting))
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"cannot parse the header ({exc})", path, line, "bad_header") from None
    return tuple(cell.strip() for cell in cells)


def _plan_parquet(path: Path, file: int, rows: int) -> list[Piece]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"cannot read parquet ({exc})", str(path), reason="unreadable_file") from None
    pieces, before = [], 0
    for group in range(meta.num_row_groups):
        count = meta.row_group(group).num_rows
        for start in range(0, count, rows):
            end = min(count, start + rows)
            pieces.append(
                Piece(file, str(path), "parquet", start, end, before + start + 1, end - start, None, group)
            )
        before += count
    return pieces


# --------------------------------------------------------------------------------------------- reading
def _decoded(piece: Piece, bad_rows: BadRows) -> Iterator[tuple[int, str, bool]]:
    """(line number, line without its \\n, decoded cleanly) of the piece's bytes, line by line. A line that
    is not UTF-8 goes to ``bad_rows`` (raised under ``error``) and comes out decoded with U+FFFD. A \\r
    before the \\n stays: the csv reader needs it inside quoted fields, as the whole-file reader has it."""
    with open(piece.path, "rb") as f:
        f.seek(piece.start)
        remaining = piece.end - piece.start
        line_no = piece.first_line
        while remaining > 0:
            raw = f.readline(remaining)
            if not raw:
                break
            remaining -= len(raw)
            codec = "utf-8-sig" if line_no == 1 else "utf-8"
            try:
                line, ok = raw.decode(codec), True
            except UnicodeDecodeError as exc:
                problem = f"invalid UTF-8 byte {raw[exc.start]:#04x} (expected UTF-8 text)"
                bad_rows.handle(DataError(problem, piece.path, line_no, "invalid_utf8"))
                line, ok = raw.decode(codec, errors="replace"), False
            yield line_no, line.removesuffix("\n"), ok
            line_no += 1


def piece_records(piece: Piece, bad_rows: BadRows | None = None, columns: tuple[str, ...] = ()) -> Iterator:
    """``(line, record)`` of a piece: the line itself for .txt, a dict for the other formats (parquet: only
    ``columns``). Malformed records go to ``bad_rows`` with the messages of ``rows.table_rows``."""
    bad_rows = _policy(bad_rows)
    if piece.fmt == "txt":
        for line_no, line, ok in _decoded(piece, bad_rows):
            if ok:
                yield line_no, line.removesuffix("\r")
    elif piece.fmt == "jsonl":
        yield from _jsonl(piece, bad_rows)
    elif piece.fmt == "parquet":
        yield from _parquet(piece, columns)
    else:
        yield from _table(piece, bad_rows)


def _jsonl(piece: Piece, bad_rows: BadRows) -> Iterator[tuple[int, dict]]:
    for line_no, line, ok in _decoded(piece, bad_rows):
        line = line.removesuffix("\r")
        if not ok or not line.strip():
            continue
        row = json_object(line, piece.path, line_no, bad_rows)
        if row is None:
            continue
        yield line_no, row


def _table(piece: Piece, bad_rows: BadRows) -> Iterator[tuple[int, dict]]:
    delimiter, quoting = TABLE_FORMATS[piece.fmt]
    header = list(piece.header or ())
    decoded = list(_decoded(piece, bad_rows))
    bad = {line_no for line_no, _, ok in decoded if not ok}
    reader = csv.reader((line + "\n" for _, line, _ in decoded), delimiter=delimiter, quoting=quoting)
    offset = piece.first_line - 1
    end = offset
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            end = offset + reader.line_num
            bad_rows.handle(DataError(f"cannot parse this row ({exc})", piece.path, end, "malformed_row"))
            continue
        end = offset + reader.line_num
        if any(start <= n <= end for n in bad) or not any(cell.strip() for cell in row):
            continue  # counted as invalid_utf8 when decoding; blank lines are not rows
        if len(row) != len(header):
            spans = f" (the record spans lines {start}-{end}: an unbalanced quote?)" if end > start else ""
            problem = f"expected {len(header)} fields as in the header, found {len(row)}{spans}"
            bad_rows.handle(DataError(problem, piece.path, end, "wrong_field_count"))
            continue
        yield end, dict(zip(header, row, strict=True))


def _parquet(piece: Piece, columns: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(piece.path)
    names = parquet.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"no column {missing[0]!r}; found columns {sorted(names)}", piece.path, None, "columns_not_found"
        )
    table = parquet.read_row_group(piece.group, columns=list(columns)).slice(
        piece.start, piece.end - piece.start
    )
    yield from enumerate(table.to_pylist(), start=piece.first_line)


def text_cell(column: str) -> Callable[[object, str, int], str]:
    """The text of a record as ``read_texts`` takes it: a .txt line, or the string in ``column``."""

    def cell(record, path: str, line: int) -> str:
        if isinstance(record, str):
            return _text(record, "text", path, line)
        if column not in record:
            raise DataError(
                f"no column {column!r}; found columns {sorted(map(str, record))}",
                path,
                line,
                "missing_column",
            )
        value = record[column]
        if not isinstance(value, str):
            raise DataError(
                f"column {column!r} must be a string, found {_show(value)}", path, line, "not_a_string"
            )
        return _text(value, f"column {column!r}", path, line)

    return cell


def check_columns(plan: dict, path: str, columns: tuple[str, ...]) -> None:
    """The error ``read_texts`` gives for a csv/tsv header without one of ``columns`` (a file with a header
    and no rows has no piece to find it)."""
    header = plan.get("header")
    if header is None:
        return
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"missing column(s) {missing} in the header; found {list(header)}",
            path,
            plan["header_line"],
            "columns_not_found",
        )


def read_piece_texts(
    piece: Piece, column: str = "text", bad_rows: BadRows | None = None
) -> tuple[list[str], list[int]]:
    """The texts of a piece and the line (parquet: row) of each, as ``read_texts_with_lines`` reads them."""
    bad_rows = _policy(bad_rows)
    if piece.fmt in TABLE_FORMATS and column not in (piece.header or ()):
        raise DataError(
            f"missing column(s) {[column]} in the header; found {list(piece.header or ())}",
            piece.path,
            piece.header_line,
            "columns_not_found",
        )
    cell = text_cell(column)
    texts, lines = [], []
    for line, record in piece_records(piece, bad_rows, (column,)):
        try:
            texts.append(cell(record, piece.path, line))
            lines.append(line)
        except DataError as err:
            bad_rows.handle(err)
    return texts, lines


def plan_inputs(spec: str | Path, rows: int = 10_000, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Plan every file of an input here, in this process: ``{"files": [{path, sha256, size}], "pieces":
    [Piece]}``. The cluster engine runs ``plan_file`` as one task per file instead."""
    files, pieces = [], []
    for number, path in enumerate(input_files(spec)):
        plan = plan_file(path, number, rows, max_bytes)
        files.append({"path": str(path), "sha256": plan["sha256"], "size": os.path.getsize(path)})
        pieces.extend(plan["pieces"])
    return {"files": files, "pieces": pieces}
