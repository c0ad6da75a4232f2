"""Property-based fuzzing of the readers (hypothesis).

(a) Random bytes and random text full of quotes, separators, line breaks, BOMs, NULs and Unicode: every
    reader either returns rows or raises the project's own error (``DataError``, ``ConfigError``); a row
    error names a line of the file; ``skip`` only raises for whole-file problems and agrees with ``error``.
(b) Round trips: valid rows written with the csv module / json.dumps / tab joins come back exactly.
(c) Valid rows mixed with known-bad rows: under ``skip`` exactly the valid rows come back, and the count by
    reason is exact.

Deterministic (derandomized, no example database) and quick.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbert_siamese.data.examples import read_examples
from sbert_siamese.data.readers import (
    ROW_REASONS,
    BadRows,
    read_pairs,
    read_stsb,
    read_texts_with_lines,
)
from sbert_siamese.errors import ConfigError, DataError

FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROUND_TRIP = settings(derandomize=True, database=None, max_examples=100, deadline=None)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for the whole module (hypothesis runs many examples per test; files are overwritten)."""
    return tmp_path_factory.mktemp("fuzz")


# ----------------------------------------------------------------------------------------------- readers
def _pairs(fmt):
    return lambda path, b: [
        (e.text_a, e.text_b, e.score, e.source) for e in read_pairs(path, fmt, bad_rows=b)
    ]


def _examples(fmt, text_columns, target, column=None):
    def read(path, b):
        examples, keys = read_examples(path, fmt, text_columns, target, column, bad_rows=b)
        return [(e.texts, e.target, e.source) for e in examples], keys

    return read


READERS = {  # name -> (file suffix, reader(path, bad_rows))
    "stsb": (".csv", lambda path, b: read_stsb(path, bad_rows=b)),
    "csv": (".csv", _pairs("csv")),
    "tsv": (".tsv", _pairs("tsv")),
    "tsv_quoted": (".tsv", _pairs("tsv_quoted")),
    "jsonl": (".jsonl", _pairs("jsonl")),
    "guess": (".dat", _pairs(None)),  # no format from the extension: a ConfigError
    "parquet": (".parquet", _pairs("parquet")),
    "texts_txt": (".txt", lambda path, b: read_texts_with_lines(path, bad_rows=b)),
    "texts_csv": (".csv", lambda path, b: read_texts_with_lines(path, bad_rows=b)),
    "texts_tsv": (".tsv", lambda path, b: read_texts_with_lines(path, bad_rows=b)),
    "texts_jsonl": (".jsonl", lambda path, b: read_texts_with_lines(path, bad_rows=b)),
    "binary_csv": (".csv", _examples("csv", ["sentence1", "sentence2"], "binary", "score")),
    "group_jsonl": (".jsonl", _examples("jsonl", ["text"], "group", "score")),
    "triplet_tsv_quoted": (".tsv", _examples("tsv_quoted", ["sentence1", "sentence2", "text"], "none")),
    "score_stsb": (".csv", _examples("stsb", [], "score")),
}


def _max_line(raw: bytes) -> int:
    """An upper bound on the line numbers of ``raw`` (the csv module also ends lines at a bare \\r)."""
    return raw.count(b"\n") + raw.count(b"\r") + 1


def _lines_in(result) -> list[int]:
    """The line numbers a reader's result points at (``file:line`` sources, or read_texts' lines)."""
    if isinstance(result, tuple) and len(result) == 2 and result[1] and isinstance(result[1][0], int):
        return list(result[1])  # read_texts_with_lines
    rows = result[0] if isinstance(result, tuple) else result
    lines = []
    for row in rows:
        source = row.source if hasattr(row, "source") else row[-1]
        tail = source.rsplit(":", 1)[-1]
        if tail.isdigit():
            lines.append(int(tail))
    return lines


def check_reader(name: str, path: Path, raw: bytes) -> None:
    """The properties every reader must have on any input."""
    _, read = READERS[name]
    path.write_bytes(raw)
    outcome = {}
    for policy in ("error", "skip"):
        bad_rows = BadRows(policy)
        try:
            result = read(path, bad_rows)
        except ConfigError:
            assert name == "guess", f"{name}: unexpected ConfigError"
            outcome[policy] = "config"
            continue
        except DataError as err:  # anything else escapes and fails the test
            assert err.path is not None and str(err).startswith(err.path), str(err)[:200]
            if err.line is not None:
                assert 1 <= err.line <= _max_line(raw), (name, err.line, str(err)[:200])
            if policy == "skip":
                # under skip only whole-file problems stop a read
                assert err.reason not in ROW_REASONS, (name, str(err)[:200])
            outcome[policy] = err
            continue
        lines = _lines_in(result)
        assert all(1 <= n <= _max_line(raw) for n in lines), (name, lines)
        assert lines == sorted(lines) and len(set(lines)) == len(lines), (name, lines)
        if policy == "error":
            assert bad_rows.total == 0
        outcome[policy] = result
    error, skip = outcome["error"], outcome["skip"]
    if error == "config":
        assert skip == "config"
    elif not isinstance(error, DataError):
        assert skip == error, name  # nothing bad: both policies read the same rows
    elif not isinstance(skip, DataError):
        assert error.reason in ROW_REASONS, (name, str(error)[:200])  # skip read rows: error hit a bad row


# Pieces that make readers work hard: separators, quotes, line breaks, BOMs, NULs, JSON syntax, numbers
# that are not finite, header names, lone surrogate escapes, non-ASCII text.
PIECES = [
    '"', "'", '""', "\t", ",", "\n", "\r", "\r\n", "\u2028", "\x85", "\x0c", "\ufeff", "\x00", " ", "\\",
    "{", "}", "[", "]", ":", '": "', "null", "true", "NaN", "-Infinity", "1e999", "nan", "inf", "-1", "0",
    "2.5", "5", "7", "1", "score", "sentence1", "sentence2", "text", "genre\tfile\tyear\tid\tscore",
    "\\ud800", "\\u0000", "é", "日本語", "😀", "a", "x y",
    '{"sentence1": "a", "sentence2": "b", "score": 1, "text": "t"}',
    "main\tMSRvid\t2012\t0001\t3.0\ta\tb", "sentence1,sentence2,score,text\n",
    "sentence1\tsentence2\tscore\ttext\n", "\na,b,2.5,t\n", "\na\tb\t2.5\tt\n", "\nx\ty\tz\t1\t4\ta\tb\n",
    '\n{"sentence1": "a", "sentence2": "b", "score": 1, "text": "t"}\n',
]  # fmt: skip
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=40).map("".join)
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "utf-16")


@st.composite
def documents(draw) -> bytes:
    """Text with tricky pieces (sometimes after a valid header), in an encoding, sometimes with raw bytes."""
    text = draw(texts)
    header = draw(
        st.sampled_from(["", "sentence1,sentence2,score,text\n", "sentence1\tsentence2\tscore\ttext\n"])
    )
    raw = (header + text).encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(raw=st.binary(max_size=200))
def test_random_bytes_parse_or_raise_data_error(folder, name, raw):
    check_reader(name, folder / f"bytes{READERS[name][0]}", raw)


@settings(FUZZ, max_examples=150)
@given(raw=documents())
def test_random_text_with_quotes_separators_and_unicode(folder, raw):
    for name, (suffix, _) in READERS.items():
        if name != "parquet":
            check_reader(name, folder / f"text-{name}{suffix}", raw)


# ----------------------------------------------------------------------------------------- round trips
# Texts with tricky Unicode and separators; a text must hold something besides whitespace.
TEXT_PIECES = [
    '"', "'", ",", "\t", "\n", "\r", "\r\n", "\u2028", "\x85", "\ufeff", "\x00", "\\", "{", "é", "😀",
]  # fmt: skip
text = st.lists(
    st.one_of(st.text(min_size=1, max_size=10), st.sampled_from(TEXT_PIECES)), min_size=1, max_size=6
).map("".join)
text = text.filter(lambda t: t.strip())
score = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
rows = st.lists(st.tuples(text, text, score), min_size=1, max_size=8)


def _plain(rows_):
    """Rows a format without quoting can hold: no tab or line break inside a text (made spaces)."""
    return [
        tuple(t.replace("\t", " ").replace("\n", " ").replace("\r", " ") for t in (a, b)) + (s,)
        for a, b, s in rows_
    ]


def _csv(
    rows_, delimiter: str, header=("sentence1", "sentence2", "score"), quoting=csv.QUOTE_MINIMAL
) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting)  # lineterminator \r\n quotes \r and \n
    writer.writerow(header)
    writer.writerows([(a, b, repr(s)) for a, b, s in rows_])
    return buffer.getvalue().encode()


def _expected(rows_, path: Path, lines) -> list:
    return [(a, b, s / 5.0, f"{path}:{line}") for (a, b, s), line in zip(rows_, lines, strict=True)]


def _record_lines(rows_, start: int) -> list[int]:
    """The line each CSV record ends on: only \\n ends a line (a \\r inside a quoted field does not)."""
    lines, line = [], start
    for a, b, _ in rows_:
        line += a.count("\n") + b.count("\n") + 1
        lines.append(line)
    return lines


@ROUND_TRIP
@given(rows_=rows, quote_all=st.booleans())
def test_round_trip_csv_and_tsv_quoted(folder, rows_, quote_all):
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    for fmt, delimiter in (("csv", ","), ("tsv_quoted", "\t")):
        path = folder / f"round.{fmt}"
        path.write_bytes(_csv(rows_, delimiter, quoting=quoting))
        got = [(e.text_a, e.text_b, e.score, e.source) for e in read_pairs(path, fmt)]
        assert [(a, b, s) for a, b, s, _ in got] == [(a, b, s / 5.0) for a, b, s in rows_]
        assert [src for *_, src in got] == [f"{path}:{n}" for n in _record_lines(rows_, 1)]
        if fmt == "csv":
            assert read_texts_with_lines(path, "sentence1")[0] == [a for a, _, _ in rows_]


@ROUND_TRIP
@given(rows_=rows, ensure_ascii=st.booleans(), bom=st.booleans())
def test_round_trip_jsonl(folder, rows_, ensure_ascii, bom):
    path = folder / "round.jsonl"
    lines = [
        json.dumps({"sentence1": a, "sentence2": b, "score": s}, ensure_ascii=ensure_ascii)
        for a, b, s in rows_
    ]
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode())
    got = [(e.text_a, e.text_b, e.score, e.source) for e in read_pairs(path)]
    assert got == _expected(rows_, path, range(1, len(rows_) + 1))
    examples, _ = read_examples(path, None, ["sentence1", "sentence2"], "score", "score")
    assert [e.texts for e in examples] == [(a, b) for a, b, _ in rows_]


@ROUND_TRIP
@given(rows_=rows.map(_plain), crlf=st.booleans())
def test_round_trip_tsv_stsb_and_txt(folder, rows_, crlf):
    end = "\r\n" if crlf else "\n"
    tsv = folder / "round.tsv"
    tsv.write_bytes(
        ("sentence1\tsentence2\tscore" + end + "".join(f"{a}\t{b}\t{s!r}{end}" for a, b, s in rows_)).encode()
    )
    got = [(e.text_a, e.text_b, e.score, e.source) for e in read_pairs(tsv)]
    assert got == _expected(rows_, tsv, range(2, len(rows_) + 2))

    stsb = folder / "round-sts.csv"
    stsb.write_bytes(
        "".join(f"g\tf\t2012\t{i}\t{s!r}\t{a}\t{b}{end}" for i, (a, b, s) in enumerate(rows_)).encode()
    )
    got = [(e.text_a, e.text_b, e.score, e.source) for e in read_stsb(stsb)]
    assert got == _expected(rows_, stsb, range(1, len(rows_) + 1))

    txt = folder / "round.txt"
    rows_ = [r for r in rows_ if not r[0].startswith("\ufeff")]  # a BOM at the start marks the encoding
    if not rows_:
        return
    txt.write_bytes("".join(f"{a}{end}" for a, _, _ in rows_).encode())
    assert read_texts_with_lines(txt) == ([a for a, _, _ in rows_], list(range(1, len(rows_) + 1)))


# ------------------------------------------------------------------------------ valid rows + bad rows
BAD_TSV_ROWS = {  # a bad row of sentence1 \t sentence2 \t score, and the reason it is skipped for
    "a\tb": "wrong_field_count",
    "a\tb\t1\tx": "wrong_field_count",
    "a\tb\tabc": "bad_score",
    "a\tb\t": "bad_score",
    "a\tb\tnan": "score_not_finite",
    "a\tb\t-inf": "score_not_finite",
    "a\tb\t5.0001": "score_out_of_range",
    "a\tb\t-1": "score_out_of_range",
    "\tb\t1": "empty_text",
    "a\t  \t1": "empty_text",
}
BAD_JSON_ROWS = {
    '{"sentence1": "a"': "invalid_json",
    "[1]": "not_an_object",
    "2.5": "not_an_object",
    '{"sentence1": "a", "score": 1}': "missing_column",
    '{"sentence1": "a", "sentence2": null, "score": 1}': "empty_text",
    '{"sentence1": "a", "sentence2": 1.5e3, "score": 1}': None,  # a number is taken as text: a good row
    '{"sentence1": "a", "sentence2": {}, "score": 1}': "not_a_string",
    '{"sentence1": "a", "sentence2": "b", "score": "x"}': "bad_score",
    '{"sentence1": "a", "sentence2": "b", "score": Infinity}': "score_not_finite",
    '{"sentence1": "a", "sentence2": "b", "score": 5.5}': "score_out_of_range",
    '{"sentence1": "\\udc00", "sentence2": "b", "score": 1}': "invalid_utf8",
}
mixed = st.lists(
    st.one_of(st.tuples(text, text, score), st.sampled_from(["bad", "blank"])), min_size=1, max_size=12
)


@ROUND_TRIP
@given(items=mixed, data=st.data())
def test_good_rows_survive_skip_and_bad_rows_are_counted_exactly(folder, items, data):
    for fmt, bad_rows_table in (("tsv", BAD_TSV_ROWS), ("jsonl", BAD_JSON_ROWS)):
        path = folder / f"mixed.{fmt}"
        lines = ["sentence1\tsentence2\tscore"] if fmt == "tsv" else []
        expected, counts = [], {}
        for item in items:
            if item == "blank":
                lines.append(" ")
                continue
            if item == "bad":
                row = data.draw(st.sampled_from(sorted(bad_rows_table)))
                reason = bad_rows_table[row]
                lines.append(row)
                if reason is None:
                    expected.append(("a", "1500.0", 0.2, len(lines)))
                else:
                    counts[reason] = counts.get(reason, 0) + 1
                continue
            a, b, s = item
            if fmt == "tsv":
                a, b = (t.replace("\t", " ").replace("\n", " ").replace("\r", " ") for t in (a, b))
                lines.append(f"{a}\t{b}\t{s!r}")
            else:
                lines.append(json.dumps({"sentence1": a, "sentence2": b, "score": s}))
            expected.append((a, b, s / 5.0, len(lines)))
        path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass"))
        bad_rows = BadRows("skip")
        try:
            got = read_pairs(path, bad_rows=bad_rows)
        except DataError as err:
            assert not expected and err.reason in ("no_rows", "empty_file"), str(err)  # all bad, or all blank
            got = []
        assert [(e.text_a, e.text_b, e.score, int(e.source.rsplit(":", 1)[1])) for e in got] == expected
        assert bad_rows.counts == counts
        assert bad_rows.to_stats() == {
            "data/skipped_rows": sum(counts.values()),
            **{f"data/skipped_rows/{r}": n for r, n in sorted(counts.items())},
        }
        if counts:  # under error, the first bad row stops the read
            with pytest.raises(DataError) as info:
                read_pairs(path)
            assert info.value.reason in counts
