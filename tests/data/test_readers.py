"""Data readers and the pair collator: exact texts, scaled scores, sources, and errors that name file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sbert_siamese.data.readers import (
    Columns,
    PairExample,
    ScoreRange,
    dataset_to_pairs,
    load_hf_pairs,
    load_pairs,
    read_pairs,
    read_stsb,
)
from sbert_siamese.errors import ConfigError, DataError


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def stsb_row(score: str, s1: str, s2: str, *extra: str) -> str:
    return "\t".join(["main-captions", "MSRvid", "2012test", "0001", score, s1, s2, *extra])


# ---------------------------------------------------------------------------------------------- read_stsb
STSB_GOOD = (
    "\n".join(
        [
            stsb_row("5.000", "A plane is taking off.", "An air plane is taking off."),  # 1
            "",  # 2
            stsb_row("2.5", "He said \"it's over.", 'She said: "no', "source-a", "source-b"),  # 3
            stsb_row("0.000", "Le café est fermé.", "Der Bär ist müde, 日本"),  # 4
            "   ",  # 5
            stsb_row("4.2", "“Curly” quotes’ here", 'ends with a quote"'),  # 6
        ]
    )
    + "\n"
)


def test_read_stsb_texts_scores_and_sources(tmp_path):
    path = write(tmp_path / "sts-dev.csv", STSB_GOOD)
    examples = read_stsb(path)
    assert [(e.text_a, e.text_b) for e in examples] == [
        ("A plane is taking off.", "An air plane is taking off."),
        ("He said \"it's over.", 'She said: "no'),  # unbalanced quotes kept, extra fields ignored
        ("Le café est fermé.", "Der Bär ist müde, 日本"),
        ("“Curly” quotes’ here", 'ends with a quote"'),
    ]
    assert [e.score for e in examples] == pytest.approx([1.0, 0.5, 0.0, 0.84])
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:3", f"{path}:4", f"{path}:6"]
    assert all(isinstance(e, PairExample) for e in examples)


def test_read_stsb_crlf_and_bom(tmp_path):
    path = tmp_path / "sts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + STSB_GOOD.replace("\n", "\r\n").encode("utf-8"))
    examples = read_stsb(path)
    assert examples[0].text_a == "A plane is taking off."  # no BOM glued to the genre; no '\r' kept
    assert examples[-1].text_b == 'ends with a quote"'
    assert examples[-1].source == f"{path}:6"


def test_read_stsb_custom_score_range(tmp_path):
    path = write(tmp_path / "s.csv", stsb_row("3", "a", "b") + "\n" + stsb_row("1", "c", "d") + "\n")
    assert [e.score for e in read_stsb(path, ScoreRange(1, 5))] == pytest.approx([0.5, 0.0])


def test_read_stsb_keeps_unicode_line_separators_inside_a_sentence(tmp_path):
    # Only "\n" (and "\r\n") end a row: U+2028, U+0085 or a form feed inside a sentence are text.
    # str.splitlines splits on all of them, which breaks the row in two and shifts later line numbers.
    path = write(
        tmp_path / "s.csv",
        stsb_row("1.0", "first\u2028part", "x\x85y") + "\n" + stsb_row("2.0", "page\x0cbreak", "b") + "\n",
    )
    examples = read_stsb(path)
    assert [(e.text_a, e.text_b) for e in examples] == [("first\u2028part", "x\x85y"), ("page\x0cbreak", "b")]
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:2"]


GOOD = stsb_row("3.0", "fine", "also fine")


@pytest.mark.parametrize(
    "bad_row, expected",
    [
        ("main\tMSRvid\t2012\t0001\t3.0\tonly six fields", ["at least 7 tab-separated fields", "found 6"]),
        ("a line without tabs", ["at least 7 tab-separated fields", "found 1"]),
        (stsb_row("abc", "a", "b"), ["'abc'", "not a number"]),
        (stsb_row("", "a", "b"), ["''", "not a number"]),
        (stsb_row("nan", "a", "b"), ["'nan'", "not finite"]),
        (stsb_row("inf", "a", "b"), ["'inf'", "not finite"]),
        (stsb_row("-Infinity", "a", "b"), ["not finite"]),
        (stsb_row("5.5", "a", "b"), ["5.5", "outside [0.0, 5.0]"]),
        (stsb_row("-0.1", "a", "b"), ["-0.1", "outside [0.0, 5.0]"]),
        (stsb_row("3.0", "", "b"), ["sentence1", "empty"]),
        (stsb_row("3.0", "a", "   "), ["sentence2", "empty"]),
    ],
)
def test_read_stsb_bad_row_names_file_and_line(tmp_path, bad_row, expected):
    path = write(tmp_path / "sts-train.csv", "\n".join([GOOD, "", bad_row, GOOD]) + "\n")
    with pytest.raises(DataError) as info:
        read_stsb(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    for part in expected:
        assert part in message
    assert (info.value.path, info.value.line) == (str(path), 3)


def test_read_stsb_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((GOOD + "\n" + GOOD + "\n").encode() + stsb_row("1", "caf\xe9", "b").encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_stsb(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert "0xe9" in str(info.value) and "UTF-8" in str(info.value)
    assert info.value.line == 3


@pytest.mark.parametrize("content", [None, b"", b"\n  \n\t\n"], ids=["missing", "empty", "blank"])
def test_read_stsb_missing_or_empty_file(tmp_path, content):
    path = tmp_path / "sts-test.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_stsb(path)
    assert str(info.value).startswith(f"{path}: ")
    assert ("not found" if content is None else "empty") in str(info.value)
    assert info.value.line is None


def test_read_stsb_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match="directory"):
        read_stsb(tmp_path)


# ---------------------------------------------------------------------------------------------- read_pairs
def test_read_pairs_csv_standard_quoting(tmp_path):
    path = write(
        tmp_path / "pairs.csv",
        "sentence1,sentence2,score\n"
        '"A man, a plan","He said ""hi"", then left",4.0\n'
        "\n"
        'plain text,a stray "quote inside,2.5\n'
        '"a line\nbreak",Ünïcödé 日本,0\n'
        '"last",row,5\n',
    )
    examples = read_pairs(path)
    assert [(e.text_a, e.text_b) for e in examples] == [
        ("A man, a plan", 'He said "hi", then left'),
        ("plain text", 'a stray "quote inside'),
        ("a line\nbreak", "Ünïcödé 日本"),
        ("last", "row"),
    ]
    assert [e.score for e in examples] == pytest.approx([0.8, 0.5, 0.0, 1.0])
    # The multi-line record is reported at the line it ends on; later lines keep their physical numbers.
    assert [e.source for e in examples] == [f"{path}:2", f"{path}:4", f"{path}:6", f"{path}:7"]


def test_read_pairs_csv_crlf(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b'sentence1,sentence2,score\r\n"a, b",c,1\r\nd,e,2\r\n')
    examples = read_pairs(path)
    assert [(e.text_a, e.text_b, e.score) for e in examples] == [("a, b", "c", 0.2), ("d", "e", 0.4)]


def test_read_pairs_tsv_keeps_quotes_literally(tmp_path):
    path = write(
        tmp_path / "pairs.tsv",
        'sentence1\tsentence2\tscore\nHe said "hello\tShe "quoted" this, too\t3\n"fully quoted"\tcafé\t1.5\n',
    )
    examples = read_pairs(path)
    assert [(e.text_a, e.text_b) for e in examples] == [
        ('He said "hello', 'She "quoted" this, too'),
        ('"fully quoted"', "café"),
    ]
    assert [e.score for e in examples] == pytest.approx([0.6, 0.3])
    assert [e.source for e in examples] == [f"{path}:2", f"{path}:3"]


def test_read_pairs_jsonl(tmp_path):
    rows = [
        {"sentence1": 'a "quoted", text', "sentence2": "b", "score": 5},
        {"sentence1": "日本語", "sentence2": "é\tü", "score": 1.25, "extra": [1, 2]},
    ]
    path = write(tmp_path / "pairs.jsonl", json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    examples = read_pairs(path)
    assert examples == [
        PairExample('a "quoted", text', "b", 1.0, f"{path}:1"),
        PairExample("日本語", "é\tü", 0.25, f"{path}:3"),
    ]


def test_read_pairs_jsonl_unicode_line_separator_inside_a_string(tmp_path):
    # json.dumps(..., ensure_ascii=False) writes U+2028 raw; it is legal inside a JSON string and must not be
    # taken for a line break.
    row = {"sentence1": "one\u2028two", "sentence2": "b", "score": 2.5}
    path = write(tmp_path / "pairs.jsonl", json.dumps(row, ensure_ascii=False) + "\n")
    assert read_pairs(path) == [PairExample("one\u2028two", "b", 0.5, f"{path}:1")]


def test_read_pairs_json_extension_is_jsonl(tmp_path):
    path = write(tmp_path / "pairs.json", '{"sentence1": "a", "sentence2": "b", "score": 2}\n')
    assert read_pairs(path) == [PairExample("a", "b", 0.4, f"{path}:1")]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
@pytest.mark.parametrize(
    "score_range, raw, expected",
    [
        (ScoreRange(0, 1), ["0.3", "1", "0"], [0.3, 1.0, 0.0]),
        (ScoreRange(1, 5), ["3", "1", "5"], [0.5, 0.0, 1.0]),
    ],
)
def test_read_pairs_custom_columns_and_range(tmp_path, suffix, score_range, raw, expected):
    names = ["q1", "q2", "label"]
    rows = [[f"first {i}", f"second {i}", value] for i, value in enumerate(raw)]
    if suffix == ".jsonl":
        text = "".join(json.dumps(dict(zip(names, r, strict=True))) + "\n" for r in rows)
    else:
        sep = "," if suffix == ".csv" else "\t"
        text = "".join(sep.join(r) + "\n" for r in [names, *rows])
    path = write(tmp_path / f"pairs{suffix}", text)
    examples = read_pairs(
        path, columns=Columns(text_a="q1", text_b="q2", score="label"), score_range=score_range
    )
    assert [(e.text_a, e.text_b) for e in examples] == [(f"first {i}", f"second {i}") for i in range(3)]
    assert [e.score for e in examples] == pytest.approx(expected)


def test_read_pairs_score_outside_custom_range(tmp_path):
    path = write(tmp_path / "p.tsv", "q1\tq2\tlabel\na\tb\t3\nc\td\t0\n")
    with pytest.raises(DataError) as info:
        read_pairs(path, columns=Columns("q1", "q2", "label"), score_range=ScoreRange(1, 5))
    assert str(info.value).startswith(f"{path}:3: ")
    assert "score 0.0 is outside [1, 5]" in str(info.value)


def test_score_range_needs_high_above_low():
    with pytest.raises(ConfigError, match=r"high > low"):
        ScoreRange(5, 5)


@pytest.mark.parametrize(
    "name, text",
    [
        ("p.csv", "sentence1,sentence2,label\na,b,1\n"),
        ("p.tsv", "sentence1\tsentence2\tlabel\na\tb\t1\n"),
        ("p.jsonl", '{"sentence1": "a", "sentence2": "b", "label": 1}\n'),
    ],
)
def test_read_pairs_missing_column_lists_found_columns(tmp_path, name, text):
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as info:
        read_pairs(path)
    message = str(info.value)
    # CSV/TSV: the header (line 1) is at fault; JSONL: the first object without the key.
    assert message.startswith(f"{path}:1: ")
    assert "missing column" in message and "'score'" in message
    assert "label" in message and "sentence1" in message and "sentence2" in message


@pytest.mark.parametrize(
    "name, text, line, expected",
    [
        (
            "p.csv",
            "sentence1,sentence2,score\na,b,1\na,b,1,extra\n",
            3,
            "expected 3 fields as in the header, found 4",
        ),
        ("p.csv", "sentence1,sentence2,score\na,b,1\n\nonly,two\n", 4, "found 2"),
        (
            "p.tsv",
            "sentence1\tsentence2\tscore\na\tb\t1\na\tb\n",
            3,
            "expected 3 fields as in the header, found 2",
        ),
        ("p.tsv", "sentence1\tsentence2\tscore\na, b\tc\tnot-a-score\n", 2, "'not-a-score' is not a number"),
        ("p.csv", 'sentence1,sentence2,score\na,"",1\n', 2, "column 'sentence2' is empty"),
        (
            "p.jsonl",
            '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sen\n',
            2,
            "invalid JSON",
        ),
        (
            "p.jsonl",
            '{"sentence1": "a", "sentence2": "b", "score": 1}\n\n[1, 2]\n',
            3,
            "expected a JSON object, found list",
        ),
        (
            "p.jsonl",
            '{"sentence1": "a", "sentence2": null, "score": 1}\n',
            1,
            "column 'sentence2' is empty or missing",
        ),
        ("p.jsonl", '{"sentence1": "a", "sentence2": "b", "score": NaN}\n', 1, "not finite"),
    ],
)
def test_read_pairs_bad_rows_name_the_line(tmp_path, name, text, line, expected):
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as info:
        read_pairs(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert expected in str(info.value)
    assert info.value.line == line


def test_read_pairs_header_only_and_empty(tmp_path):
    header_only = write(tmp_path / "h.csv", "sentence1,sentence2,score\n")
    with pytest.raises(DataError, match="no pairs found") as info:
        read_pairs(header_only)
    assert str(info.value).startswith(f"{header_only}: ")
    empty = write(tmp_path / "e.tsv", "")
    with pytest.raises(DataError, match="empty") as info:
        read_pairs(empty)
    assert str(info.value).startswith(f"{empty}: ")


def test_read_pairs_unknown_extension_is_config_error(tmp_path):
    path = write(tmp_path / "pairs.xlsx", "whatever")
    with pytest.raises(ConfigError) as info:
        read_pairs(path)
    assert str(path) in str(info.value) and "'.xlsx'" in str(info.value)
    for fmt in ("stsb", "csv", "tsv", "jsonl", "parquet", "hf"):
        assert fmt in str(info.value)


def test_read_pairs_explicit_format_beats_extension(tmp_path):
    path = write(tmp_path / "pairs.txt", "sentence1\tsentence2\tscore\na\tb\t5\n")
    assert read_pairs(path, "tsv") == [PairExample("a", "b", 1.0, f"{path}:2")]
    stsb = write(tmp_path / "sts.tsv", stsb_row("5", "x", "y") + "\n")
    assert read_pairs(stsb, "stsb") == [PairExample("x", "y", 1.0, f"{stsb}:1")]


# ---------------------------------------------------------------------------------------------- load_pairs
def test_load_pairs_joins_relative_paths_with_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tsv = write(data_dir / "train.tsv", "sentence1\tsentence2\tscore\na\tb\t2.5\n")
    stsb = write(data_dir / "sts-dev.csv", stsb_row("5", "c", "d") + "\n")
    assert load_pairs("train.tsv", "tsv", data_dir=data_dir) == [PairExample("a", "b", 0.5, f"{tsv}:2")]
    assert load_pairs("sts-dev.csv", "stsb", data_dir=str(data_dir)) == [
        PairExample("c", "d", 1.0, f"{stsb}:1")
    ]
    # An absolute path is used as it is.
    assert load_pairs(str(tsv), "tsv", data_dir=tmp_path / "elsewhere")[0].source == f"{tsv}:2"
    with pytest.raises(DataError, match="not found") as info:
        load_pairs("train.tsv", "tsv", data_dir=tmp_path)
    assert str(tmp_path / "train.tsv") in str(info.value)


def test_load_pairs_unknown_format(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_pairs("x.csv", "excel", data_dir=tmp_path)
    assert "'excel'" in str(info.value)
    assert "stsb, csv, tsv, tsv_quoted, jsonl, parquet, senteval, hf" in str(info.value)


# ---------------------------------------------------------------------------------------------- Hugging Face
@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """Keep datasets' Arrow cache inside tmp_path."""
    datasets = pytest.importorskip("datasets")
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return datasets


def small_dataset(datasets, **columns):
    values = {
        "sentence1": ["a cat", "日本", "the end"],
        "sentence2": ["a dog", "é", "fin"],
        "score": [5.0, 2.5, 0.0],
    }
    values.update(columns)
    return datasets.Dataset.from_dict(values)


def test_dataset_to_pairs_and_load_hf_pairs_on_a_dataset_object(hf_cache):
    ds = small_dataset(hf_cache)
    expected = [
        PairExample("a cat", "a dog", 1.0, "dataset[0]"),
        PairExample("日本", "é", 0.5, "dataset[1]"),
        PairExample("the end", "fin", 0.0, "dataset[2]"),
    ]
    assert dataset_to_pairs(ds) == expected
    assert load_hf_pairs(ds) == expected
    named = dataset_to_pairs(ds, name="mine")
    assert [e.source for e in named] == ["mine[0]", "mine[1]", "mine[2]"]


def test_dataset_to_pairs_custom_columns(hf_cache):
    ds = hf_cache.Dataset.from_dict({"q1": ["a", "b"], "q2": ["c", "d"], "label": [0.25, 1.0]})
    examples = dataset_to_pairs(ds, Columns("q1", "q2", "label"), ScoreRange(0, 1))
    assert [(e.text_a, e.text_b, e.score) for e in examples] == [("a", "c", 0.25), ("b", "d", 1.0)]


def test_dataset_to_pairs_errors_name_the_row(hf_cache):
    with pytest.raises(DataError) as info:
        dataset_to_pairs(small_dataset(hf_cache, score=[5.0, 2.5, 7.0]))
    assert str(info.value).startswith("dataset: row 2: ")
    assert "outside [0.0, 5.0]" in str(info.value)
    with pytest.raises(DataError) as info:
        dataset_to_pairs(small_dataset(hf_cache, score=[5.0, 2.5, float("nan")]))
    assert "row 2" in str(info.value) and "not finite" in str(info.value)
    with pytest.raises(DataError) as info:
        dataset_to_pairs(small_dataset(hf_cache, sentence2=["a dog", "  ", "fin"]))
    assert "row 1" in str(info.value) and "'sentence2'" in str(info.value)
    with pytest.raises(DataError) as info:
        dataset_to_pairs(hf_cache.Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "label": [1.0]}))
    assert "['score']" in str(info.value) and "['sentence1', 'sentence2', 'label']" in str(info.value)


def test_load_hf_pairs_from_save_to_disk_folder(hf_cache, tmp_path):
    ds = small_dataset(hf_cache)
    folder = tmp_path / "saved"
    ds.save_to_disk(str(folder))
    examples = load_hf_pairs(str(folder))
    assert [(e.text_a, e.score) for e in examples] == [("a cat", 1.0), ("日本", 0.5), ("the end", 0.0)]
    assert examples[0].source == f"{folder}[0]"
    # load_pairs finds the folder inside data_dir.
    via_dir = load_pairs("saved", "hf", data_dir=tmp_path)
    assert [(e.text_a, e.text_b, e.score) for e in via_dir] == [
        (e.text_a, e.text_b, e.score) for e in examples
    ]


def test_load_hf_pairs_from_saved_dataset_dict(hf_cache, tmp_path):
    ds = small_dataset(hf_cache)
    test_split = hf_cache.Dataset.from_dict({"sentence1": ["x"], "sentence2": ["y"], "score": [1.0]})
    folder = tmp_path / "dd"
    hf_cache.DatasetDict({"train": ds, "test": test_split}).save_to_disk(str(folder))
    assert [e.text_a for e in load_hf_pairs(str(folder), split="test")] == ["x"]
    with pytest.raises(DataError) as info:
        load_hf_pairs(str(folder))
    assert "['train', 'test']" in str(info.value)


def test_load_pairs_hf_folder_with_split_inside_data_dir(hf_cache, tmp_path, monkeypatch):
    # A recipe names a split of a saved DatasetDict as "folder:split" (the form load_hf_pairs documents),
    # relative to data_dir; the folder must be looked up in data_dir, not in the working directory.
    test_split = hf_cache.Dataset.from_dict({"sentence1": ["x"], "sentence2": ["y"], "score": [1.0]})
    data_dir = tmp_path / "data"
    hf_cache.DatasetDict({"train": small_dataset(hf_cache), "test": test_split}).save_to_disk(
        str(data_dir / "dd")
    )
    monkeypatch.chdir(tmp_path)  # not data_dir
    examples = load_pairs("dd:test", "hf", data_dir=data_dir)
    assert [(e.text_a, e.text_b, e.score) for e in examples] == [("x", "y", 0.2)]


def test_read_pairs_parquet(hf_cache, tmp_path):
    path = tmp_path / "pairs.parquet"
    hf_cache.Dataset.from_dict({"q1": ["a, b", 'c "d'], "q2": ["日本", "e"], "label": [1.0, 5.0]}).to_parquet(
        str(path)
    )
    examples = read_pairs(path, columns=Columns("q1", "q2", "label"), score_range=ScoreRange(1, 5))
    assert examples == [
        PairExample("a, b", "日本", 0.0, f"{path}[0]"),
        PairExample('c "d', "e", 1.0, f"{path}[1]"),
    ]
    with pytest.raises(DataError, match="not found"):
        read_pairs(tmp_path / "missing.parquet")
