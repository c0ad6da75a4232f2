"""data.pieces: a file cut into pieces reads, piece by piece, exactly as read_texts reads it whole: the same
texts, lines, skipped-row counts and error messages, for every piece size."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sbert_siamese.data.pieces import (
    check_columns,
    input_files,
    plan_file,
    plan_inputs,
    read_piece_texts,
)
from sbert_siamese.data.rows import BadRows
from sbert_siamese.data.texts import read_texts_with_lines
from sbert_siamese.errors import ConfigError, DataError

FILES = {
    "plain.txt": b"first\nsecond\r\nthird\nfourth\nfifth\n",
    "bom_no_final_newline.txt": b"\xef\xbb\xbfone\ntwo\nthree",
    "blank_line.txt": b"one\n\nthree\nfour\n",
    "bad_utf8.txt": b"one\ntw\xffo\nthree\nfour\n",
    "quoted.csv": (
        b'id,text\n1,"a, b"\n2,"line one\nline two"\n\n3,plain\n4,"say ""hi"""\n5,"x\r\ny"\n6,last\n'
    ),
    "stray_quote.csv": b'text,label\nHe is 6" tall,1\n"multi\nline",2\nend,3\n"a ""quoted"" one",4\n',
    "bom_quoted_header.csv": b'\xef\xbb\xbf"te\nxt",text\n1,a\n2,b\n',
    "wrong_fields.csv": b"id,text\n1,ok\n2,too,many\n3,fine\n4\n5,end\n",
    "blank_before_header.csv": b"\n\nid,text\n1,a\n2,b\n",
    "bad_utf8.csv": b"id,text\n1,ok\n2,b\xffad\n3,fine\n",
    "numbers.tsv": b"text\tscore\nalpha\t1\n\t2\ngamma\t3\ndelta\t4\n",
    "rows.jsonl": (
        b'{"text": "a"}\n\n{"text": "b"}\nnot json\n[1, 2]\n{"other": 1}\n{"text": 5}\n{"text": "  "}\n'
        b'{"text": "c"}\n'
    ),
}


def _ours(path, rows, policy):
    bad_rows = BadRows(policy)
    plan = plan_file(path, 0, rows, max_bytes=1 << 30)
    check_columns(plan, str(path), ("text",))
    texts, lines = [], []
    for piece in plan["pieces"]:
        piece_texts, piece_lines = read_piece_texts(piece, "text", bad_rows)
        texts += piece_texts
        lines += piece_lines
    if not texts:
        raise DataError("no texts found", str(path), reason="no_rows")
    return texts, lines, bad_rows.counts


def _whole(path, policy):
    bad_rows = BadRows(policy)
    texts, lines = read_texts_with_lines(path, "text", bad_rows)
    return texts, lines, bad_rows.counts


def _outcome(function, *args):
    try:
        return function(*args)
    except DataError as err:
        return f"DataError: {err}"


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize("rows", [1, 2, 3, 1000])
def test_pieces_read_as_the_whole_file_reader(tmp_path, name, policy, rows):
    path = tmp_path / name
    path.write_bytes(FILES[name])
    expected = _outcome(_whole, path, policy)
    found = _outcome(_ours, path, rows, policy)
    assert found == expected
    if policy == "error" and name in ("plain.txt", "quoted.csv"):
        assert not isinstance(found, str)  # the clean files read, not just fail alike


def test_pieces_cut_at_the_requested_size_and_cover_the_file(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_bytes(b"".join(f"text {i}\n".encode() for i in range(10)))
    plan = plan_file(path, 0, rows=3)
    pieces = plan["pieces"]
    assert [p.records for p in pieces] == [3, 3, 3, 1]
    assert [p.first_line for p in pieces] == [1, 4, 7, 10]
    assert pieces[0].start == 0 and pieces[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert plan["lines"] == 10
    # a byte budget cuts too: every piece of one line
    assert len(plan_file(path, 0, rows=100, max_bytes=1)["pieces"]) == 10


def test_a_quoted_newline_never_ends_a_piece(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b'text\n"a\nb\nc"\n"d"\n')
    pieces = plan_file(path, 0, rows=1)["pieces"]
    assert [(p.first_line, p.records) for p in pieces] == [(2, 1), (5, 1)]
    assert read_piece_texts(pieces[0])[0] == ["a\nb\nc"]


def test_parquet_pieces_are_row_ranges_of_row_groups(tmp_path):
    path = tmp_path / "t.parquet"
    texts = [f"text {i}" for i in range(23)]
    pq.write_table(pa.table({"text": texts, "n": list(range(23))}), path, row_group_size=10)
    plan = plan_file(path, 0, rows=4)
    assert [(p.group, p.start, p.end) for p in plan["pieces"]][:4] == [
        (0, 0, 4),
        (0, 4, 8),
        (0, 8, 10),
        (1, 0, 4),
    ]
    got, lines = [], []
    for piece in plan["pieces"]:
        t, n = read_piece_texts(piece)
        got += t
        lines += n
    assert (got, lines) == read_texts_with_lines(path)
    assert plan["lines"] == 23


def test_file_level_errors_are_raised_by_the_planner(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"\n \n")
    with pytest.raises(DataError, match="empty.txt: file is empty"):
        plan_file(tmp_path / "empty.txt")
    (tmp_path / "h.csv").write_bytes(b"id,question\n1,a\n")
    plan = plan_file(tmp_path / "h.csv")
    with pytest.raises(DataError) as err:
        check_columns(plan, str(tmp_path / "h.csv"), ("text",))
    with pytest.raises(DataError) as whole:
        read_texts_with_lines(tmp_path / "h.csv")
    assert str(err.value) == str(whole.value)
    with pytest.raises(DataError, match="missing.txt: file not found"):
        plan_file(tmp_path / "missing.txt")
    (tmp_path / "x.doc").write_text("a")
    with pytest.raises(ConfigError, match="unsupported input type"):
        plan_file(tmp_path / "x.doc")


def test_input_files_take_a_file_a_directory_or_a_glob_in_sorted_order(tmp_path):
    for name in ("b.txt", "a.jsonl", "c.csv", "notes.md"):
        (tmp_path / name).write_text("x\n")
    assert [p.name for p in input_files(tmp_path)] == ["a.jsonl", "b.txt", "c.csv"]
    assert [p.name for p in input_files(str(tmp_path / "*.txt"))] == ["b.txt"]
    assert [p.name for p in input_files(tmp_path / "b.txt")] == ["b.txt"]
    with pytest.raises(DataError, match="no file matches"):
        input_files(str(tmp_path / "*.parquet"))
    with pytest.raises(ConfigError, match="notes.md: unsupported input type"):
        input_files(str(tmp_path / "*"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .txt, .csv"):
        input_files(tmp_path / "empty")
    (tmp_path / "q[1].txt").write_text("literal\n")
    (tmp_path / "q1.txt").write_text("the pattern's match\n")
    assert [p.name for p in input_files(tmp_path / "q[1].txt")] == ["q[1].txt"]  # a name that exists
    plan = plan_inputs(str(tmp_path / "[ab].*"))
    assert [f["path"] for f in plan["files"]] == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt")]
    assert [p.file for p in plan["pieces"]] == [0, 1]
