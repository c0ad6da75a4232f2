"""``add_file``: every input format, ids (from a column, or line + offset), errors with file:line, and
resuming after an interruption without adding a row twice."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from sbert_siamese.archive import Archive
from sbert_siamese.archive.ingest import add_file, iter_rows
from sbert_siamese.data.rows import BadRows
from sbert_siamese.errors import ConfigError, DataError

from .conftest import QUESTIONS


def texts_by_id(archive) -> dict[int, str]:
    rows = archive.store.conn.execute("SELECT id, text FROM questions WHERE deleted = 0").fetchall()
    return dict(rows)


@pytest.fixture
def empty(model_dir, tmp_path):
    with Archive.create(tmp_path / "qa", model_dir) as a:
        yield a


def test_txt_ids_are_line_numbers_past_the_largest_id(model_dir, tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("first question\nsecond question\nthird question\n", encoding="utf-8")
    with Archive.create(tmp_path / "qa", model_dir) as a:
        a.add(QUESTIONS)  # ids 0..11
        report = add_file(a, path, chunk_size=2)
        assert (report.added, report.first_id, report.last_id) == (3, 12, 14)
        assert {i: texts_by_id(a)[i] for i in (12, 13, 14)} == {
            12: "first question",
            13: "second question",
            14: "third question",
        }


def test_csv_with_an_id_column_and_a_quoted_newline(empty, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(
        'qid,question\n7,"how do i, maybe,\nlearn python"\n3,why is the sky blue\n', encoding="utf-8"
    )
    report = add_file(empty, path, column="question", id_column="qid")
    assert report.added == 2
    assert texts_by_id(empty) == {7: "how do i, maybe,\nlearn python", 3: "why is the sky blue"}


def test_jsonl_and_parquet(empty, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "n": i}) for i, t in enumerate(QUESTIONS[:3])) + "\n")
    parquet = tmp_path / "q.parquet"
    pq.write_table(pa.table({"body": QUESTIONS[3:6], "key": [100, 101, 102]}), parquet)
    add_file(empty, jsonl)
    add_file(empty, parquet, column="body", id_column="key")
    assert texts_by_id(empty) == {0: QUESTIONS[0], 1: QUESTIONS[1], 2: QUESTIONS[2],
                                  100: QUESTIONS[3], 101: QUESTIONS[4], 102: QUESTIONS[5]}  # fmt: skip


def test_adding_the_same_file_again_adds_nothing(empty, tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("\n".join(QUESTIONS) + "\n")
    assert add_file(empty, path, chunk_size=5).added == len(QUESTIONS)
    again = add_file(empty, path, chunk_size=5)
    assert (again.added, again.rows) == (0, len(QUESTIONS))
    assert len(empty) == len(QUESTIONS)


def test_an_interrupted_add_resumes_with_the_same_ids(model_dir, empty, tmp_path, monkeypatch):
    path = tmp_path / "q.txt"
    lines = [f"question number {i}" for i in range(23)]
    path.write_text("\n".join(lines) + "\n")
    with Archive.create(tmp_path / "reference", model_dir) as reference:
        expected = add_file(reference, path, chunk_size=5)
        expected_ids = texts_by_id(reference)
    empty.add(["already here"], ids=[40])  # the offset is taken when the file is first seen: 40
    calls = {"n": 0}
    real_encode = empty.encode

    def failing_encode(texts, side="a"):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third chunk
        return real_encode(texts, side)

    monkeypatch.setattr(empty, "encode", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        add_file(empty, path, chunk_size=5)
    assert len(empty) == 1 + 10  # two chunks committed
    monkeypatch.setattr(empty, "encode", real_encode)
    empty.add(["added in between"])  # moves the largest id; the file's ids must not move with it
    report = add_file(empty, path, chunk_size=5)
    assert (report.resumed_from_line, report.added, report.rows) == (10, 13, 23)
    got = texts_by_id(empty)
    assert {i - 41: t for i, t in got.items() if 41 <= i < 64} == {i: t for i, t in expected_ids.items()}
    assert len(got) == 23 + 2 and expected.added == 23


@pytest.mark.long
def test_kill_9_during_archive_add_then_resume(model_dir, tmp_path):
    """The CLI killed mid-file; started again, it ends with every line exactly once."""
    path = tmp_path / "q.txt"
    path.write_text("\n".join(f"question {i} about python and cats" for i in range(3000)) + "\n")
    archive = tmp_path / "qa"
    Archive.create(archive, model_dir).close()
    command = [sys.executable, "-m", "sbert_siamese", "archive", "add", str(archive), "--input", str(path),
               "--chunk-size", "100", "-q"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = archive / "questions.sqlite"
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        with sqlite3.connect(database, timeout=30) as conn:
            committed = conn.execute("SELECT count(*) FROM questions").fetchone()[0]
        if committed >= 300:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 300 <= committed < 3000, "the add finished before it could be interrupted"
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["resumed_from_line"] >= 300 and report["questions"] == 3000
    with Archive.open(archive) as a:
        got = texts_by_id(a)
    assert got == {i: f"question {i} about python and cats" for i in range(3000)}


def test_an_id_given_to_another_text_names_the_line(empty, tmp_path):
    empty.add(["the original"], ids=[5])
    path = tmp_path / "q.csv"
    path.write_text("id,text\n1,fine\n5,a different text\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        add_file(empty, path, id_column="id")
    assert (err.value.path, err.value.line) == (str(path), 3)
    assert len(empty) == 1  # the chunk holding the clash was not written


def test_an_id_repeated_in_the_file_names_the_line(empty, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
    with pytest.raises(DataError) as err:
        add_file(empty, path, id_column="id")
    assert err.value.line == 2 and len(empty) == 0


@pytest.mark.parametrize(
    "name, content, column, id_column, line, problem",
    [
        ("q.txt", "ok\n\nok too\n", "text", None, 2, "blank line"),
        ("q.txt", b"ok\n\xff bad\n", "text", None, 2, "invalid UTF-8"),
        ("q.csv", 'text\nok\n"unbalanced\n', "text", None, None, None),
        ("q.csv", "id,text\nx,ok\n", "text", "id", 2, "an integer in 0"),
        ("q.csv", "a,b\n1,2\n", "text", None, 2, "no column 'text'"),
        ("q.jsonl", '{"text": "ok"}\nnot json\n', "text", None, 2, "invalid JSON"),
        ("q.jsonl", '{"text": 3}\n', "text", None, 1, "must be a string"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, name, content, column, id_column, line, problem):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if problem is None:  # an unbalanced quote swallows the rest: the csv module reads it as one field
        rows = list(iter_rows(path, column, id_column))
        assert rows[0][1] == "ok"
        return
    with pytest.raises(DataError, match=problem) as err:
        list(iter_rows(path, column, id_column))
    assert (err.value.path, err.value.line) == (str(path), line)
    skipped = BadRows("skip")
    list(iter_rows(path, column, id_column, skipped))
    assert skipped.total == 1


def test_unsupported_inputs(tmp_path):
    with pytest.raises(ConfigError, match="unsupported input type"):
        list(iter_rows(tmp_path / "q.xlsx"))
    with pytest.raises(DataError, match="file not found"):
        list(iter_rows(tmp_path / "missing.txt"))
    (tmp_path / "q.txt").write_text("a\n")
    with pytest.raises(ConfigError, match="has no columns"):
        list(iter_rows(tmp_path / "q.txt", id_column="id"))


def test_a_parquet_file_reserves_its_rows_ids(model_dir, empty, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "q.parquet"
    pq.write_table(pa.table({"text": [f"parquet question {i}" for i in range(30)]}), path)
    real_encode = empty.encode
    calls = {"n": 0}

    def failing_encode(texts, side="a"):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_encode(texts, side)

    monkeypatch.setattr(empty, "encode", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        add_file(empty, path, chunk_size=10)
    monkeypatch.setattr(empty, "encode", real_encode)
    (other,) = empty.add(["added meanwhile"])
    assert other > 30  # past the 30 rows the file reserved
    report = add_file(empty, path, chunk_size=10)
    assert (report.added, report.rows) == (20, 30)
    assert texts_by_id(empty)[29] == "parquet question 29"


def test_ids_that_only_look_like_numbers_name_the_line(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("id,text\n1,ok\n\u00b2,superscript two\n99999999999999999999,too big\n", encoding="utf-8")
    with pytest.raises(DataError, match="an integer in 0") as err:
        list(iter_rows(path, "text", "id"))
    assert err.value.line == 3
    skipped = BadRows("skip")
    assert [r[2] for r in iter_rows(path, "text", "id", skipped)] == [1]
    assert skipped.total == 2


def test_csv_line_numbers_survive_a_skipped_non_utf8_line(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b"n,text\n1,fine\n2,\xff bad bytes\n3,also fine\n4,\n")
    skipped = BadRows("skip")
    rows = list(iter_rows(path, "text", None, skipped))
    assert [(line, text) for line, text, _ in rows] == [(2, "fine"), (4, "also fine")]
    assert [e.split(": ")[0] for e in skipped.examples] == [f"{path}:3", f"{path}:5"]
