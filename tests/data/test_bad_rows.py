"""Malformed rows in every reader: under ``error`` a DataError naming ``path:line:``, what was expected and a
stable ``reason``; under ``skip`` the good rows (with their own line numbers) and exact counts by reason.
File-level problems raise under either policy. Also ``prepare_data`` / ``train`` reporting the skips."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from sbert_siamese.config import TrainConfig
from sbert_siamese.data.examples import read_examples
from sbert_siamese.data.prepare import prepare_data
from sbert_siamese.data.readers import (
    ROW_REASONS,
    BadRows,
    PairExample,
    dataset_to_pairs,
    load_hf_pairs,
    load_pairs,
    read_pairs,
    read_stsb,
    read_texts,
    read_texts_with_lines,
)
from sbert_siamese.errors import ConfigError, DataError
from sbert_siamese.losses import get_objective

NLI = ["entailment", "neutral", "contradiction"]
LATIN1 = "caf\xe9".encode("latin-1")  # 0xe9 is not UTF-8 on its own


def stsb_row(score: str, s1: str, s2: str) -> str:
    return "\t".join(["main-captions", "MSRvid", "2012test", "0001", score, s1, s2])


def jrow(**row) -> str:
    return json.dumps(row)


# ------------------------------------------------------------------------------------------------ readers
@dataclass(frozen=True)
class Reader:
    """How to write a good row (its first text is ``good <line>``) and how to read a file back as
    ``[(line, first text), ...]``."""

    suffix: str
    header: str | None
    good: object  # line number -> the row's text
    read: object  # (path, bad_rows) -> [(line, first text)]


def _line(source: str) -> int:
    return int(source.rsplit(":", 1)[1])


def _pairs(fmt):
    return lambda path, b: [(_line(e.source), e.text_a) for e in read_pairs(path, fmt, bad_rows=b)]


def _examples(fmt, text_columns, target, column=None, **kwargs):
    def read(path, b):
        examples, _ = read_examples(path, fmt, text_columns, target, column, bad_rows=b, **kwargs)
        return [(_line(e.source), e.texts[0]) for e in examples]

    return read


def _texts(path, b):
    texts, lines = read_texts_with_lines(path, bad_rows=b)
    return list(zip(lines, texts, strict=True))


READERS = {
    "stsb": Reader(
        ".csv",
        None,
        lambda n: stsb_row("2.5", f"good {n}", "other"),
        lambda path, b: [(_line(e.source), e.text_a) for e in read_stsb(path, bad_rows=b)],
    ),
    "csv": Reader(".csv", "sentence1,sentence2,score", lambda n: f"good {n},other,2.5", _pairs("csv")),
    "tsv": Reader(".tsv", "sentence1\tsentence2\tscore", lambda n: f"good {n}\tother\t2.5", _pairs("tsv")),
    "tsv_quoted": Reader(
        ".tsv", "sentence1\tsentence2\tscore", lambda n: f'"good {n}"\tother\t2.5', _pairs("tsv_quoted")
    ),
    "jsonl": Reader(
        ".jsonl",
        None,
        lambda n: jrow(sentence1=f"good {n}", sentence2="other", score=2.5),
        _pairs("jsonl"),
    ),
    "load_pairs": Reader(
        ".tsv",
        "sentence1\tsentence2\tscore",
        lambda n: f"good {n}\tother\t2.5",
        lambda path, b: [
            (_line(e.source), e.text_a)
            for e in load_pairs(Path(path).name, "tsv", Path(path).parent, bad_rows=b)
        ],
    ),
    "texts_txt": Reader(".txt", None, lambda n: f"good {n}", _texts),
    "texts_csv": Reader(".csv", "id,text", lambda n: f'{n},"good {n}"', _texts),
    "texts_tsv": Reader(".tsv", "text\tid", lambda n: f"good {n}\t{n}", _texts),
    "texts_jsonl": Reader(".jsonl", None, lambda n: jrow(text=f"good {n}"), _texts),
    "examples_binary": Reader(
        ".csv",
        "s1,s2,label",
        lambda n: f"good {n},other,1",
        _examples("csv", ["s1", "s2"], "binary", "label"),
    ),
    "examples_class": Reader(
        ".jsonl",
        None,
        lambda n: jrow(p=f"good {n}", h="other", gold="neutral"),
        _examples("jsonl", ["p", "h"], "class", "gold", label_names=NLI, num_labels=3),
    ),
    "examples_group": Reader(
        ".jsonl",
        None,
        lambda n: jrow(text=f"good {n}", cluster="q1"),
        _examples("jsonl", ["text"], "group", "cluster"),
    ),
    "examples_triplet": Reader(
        ".tsv", "a\tp\tn", lambda n: f"good {n}\tpos\tneg", _examples("tsv", ["a", "p", "n"], "none")
    ),
    "examples_score": Reader(
        ".tsv",
        "a\tb\ts",
        lambda n: f"good {n}\tother\t4",
        _examples("tsv_quoted", ["a", "b"], "score", "s"),
    ),
    "examples_stsb": Reader(
        ".csv",
        None,
        lambda n: stsb_row("2.5", f"good {n}", "other"),
        _examples("stsb", [], "score"),
    ),
}

BAD = object()  # where the bad row goes in a layout
HEADER = object()  # an stsb header line

# (reader, bad row, reason, parts of the message); the layout is good, BAD, good unless given.
CASES = [
    # STS-B: tab-separated, no header, no quoting
    ("stsb", "a line without tabs", "wrong_field_count", ["at least 7 tab-separated fields", "found 1"]),
    (
        "stsb",
        "main\tMSRvid\t2012\t1\t3.0\tsix fields",
        "wrong_field_count",
        ["(genre, file, year", "found 6"],
    ),
    ("stsb", stsb_row("abc", "a", "b"), "bad_score", ["score 'abc' is not a number"]),
    ("stsb", stsb_row("", "a", "b"), "bad_score", ["score '' is not a number"]),
    ("stsb", stsb_row("nan", "a", "b"), "score_not_finite", ["score 'nan' is not finite"]),
    ("stsb", stsb_row("-inf", "a", "b"), "score_not_finite", ["score '-inf' is not finite"]),
    ("stsb", stsb_row("5.5", "a", "b"), "score_out_of_range", ["score 5.5 is outside [0.0, 5.0]"]),
    ("stsb", stsb_row("-0.1", "a", "b"), "score_out_of_range", ["score -0.1 is outside [0.0, 5.0]"]),
    ("stsb", stsb_row("3", "", "b"), "empty_text", ["sentence1 is empty or missing"]),
    ("stsb", stsb_row("3", "a", "  "), "empty_text", ["sentence2 is empty or missing"]),
    (
        "stsb",
        stsb_row("3", "a", "b").encode() + LATIN1,
        "invalid_utf8",
        ["invalid UTF-8 byte 0xe9", "UTF-8 text"],
    ),
    # csv: header, standard quoting
    ("csv", "only,two", "wrong_field_count", ["expected 3 fields as in the header, found 2"]),
    ("csv", "a,b,1,extra", "wrong_field_count", ["expected 3 fields as in the header, found 4"]),
    ("csv", "a,b,high", "bad_score", ["score 'high' is not a number"]),
    ("csv", "a,b,NaN", "score_not_finite", ["score 'NaN' is not finite"]),
    ("csv", "a,b,1e999", "score_not_finite", ["score '1e999' is not finite"]),
    ("csv", "a,b,-1", "score_out_of_range", ["score -1.0 is outside [0.0, 5.0]"]),
    ("csv", 'a,"",1', "empty_text", ["column 'sentence2' is empty or missing"]),
    ("csv", "   ,b,1", "empty_text", ["column 'sentence1' is empty or missing"]),
    ("csv", b"a," + LATIN1 + b",1", "invalid_utf8", ["invalid UTF-8 byte 0xe9"]),
    ("csv", '"' + "x" * 140_000 + '",b,1', "malformed_row", ["cannot parse this row", "field limit"]),
    # tsv: header, no quoting
    ("tsv", "a\tb", "wrong_field_count", ["expected 3 fields as in the header, found 2"]),
    ("tsv", 'a "quoted\tb\t1\tx', "wrong_field_count", ["found 4"]),
    ("tsv", "a\tb\tfive", "bad_score", ["score 'five' is not a number"]),
    ("tsv", "a\tb\tinf", "score_not_finite", ["not finite"]),
    ("tsv", "a\tb\t6", "score_out_of_range", ["outside [0.0, 5.0]"]),
    ("tsv", "a\t\t1", "empty_text", ["column 'sentence2' is empty"]),
    ("tsv", LATIN1 + b"\tb\t1", "invalid_utf8", ["invalid UTF-8 byte 0xe9"]),
    # tsv_quoted: tabs inside quotes
    ("tsv_quoted", '"a\tb"\tc', "wrong_field_count", ["expected 3 fields as in the header, found 2"]),
    ("tsv_quoted", '"say ""hi"""\t""\t1', "empty_text", ["column 'sentence2' is empty"]),
    ("tsv_quoted", '"a"\t"b"\t"x"', "bad_score", ["score 'x' is not a number"]),
    # jsonl
    (
        "jsonl",
        '{"sentence1": "a", "sen',
        "invalid_json",
        ["invalid JSON", "expected one JSON object per line"],
    ),
    ("jsonl", "{'sentence1': 'a'}", "invalid_json", ["invalid JSON"]),
    ("jsonl", "[" * 100_000, "invalid_json", ["invalid JSON", "RecursionError"]),
    ("jsonl", "[1, 2]", "not_an_object", ["expected a JSON object, found list"]),
    ("jsonl", '"just text"', "not_an_object", ["expected a JSON object, found str"]),
    ("jsonl", jrow(sentence1="a", score=1), "missing_column", ["missing column 'sentence2'", "['score', "]),
    ("jsonl", jrow(sentence1="a", sentence2=None, score=1), "empty_text", ["column 'sentence2' is empty"]),
    (
        "jsonl",
        jrow(sentence1="a", sentence2=["b"], score=1),
        "not_a_string",
        ["'sentence2' must be text, found list"],
    ),
    ("jsonl", jrow(sentence1={"t": 1}, sentence2="b", score=1), "not_a_string", ["found dict"]),
    ("jsonl", jrow(sentence1="a", sentence2="b", score="x"), "bad_score", ["score 'x' is not a number"]),
    ("jsonl", jrow(sentence1="a", sentence2="b", score=None), "bad_score", ["score None is not a number"]),
    ("jsonl", jrow(sentence1="a", sentence2="b", score=[1]), "bad_score", ["score [1] is not a number"]),
    ("jsonl", '{"sentence1": "a", "sentence2": "b", "score": NaN}', "score_not_finite", ["not finite"]),
    ("jsonl", '{"sentence1": "a", "sentence2": "b", "score": -Infinity}', "score_not_finite", ["not finite"]),
    ("jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1e999}', "score_not_finite", ["not finite"]),
    ("jsonl", jrow(sentence1="a", sentence2="b", score=7), "score_out_of_range", ["score 7.0 is outside"]),
    (
        "jsonl",
        jrow(sentence1="a", sentence2="b", score=10**400),
        "score_out_of_range",
        ["is outside [0.0, 5.0]"],
    ),
    ("jsonl", '{"sentence1": "a\\ud800", "sentence2": "b", "score": 1}', "invalid_utf8", ["lone surrogate"]),
    ("jsonl", b'{"sentence1": "' + LATIN1 + b'", "sentence2": "b", "score": 1}', "invalid_utf8", ["0xe9"]),
    # load_pairs (data_dir + relative path)
    ("load_pairs", "a\tb\t9", "score_out_of_range", ["score 9.0 is outside"]),
    # read_texts
    ("texts_txt", "   ", "empty_text", ["text is empty or missing"]),
    ("texts_txt", "", "empty_text", ["text is empty or missing"]),
    ("texts_txt", LATIN1, "invalid_utf8", ["invalid UTF-8 byte 0xe9"]),
    ("texts_csv", "7", "wrong_field_count", ["expected 2 fields as in the header, found 1"]),
    ("texts_csv", '7,""', "empty_text", ["column 'text' is empty"]),
    ("texts_csv", b"7," + LATIN1, "invalid_utf8", ["0xe9"]),
    ("texts_tsv", "a\tb\tc", "wrong_field_count", ["found 3"]),
    ("texts_jsonl", jrow(other="x"), "missing_column", ["no column 'text'; found columns ['other']"]),
    ("texts_jsonl", jrow(text=5), "not_a_string", ["column 'text' must be a string, found 5"]),
    ("texts_jsonl", jrow(text=None), "not_a_string", ["must be a string, found None"]),
    ("texts_jsonl", jrow(text=" \t "), "empty_text", ["column 'text' is empty"]),
    ("texts_jsonl", '{"text": "open', "invalid_json", ["invalid JSON"]),
    ("texts_jsonl", "3", "not_an_object", ["found int"]),
    # read_examples: labels, groups, k texts, scores
    ("examples_binary", "a,b,2", "bad_label", ["label '2' is not one of [0, 1]"]),
    ("examples_binary", "a,b,yes", "bad_label", ["label 'yes' is not one of [0, 1]"]),
    ("examples_binary", "a,b,0.5", "bad_label", ["label '0.5'"]),
    ("examples_binary", "a,,1", "empty_text", ["column 's2' is empty"]),
    ("examples_binary", "a,b", "wrong_field_count", ["found 2"]),
    (
        "examples_class",
        jrow(p="a", h="b", gold="maybe"),
        "bad_label",
        ["'maybe' is not one of", "contradiction"],
    ),
    ("examples_class", jrow(p="a", h="b", gold=3), "bad_label", ["label 3 is not one of"]),
    ("examples_class", jrow(p="a", h="b"), "missing_column", ["missing column 'gold'"]),
    ("examples_group", jrow(text="a", cluster=None), "bad_label", ["group id None is not usable"]),
    ("examples_group", jrow(text="a", cluster=""), "bad_label", ["group id '' is not usable"]),
    ("examples_group", jrow(text="a", cluster=[1]), "bad_label", ["group id [1]"]),
    ("examples_triplet", "a\tp\t ", "empty_text", ["column 'n' is empty"]),
    ("examples_triplet", "a\tp", "wrong_field_count", ["expected 3 fields as in the header, found 2"]),
    ("examples_score", "a\tb\t5.01", "score_out_of_range", ["score 5.01 is outside"]),
    ("examples_score", "a\tb\t", "bad_score", ["score '' is not a number"]),
    ("examples_stsb", stsb_row("x", "a", "b"), "bad_score", ["score 'x' is not a number"]),
]
# A header where the stsb format has none: the first line.
HEADER_CASES = [
    ("stsb", "genre\tfile\tyear\tid\tscore\tsentence1\tsentence2"),
    ("stsb", "sentence1\tsentence2\tscore"),
    ("stsb", "Genre\tFile\tYear\tID\tGold Score\tS1\tS2"),
    ("examples_stsb", "genre\tfile\tyear\tid\tscore\tsentence1\tsentence2"),
]


def write_case(tmp_path: Path, reader: Reader, layout: list) -> tuple[Path, list[tuple[int, str]], int]:
    """Write the rows of ``layout`` (``BAD`` rows are bytes/str, the rest None = a good row); return the
    path, the good rows as ``(line, first text)`` and the line of the first bad row."""
    lines: list[bytes] = [reader.header.encode()] if reader.header else []
    good, bad_line = [], None
    for item in layout:
        n = len(lines) + 1
        if item is None:
            lines.append(reader.good(n).encode())
            good.append((n, f"good {n}"))
        else:
            lines.append(item if isinstance(item, bytes) else item.encode())
            bad_line = bad_line or n
    path = tmp_path / f"data{reader.suffix}"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, good, bad_line


def _id(case):
    reader, row, reason = case[:3]
    shown = row if isinstance(row, str) else row.decode("latin-1")
    return f"{reader}-{reason}-{shown[:20]}"


@pytest.mark.parametrize("reader_name, row, reason, parts", CASES, ids=map(_id, CASES))
def test_bad_row_error_names_path_line_and_what_was_expected(tmp_path, reader_name, row, reason, parts):
    reader = READERS[reader_name]
    path, _, line = write_case(tmp_path, reader, [None, row, None])
    for bad_rows in (None, BadRows("error")):
        with pytest.raises(DataError) as info:
            reader.read(path, bad_rows)
        message = str(info.value)
        assert message.startswith(f"{path}:{line}: "), message[:200]
        for part in parts:
            assert part in message, (part, message[:300])
        assert (info.value.path, info.value.line, info.value.reason) == (str(path), line, reason)
        assert reason in ROW_REASONS
        assert len(message) < 400  # a whole field is not pasted into the message
        if bad_rows is not None:
            assert bad_rows.total == 0 and bad_rows.to_stats() == {"data/skipped_rows": 0}


@pytest.mark.parametrize("reader_name, row, reason, parts", CASES, ids=map(_id, CASES))
def test_bad_row_skip_keeps_the_good_rows_and_counts_the_reason(tmp_path, reader_name, row, reason, parts):
    reader = READERS[reader_name]
    path, good, line = write_case(tmp_path, reader, [None, None, row, None, row, None])
    bad_rows = BadRows("skip")
    assert reader.read(path, bad_rows) == good  # the kept rows keep their own line numbers
    assert bad_rows.counts == {reason: 2}
    assert bad_rows.total == 2
    assert bad_rows.to_stats() == {"data/skipped_rows": 2, f"data/skipped_rows/{reason}": 2}
    assert bad_rows.examples[0].startswith(f"{path}:{line}: ")
    assert len(bad_rows.examples) == 2


@pytest.mark.parametrize("reader_name, header", HEADER_CASES)
def test_stsb_header_is_unexpected(tmp_path, reader_name, header):
    reader = READERS[reader_name]
    path, good, _ = write_case(tmp_path, reader, [header, None, None])
    with pytest.raises(DataError) as info:
        reader.read(path, None)
    assert str(info.value).startswith(f"{path}:1: line 1 looks like a header; the stsb format has none")
    assert "genre, file, year, id, score, sentence1, sentence2" in str(info.value)
    assert info.value.reason == "unexpected_header"
    bad_rows = BadRows("skip")
    assert reader.read(path, bad_rows) == good
    assert bad_rows.counts == {"unexpected_header": 1}


def test_stsb_only_the_first_line_can_be_a_header(tmp_path):
    # A later line with "score" in it is a bad score, not a header; a first line with a number is data.
    path, _, _ = write_case(tmp_path, READERS["stsb"], [None, stsb_row("score", "a", "b")])
    with pytest.raises(DataError) as info:
        read_stsb(path)
    assert info.value.reason == "bad_score" and info.value.line == 2
    path.write_text(stsb_row("5", "score", "sentence1") + "\n")
    assert read_stsb(path) == [PairExample("score", "sentence1", 1.0, f"{path}:1")]


def test_many_reasons_in_one_file_exact_counts(tmp_path):
    rows = [
        "sentence1\tsentence2\tscore",  # 1
        "good 2\tother\t1",  # 2
        "a\tb",  # 3 wrong_field_count
        "a\tb\tx",  # 4 bad_score
        "a\tb\tnan",  # 5 score_not_finite
        "a\tb\t8",  # 6 score_out_of_range
        "\tb\t1",  # 7 empty_text
        "",  # 8 blank: not a row, not counted
        "good 9\tother\t5",  # 9
        "a\tb\t-3",  # 10 score_out_of_range
    ]
    path = tmp_path / "mixed.tsv"
    path.write_bytes(("\n".join(rows) + "\n").encode() + LATIN1 + b"\tb\t1\n" + b"good 12\tother\t0\n")
    bad_rows = BadRows("skip")
    pairs = read_pairs(path, bad_rows=bad_rows)
    assert pairs == [
        PairExample("good 2", "other", 0.2, f"{path}:2"),
        PairExample("good 9", "other", 1.0, f"{path}:9"),
        PairExample("good 12", "other", 0.0, f"{path}:12"),
    ]
    assert bad_rows.counts == {
        "wrong_field_count": 1,
        "bad_score": 1,
        "score_not_finite": 1,
        "score_out_of_range": 2,
        "empty_text": 1,
        "invalid_utf8": 1,
    }
    assert bad_rows.to_stats() == {
        "data/skipped_rows": 7,
        "data/skipped_rows/bad_score": 1,
        "data/skipped_rows/empty_text": 1,
        "data/skipped_rows/invalid_utf8": 1,
        "data/skipped_rows/score_not_finite": 1,
        "data/skipped_rows/score_out_of_range": 2,
        "data/skipped_rows/wrong_field_count": 1,
    }
    # Under error the first problem stops the read (bytes are checked before rows are parsed).
    with pytest.raises(DataError, match=r"mixed\.tsv:11: invalid UTF-8 byte 0xe9"):
        read_pairs(path)
    path.write_bytes(("\n".join(rows) + "\n").encode())
    with pytest.raises(DataError, match=r"mixed\.tsv:3: expected 3 fields as in the header, found 2"):
        read_pairs(path)


def test_invalid_utf8_inside_a_quoted_multiline_csv_field_drops_that_record_only(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(
        b'sentence1,sentence2,score\n"multi\nline ' + LATIN1 + b'",x,3\ngood 4,other,4\n"two\nlines",y,1\n'
    )
    with pytest.raises(DataError) as info:
        read_pairs(path)
    assert str(info.value).startswith(f"{path}:3: invalid UTF-8 byte 0xe9")
    bad_rows = BadRows("skip")
    assert read_pairs(path, bad_rows=bad_rows) == [
        PairExample("good 4", "other", 0.8, f"{path}:4"),
        PairExample("two\nlines", "y", 0.2, f"{path}:6"),
    ]
    assert bad_rows.counts == {"invalid_utf8": 1}


def test_read_texts_skip_drops_lines_and_says_which_were_kept(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"first\n\nthird\n" + LATIN1 + b"\n  \nsixth\n")
    with pytest.raises(DataError, match=r"in\.txt:4: invalid UTF-8 byte 0xe9"):
        read_texts(path)
    path.write_bytes(b"first\n\nthird\n")
    with pytest.raises(DataError, match=r"in\.txt:2: text is empty"):
        read_texts(path)  # error: row i of the output is line i of the input
    path.write_bytes(b"first\n\nthird\n" + LATIN1 + b"\n  \nsixth\n")
    bad_rows = BadRows("skip")
    assert read_texts(path, bad_rows=bad_rows) == ["first", "third", "sixth"]
    assert read_texts_with_lines(path, bad_rows=BadRows("skip")) == (["first", "third", "sixth"], [1, 3, 6])
    assert bad_rows.counts == {"empty_text": 2, "invalid_utf8": 1}
    good = tmp_path / "good.txt"
    good.write_text("a\nb\n")
    assert read_texts_with_lines(good) == (["a", "b"], [1, 2])


# --------------------------------------------------------------------------------- parquet and datasets
def test_parquet_pairs_rows_count_from_zero(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pairs.parquet"
    table = {"sentence1": ["a", None, "c", "d", "e"], "sentence2": ["b"] * 5, "score": [1.0, 2, 7, None, 5]}
    pq.write_table(pa.table(table), path)
    with pytest.raises(DataError) as info:
        read_pairs(path)
    assert str(info.value) == f"{path}: column 'sentence1' (row 1) is empty or missing"
    assert info.value.reason == "empty_text"
    bad_rows = BadRows("skip")
    assert read_pairs(path, bad_rows=bad_rows) == [
        PairExample("a", "b", 0.2, f"{path}[0]"),
        PairExample("e", "b", 1.0, f"{path}[4]"),
    ]
    assert bad_rows.counts == {"empty_text": 1, "score_out_of_range": 1, "bad_score": 1}
    assert f"{path}: row 2: score 7.0 is outside [0.0, 5.0]" in bad_rows.examples


def test_parquet_examples_and_texts_count_rows_from_one(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "labelled.parquet"
    pq.write_table(pa.table({"s1": ["a", "b", "c"], "s2": ["x", "y", "z"], "label": [1, 5, 0]}), path)
    with pytest.raises(DataError) as info:
        read_examples(path, None, ["s1", "s2"], "binary", "label")
    assert str(info.value).startswith(f"{path}:2: label 5 is not one of [0, 1]")
    bad_rows = BadRows("skip")
    examples, _ = read_examples(path, None, ["s1", "s2"], "binary", "label", bad_rows=bad_rows)
    assert [(e.texts, e.target, e.source) for e in examples] == [
        (("a", "x"), 1, f"{path}:1"),
        (("c", "z"), 0, f"{path}:3"),
    ]
    assert bad_rows.counts == {"bad_label": 1}

    texts = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": ["one", None, "  ", "four"]}), texts)
    with pytest.raises(DataError, match=r"texts\.parquet:2: column 'text' must be a string, found None"):
        read_texts(texts)
    bad_rows = BadRows("skip")
    assert read_texts_with_lines(texts, bad_rows=bad_rows) == (["one", "four"], [1, 4])
    assert bad_rows.counts == {"not_a_string": 1, "empty_text": 1}


@pytest.fixture
def hf(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


def test_datasets_skip_bad_rows(hf, tmp_path):
    ds = hf.Dataset.from_dict(
        {
            "sentence1": ["a", "", "c", "d", "e"],
            "sentence2": ["b", "b", "b", "b", "b"],
            "score": [5.0, 1.0, float("nan"), -2.0, 0.0],
        }
    )
    expected = [PairExample("a", "b", 1.0, "dataset[0]"), PairExample("e", "b", 0.0, "dataset[4]")]
    counts = {"empty_text": 1, "score_not_finite": 1, "score_out_of_range": 1}
    with pytest.raises(DataError) as info:
        dataset_to_pairs(ds)
    assert str(info.value) == "dataset: column 'sentence1' (row 1) is empty or missing"
    bad_rows = BadRows("skip")
    assert dataset_to_pairs(ds, bad_rows=bad_rows) == expected and bad_rows.counts == counts
    bad_rows = BadRows("skip")
    assert load_hf_pairs(ds, bad_rows=bad_rows) == expected and bad_rows.counts == counts
    ds.save_to_disk(str(tmp_path / "saved"))
    bad_rows = BadRows("skip")
    loaded = load_pairs("saved", "hf", data_dir=tmp_path, bad_rows=bad_rows)
    assert [(e.text_a, e.score) for e in loaded] == [("a", 1.0), ("e", 0.0)] and bad_rows.counts == counts
    with pytest.raises(DataError, match="row 1"):
        load_pairs("saved", "hf", data_dir=tmp_path, bad_rows=BadRows("error"))
    with pytest.raises(DataError, match=r"no pairs found \(2 bad row\(s\) skipped\)"):
        dataset_to_pairs(ds.select([1, 2]), bad_rows=BadRows("skip"))


# ------------------------------------------------------------------------------------------------ senteval
def test_senteval_bad_lines(tmp_path):
    folder = tmp_path / "nli"
    folder.mkdir()
    (folder / "s1.train").write_bytes(b"A man eats .\nA dog runs .\n \nKids play .\nBirds fly .\n")
    (folder / "s2.train").write_bytes(b"A person eats .\nA cat sleeps .\nx\n" + LATIN1 + b"\nSky .\n")
    (folder / "labels.train").write_bytes(b"entailment\nmaybe\nneutral\nneutral\ncontradiction\n")
    args = (folder / "train", "senteval", [], "class", None, None, NLI, 3)
    with pytest.raises(DataError) as info:
        read_examples(*args)
    assert str(info.value).startswith(f"{folder / 's2.train'}:4: invalid UTF-8 byte 0xe9")
    (folder / "s2.train").write_bytes(b"A person eats .\nA cat sleeps .\nx\ny\nSky .\n")
    with pytest.raises(DataError, match=r"labels\.train:2: label 'maybe' is not one of"):
        read_examples(*args)
    (folder / "s2.train").write_bytes(b"A person eats .\nA cat sleeps .\nx\n" + LATIN1 + b"\nSky .\n")
    bad_rows = BadRows("skip")
    examples, _ = read_examples(*args, bad_rows=bad_rows)
    assert [(e.texts, e.target, e.source) for e in examples] == [
        (("A man eats .", "A person eats ."), 0, f"{folder / 's1.train'}:1"),
        (("Birds fly .", "Sky ."), 2, f"{folder / 's1.train'}:5"),
    ]
    assert bad_rows.counts == {"bad_label": 1, "empty_text": 1, "invalid_utf8": 1}
    (folder / "labels.train").write_text("entailment\n")
    with pytest.raises(DataError, match=r"differ in length: \[5, 5, 1\]"):
        read_examples(*args, bad_rows=BadRows("skip"))


# ------------------------------------------------------------------------------- file-level: always raised
@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize(
    "reader_name, content, parts, line",
    [
        ("csv", None, ["file not found"], None),
        ("stsb", None, ["file not found"], None),
        ("texts_txt", None, ["file not found"], None),
        ("jsonl", b"", ["file is empty; expected sentence pairs"], None),
        ("texts_txt", b"\n \n", ["file is empty; expected texts"], None),
        ("tsv", b"\n\t\n", ["file is empty"], None),
        ("csv", b"sentence1,sentence2,label\na,b,1\n", ["missing column(s) ['score'] in the header"], 1),
        ("texts_csv", b"id,body\n1,x\n", ["missing column(s) ['text'] in the header"], 1),
        ("csv", b"sentence1,sentence2,score\n", ["no pairs found"], None),
        ("csv", b"sentence1,sentence2,sc" + LATIN1 + b"\na,b,1\n", ["invalid UTF-8 byte 0xe9"], 1),
        ("examples_triplet", b"a\tp\tn\n", ["no examples found"], None),
        ("texts_csv", b"id,text\n", ["no texts found"], None),
    ],
)
def test_file_level_problems_raise_under_either_policy(tmp_path, policy, reader_name, content, parts, line):
    reader = READERS[reader_name]
    path = tmp_path / f"data{reader.suffix}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        reader.read(path, BadRows(policy))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    for part in parts:
        assert part in message


def test_a_directory_and_a_corrupt_parquet_raise_under_skip(tmp_path):
    with pytest.raises(DataError, match="expected a file, found a directory"):
        read_stsb(tmp_path, bad_rows=BadRows("skip"))
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    for read in (read_pairs, read_texts):
        with pytest.raises(DataError, match=r"bad\.parquet: cannot read parquet"):
            read(path, bad_rows=BadRows("skip"))
    with pytest.raises(DataError, match=r"missing\.parquet: file not found"):
        read_pairs(tmp_path / "missing.parquet", bad_rows=BadRows("skip"))


@pytest.mark.parametrize("reader_name", ["stsb", "csv", "tsv", "jsonl", "texts_txt", "examples_binary"])
def test_all_rows_bad_says_no_rows_found_with_the_count(tmp_path, reader_name):
    reader = READERS[reader_name]
    path, _, _ = write_case(tmp_path, reader, [LATIN1, LATIN1, LATIN1 + b"x"])
    with pytest.raises(DataError) as info:
        reader.read(path, BadRows("skip"))
    assert str(info.value).startswith(f"{path}: no ")
    assert "found (3 bad row(s) skipped)" in str(info.value)
    assert info.value.reason == "no_rows"


# ------------------------------------------------------------------------------------------------ BadRows
def test_bad_rows_policy_and_counts():
    with pytest.raises(ConfigError, match=r"on_bad_rows must be one of error, skip; got 'ignore'"):
        BadRows("ignore")
    err = DataError("score 'x' is not a number", "f.tsv", 3, "bad_score")
    with pytest.raises(DataError) as info:
        BadRows().handle(err)
    assert info.value is err
    bad_rows = BadRows("skip", max_examples=2)
    for line in (3, 4, 5):
        bad_rows.handle(DataError("score 'x' is not a number", "f.tsv", line, "bad_score"))
    start = bad_rows.copy()
    bad_rows.handle(DataError("column 'a' is empty or missing", "g.tsv", 9, "empty_text"))
    assert bad_rows.counts == {"bad_score": 3, "empty_text": 1} and bad_rows.total == 4
    assert bad_rows.examples == ["f.tsv:3: score 'x' is not a number", "f.tsv:4: score 'x' is not a number"]
    assert bad_rows.to_stats("x") == {"x": 4, "x/bad_score": 3, "x/empty_text": 1}
    later = bad_rows.since(start)
    assert later.counts == {"empty_text": 1} and later.total == 1
    assert start.counts == {"bad_score": 3}
    assert bad_rows.summary(1) == (
        "skipped 4 bad row(s) (bad_score: 3, empty_text: 1); first: f.tsv:3: score 'x' is not a number"
    )
    # Not about one row (no reason, or a file-level one): raised under skip too.
    for file_level in (DataError("file not found", "h.tsv"), DataError("x", "h.tsv", None, "no_rows")):
        with pytest.raises(DataError):
            bad_rows.handle(file_level)
    assert bad_rows.total == 4


# ---------------------------------------------------------------------------------- prepare_data and train
def write_sts(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    header = "sentence1\tsentence2\tscore\n"
    rows = [f"a man plays guitar {i}\ta man plays music {i}\t{i % 6}" for i in range(8)]
    (folder / "train.tsv").write_bytes(
        (header + "\n".join(rows[:3] + ["bad\trow", "x\ty\tNaN"] + rows[3:])).encode()
        + b"\n"
        + LATIN1
        + b"\tb\t1\n"
    )
    (folder / "dev.tsv").write_text(
        header + "dev one\tdev two\t3\n\tempty\t2\ndev three\tdev four\t9\n" + rows[0]
    )
    (folder / "test.tsv").write_text(header + "test one\ttest two\t1\nt\tu\tabc\ntest three\ttest four\t4\n")


def sts_config(folder: Path, **overrides) -> TrainConfig:
    values = dict(
        data_format="tsv",
        data_dir=str(folder),
        train_data="train.tsv",
        dev_data="dev.tsv",
        test_data="test.tsv",
        loss="cosine",
        on_bad_rows="skip",
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_prepare_data_skips_counts_and_logs(tmp_path, caplog):
    write_sts(tmp_path)
    with pytest.raises(DataError) as info:
        prepare_data(sts_config(tmp_path, on_bad_rows="error"), get_objective("cosine"))
    assert str(info.value).startswith(f"{tmp_path / 'train.tsv'}:12: invalid UTF-8 byte 0xe9")

    with caplog.at_level(logging.WARNING, logger="sbert_siamese.data.prepare"):
        data = prepare_data(sts_config(tmp_path), get_objective("cosine"))
    assert len(data.train) == 8 and len(data.dev) == 2 and len(data.test) == 2
    assert [e.source.rsplit(":", 1)[1] for e in data.dev] == ["2", "5"]
    expected = {
        "data/skipped_rows": 6,
        "data/skipped_rows/empty_text": 1,
        "data/skipped_rows/invalid_utf8": 1,
        "data/skipped_rows/score_not_finite": 1,
        "data/skipped_rows/score_out_of_range": 1,
        "data/skipped_rows/wrong_field_count": 1,
        "data/skipped_rows/bad_score": 1,
    }
    assert {k: v for k, v in data.stats.items() if k.startswith("data/skipped_rows")} == expected
    records = [r for r in caplog.records if r.name == "sbert_siamese.data.prepare"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "skipped 6 bad row(s) (bad_score: 1, empty_text: 1, invalid_utf8: 1, " in message
    assert message.count(str(tmp_path)) == 3  # the first three examples, file:line: problem
    assert f"{tmp_path / 'train.tsv'}:5: expected 3 fields as in the header, found 2" in message


def test_prepare_data_without_bad_rows_adds_no_stats_and_logs_nothing(tmp_path, caplog):
    write_sts(tmp_path)
    (tmp_path / "train.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t1\nc\td\t2\n")
    (tmp_path / "dev.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t1\n")
    (tmp_path / "test.tsv").write_text("sentence1\tsentence2\tscore\nc\td\t1\n")
    with caplog.at_level(logging.WARNING, logger="sbert_siamese.data.prepare"):
        data = prepare_data(sts_config(tmp_path), get_objective("cosine"))
    assert not any(k.startswith("data/skipped_rows") for k in data.stats)
    assert not [r for r in caplog.records if r.name == "sbert_siamese.data.prepare"]
    assert data.bad_rows.total == 0


def test_prepare_data_shared_collector_across_calls(tmp_path):
    write_sts(tmp_path)
    shared = BadRows("skip")
    prepare_data(sts_config(tmp_path), get_objective("cosine"), bad_rows=shared)
    data = prepare_data(sts_config(tmp_path, dev_data=None, test_data=None), get_objective("cosine"), shared)
    assert shared.total == 6 + 3 and data.stats["data/skipped_rows"] == 9


def test_prepare_data_all_rows_bad_names_the_file(tmp_path):
    write_sts(tmp_path)
    (tmp_path / "test.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t6\nc\t\t1\n")
    with pytest.raises(DataError) as info:
        prepare_data(sts_config(tmp_path), get_objective("cosine"))
    assert str(info.value) == f"{tmp_path / 'test.tsv'}: no pairs found (2 bad row(s) skipped)"


def test_prepare_data_reads_labelled_tasks_and_extra_sources_with_the_policy(tmp_path):
    (tmp_path / "q.csv").write_text("q1,q2,dup\na,b,1\nc,d,2\ne,f,0\ng,h,1\ni,j,0\nk,l,1\n")
    (tmp_path / "extra.jsonl").write_text('{"q1": "m", "q2": "n", "dup": 1}\n{"q1": "o"}\n')
    config = TrainConfig(
        data_format="csv",
        data_dir=str(tmp_path),
        train_data="q.csv",
        extra_train_data=[{"path": "extra.jsonl", "data_format": "jsonl"}],
        dev_data=None,
        test_data=None,
        text_a_column="q1",
        text_b_column="q2",
        label_column="dup",
        loss="contrastive",
        on_bad_rows="skip",
    )
    data = prepare_data(config, get_objective("contrastive"))
    assert [e.texts for e in data.train] == [
        ("a", "b"),
        ("e", "f"),
        ("g", "h"),
        ("i", "j"),
        ("k", "l"),
        ("m", "n"),
    ]
    assert data.stats["data/skipped_rows/bad_label"] == 1
    assert data.stats["data/skipped_rows/missing_column"] == 1
    with pytest.raises(DataError, match=r"q\.csv:3: label '2' is not one of \[0, 1\]"):
        prepare_data(dataclasses.replace(config, on_bad_rows="error"), get_objective("contrastive"))


def test_train_reports_skipped_rows_in_its_metrics(tmp_path, tiny_bert_dir):
    from sbert_siamese.training.trainer import train

    write_sts(tmp_path)
    config = sts_config(
        tmp_path,
        model=str(tiny_bert_dir),
        batch_size=4,
        max_steps=1,
        eval_steps=1,
        output_dir=str(tmp_path / "out"),
        plots=False,
    )
    result = train(config, save=False)
    assert result.metrics["data/skipped_rows"] == 6
    assert result.metrics["data/skipped_rows/score_not_finite"] == 1


def test_unbalanced_quote_in_csv_names_where_the_record_starts(tmp_path):
    # The quote runs on to the next line: one record over lines 3-4, reported at its end like a source.
    path, _, _ = write_case(tmp_path, READERS["csv"], [None, 'a,"b, with comma,1', 'c",d,2', None])
    with pytest.raises(DataError) as info:
        read_pairs(path)
    assert str(info.value) == (
        f"{path}:4: expected 3 fields as in the header, found 4 (the record spans lines 3-4: an unbalanced "
        "quote?)"
    )
    bad_rows = BadRows("skip")
    assert [e.source for e in read_pairs(path, bad_rows=bad_rows)] == [f"{path}:2", f"{path}:5"]
    assert bad_rows.counts == {"wrong_field_count": 1}


def test_a_bare_carriage_return_does_not_shift_line_numbers(tmp_path):
    """Only \\n ends a line: a \\r inside an unquoted field is a malformed row on its own line, and the rows
    after it (and a line with a bad byte) keep their real line numbers."""
    path = tmp_path / "pairs.csv"
    path.write_bytes(
        b"sentence1,sentence2,score\n"
        b"good one,also good,1.0\n"
        b"split\rhere,x,2.0\n"
        b"bad \xff byte,y,3.0\n"
        b"last one,z,4.0\n"
    )
    bad = BadRows("skip")
    pairs = read_pairs(path, bad_rows=bad)
    assert [(p.text_a, p.source) for p in pairs] == [("good one", f"{path}:2"), ("last one", f"{path}:5")]
    assert bad.counts == {"invalid_utf8": 1, "malformed_row": 1}
    assert [e.split(": ")[0] for e in bad.examples] == [f"{path}:4", f"{path}:3"]
