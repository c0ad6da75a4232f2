"""Plain-text readers (encode, search, dedup inputs): one text per line or row, errors with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sbert_siamese.data.texts import read_texts
from sbert_siamese.errors import ConfigError, DataError


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_read_texts_txt_one_text_per_line(tmp_path):
    path = write(tmp_path / "in.txt", "first line\nsecond, with comma\n日本語 é\n")
    assert read_texts(path) == ["first line", "second, with comma", "日本語 é"]
    assert read_texts(write(tmp_path / "no-newline.txt", "a\r\nb")) == ["a", "b"]


def test_read_texts_txt_blank_line_is_an_error_so_rows_match_lines(tmp_path):
    path = write(tmp_path / "in.txt", "first line\n\n   \nsecond\n")
    with pytest.raises(DataError, match=r"in\.txt:2: text is empty"):
        read_texts(path)


def test_read_texts_jsonl_null_or_number_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"in\.jsonl:2: column 'text' must be a string, found None"):
        read_texts(write(tmp_path / "in.jsonl", '{"text": "ok"}\n{"text": null}\n'))
    with pytest.raises(DataError, match=r"in\.jsonl:1: column 'text' must be a string, found 5"):
        read_texts(write(tmp_path / "in.jsonl", '{"text": 5}\n'))


def test_read_texts_csv_with_quoted_commas(tmp_path):
    path = write(tmp_path / "in.csv", 'id,text,other\n1,"Hello, world",x\n2,"She said ""hi""",y\n3,plain,z\n')
    assert read_texts(path) == ["Hello, world", 'She said "hi"', "plain"]


def test_read_texts_csv_other_column(tmp_path):
    path = write(tmp_path / "in.csv", "sentence,text\nA,a\nB,b\n")
    assert read_texts(path, column="sentence") == ["A", "B"]


def test_read_texts_csv_quoted_newline_kept(tmp_path):
    # A quoted field may span lines (standard CSV); the newline is part of the text.
    path = write(tmp_path / "in.csv", 'text\n"two\nlines"\nnext\n')
    assert read_texts(path) == ["two\nlines", "next"]


def test_read_texts_csv_trailing_blank_line(tmp_path):
    # Blank lines are skipped in .txt files and by read_pairs; a CSV ending in an empty line is common.
    path = write(tmp_path / "in.csv", "text\na\nb\n\n")
    assert read_texts(path) == ["a", "b"]


def test_read_texts_tsv(tmp_path):
    path = write(tmp_path / "in.tsv", 'text\tscore\nHe said "hello\t1\na, b\t2\n')
    assert read_texts(path) == ['He said "hello', "a, b"]


def test_read_texts_jsonl(tmp_path):
    lines = [json.dumps({"text": "first", "id": 1}), "", json.dumps({"text": '日本 "q"', "id": 2})]
    path = write(tmp_path / "in.jsonl", "\n".join(lines) + "\n")
    assert read_texts(path) == ["first", '日本 "q"']


@pytest.mark.parametrize(
    "name, text",
    [("in.csv", "sentence,other\na,b\n"), ("in.tsv", "sentence\tother\na\tb\n")],
)
def test_read_texts_missing_column_names_line_1(tmp_path, name, text):
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as info:
        read_texts(path)
    assert str(info.value).startswith(f"{path}:1: ")
    assert "'text'" in str(info.value) and "['sentence', 'other']" in str(info.value)


def test_read_texts_jsonl_missing_key_and_bad_json(tmp_path):
    path = write(tmp_path / "in.jsonl", '{"text": "ok"}\n{"sentence": "no text key"}\n')
    with pytest.raises(DataError) as info:
        read_texts(path)
    assert str(info.value).startswith(f"{path}:2: ") and "'text'" in str(info.value)
    path = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n\n{"text": "broken"\n')
    with pytest.raises(DataError) as info:
        read_texts(path)
    assert str(info.value).startswith(f"{path}:3: invalid JSON")


def test_read_texts_unsupported_suffix(tmp_path):
    path = write(tmp_path / "in.docx", "whatever")
    with pytest.raises(ConfigError) as info:
        read_texts(path)
    assert "'.docx'" in str(info.value) and ".txt, .csv, .tsv, .jsonl or .parquet" in str(info.value)


def test_read_texts_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["first text", "second text"], "id": [1, 2]}), path)
    assert read_texts(path) == ["first text", "second text"]
    with pytest.raises(DataError, match="no column 'body'"):
        read_texts(path, "body")
    pq.write_table(pa.table({"text": ["ok", None]}), path)
    with pytest.raises(DataError) as info:
        read_texts(path)
    assert str(info.value).startswith(f"{path}:2: ")


def test_read_texts_missing_empty_and_non_utf8(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_texts(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="file is empty; expected texts"):
        read_texts(write(tmp_path / "blank.txt", "\n  \n"))
    path = tmp_path / "latin1.txt"
    path.write_bytes("one\ntwo\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_texts(path)
    assert str(info.value).startswith(f"{path}:3: ")
