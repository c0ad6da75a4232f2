"""Examples of k texts: readers for every format and target kind, labels, derived positives and duplicate
groups (against a brute-force connected-components), stable text ids, and the (B, k, T) collator."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sbert_siamese.data.examples import (
    Example,
    ExampleCollator,
    duplicate_groups,
    normalise,
    parse_label,
    positives,
    read_examples,
    text_id,
)
from sbert_siamese.data.readers import ScoreRange
from sbert_siamese.errors import ConfigError, DataError

FORMATS = ("csv", "tsv", "tsv_quoted", "jsonl")
SUFFIX = {"csv": ".csv", "tsv": ".tsv", "tsv_quoted": ".tsv", "jsonl": ".jsonl"}
NLI = ["entailment", "neutral", "contradiction"]


def write_rows(path: Path, fmt: str, header: list[str], rows: list[list]) -> Path:
    """Write ``rows`` under ``header`` in ``fmt`` (csv / tsv / tsv_quoted with CSV quoting / jsonl)."""
    if fmt == "jsonl":
        text = "".join(json.dumps(dict(zip(header, row, strict=True))) + "\n" for row in rows)
    elif fmt == "tsv":
        text = "".join("\t".join(map(str, line)) + "\n" for line in [header, *rows])
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        writer.writerows([header, *rows])
        text = buffer.getvalue()
    path.write_bytes(text.encode("utf-8"))
    return path


TEXTS = [
    ["A man plays the guitar.", "Someone plays music.", "A dog sleeps."],
    ["Café au lait, s'il vous plaît", "Ein Hund läuft", "二匹の犬"],
    ["The  QUICK fox", "the quick fox", "slow turtle"],
]


# ------------------------------------------------------------------------------------------ read_examples
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_read_examples_texts_and_scaled_scores(tmp_path, fmt, k):
    columns = [f"text{j}" for j in range(k)]
    raw_scores = ["0", "2.5", "5"] if fmt != "jsonl" else [0, 2.5, 5]
    rows = [TEXTS[i][:k] + [raw_scores[i]] for i in range(3)]
    path = write_rows(tmp_path / f"data{SUFFIX[fmt]}", fmt, columns + ["score"], rows)
    examples, keys = read_examples(
        path, fmt, columns, "score", target_column="score", score_range=ScoreRange(0, 5)
    )
    assert [e.texts for e in examples] == [tuple(t[:k]) for t in TEXTS]
    assert [e.target for e in examples] == [0.0, 0.5, 1.0]
    first_line = 1 if fmt == "jsonl" else 2  # jsonl has no header line
    assert [e.source for e in examples] == [f"{path}:{first_line + i}" for i in range(3)]
    # Default keys: one normalised text per column.
    assert keys == [tuple(normalise(t) for t in row[:k]) for row in TEXTS]
    assert keys[2][:2] == (("the quick fox",) * 2)[:k]


def test_score_range_other_than_default(tmp_path):
    path = write_rows(tmp_path / "d.csv", "csv", ["a", "b", "s"], [["x", "y", "-1"], ["x", "z", "1"]])
    examples, _ = read_examples(path, "csv", ["a", "b"], "score", "s", score_range=ScoreRange(-1, 1))
    assert [e.target for e in examples] == [0.0, 1.0]


def test_tsv_quoted_reads_tabs_and_escaped_quotes_inside_a_field(tmp_path):
    text = 'q1\tq2\tis_duplicate\n"He said ""hi""\tand left"\tplain text\t1\nsecond\t"say ""no"""\t0\n'
    path = tmp_path / "quora.tsv"
    path.write_text(text, encoding="utf-8")
    examples, _ = read_examples(path, "tsv_quoted", ["q1", "q2"], "binary", "is_duplicate")
    assert examples[0].texts == ('He said "hi"\tand left', "plain text")
    assert examples[1].texts == ("second", 'say "no"')
    assert [e.target for e in examples] == [1, 0]
    assert examples[1].source == f"{path}:3"
    # Plain tsv does not quote: the same file has a wrong number of fields on line 2.
    with pytest.raises(DataError) as info:
        read_examples(path, "tsv", ["q1", "q2"], "binary", "is_duplicate")
    assert info.value.line == 2


def test_csv_quoted_comma_and_newline(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('a,b,label\n"x, y","two\nlines",1\nlast,row,0\n', encoding="utf-8")
    examples, _ = read_examples(path, None, ["a", "b"], "binary", "label")  # format from the extension
    assert examples[0].texts == ("x, y", "two\nlines")
    assert examples[1].texts == ("last", "row")


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_labels_accept_int_like_values(tmp_path, fmt):
    raw = ["0", "1", "1.0", "0.0"]
    rows = [[f"a{i}", f"b{i}", label] for i, label in enumerate(raw)]
    path = write_rows(tmp_path / f"d{SUFFIX[fmt]}", fmt, ["a", "b", "y"], rows)
    examples, _ = read_examples(path, fmt, ["a", "b"], "binary", "y")
    assert [e.target for e in examples] == [0, 1, 1, 0]
    assert all(type(e.target) is int for e in examples)


def test_binary_label_from_json_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": "x", "b": "y", "y": 1}\n{"a": "x", "b": "z", "y": 0.0}\n', encoding="utf-8")
    examples, _ = read_examples(path, "jsonl", ["a", "b"], "binary", "y")
    assert [e.target for e in examples] == [1, 0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_class_labels_by_name_and_by_index(tmp_path, fmt):
    rows = [["p", "h1", "contradiction"], ["p", "h2", "0"], ["p", "h3", "neutral"], ["p", "h4", "2"]]
    path = write_rows(tmp_path / f"d{SUFFIX[fmt]}", fmt, ["premise", "hypothesis", "gold"], rows)
    examples, _ = read_examples(
        path, fmt, ["premise", "hypothesis"], "class", "gold", label_names=NLI, num_labels=3
    )
    assert [e.target for e in examples] == [2, 0, 1, 2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_group_ids_kept_as_given_and_target_none(tmp_path, fmt):
    rows = [["first text", "q7"], ["second text", "q7"], ["third text", "12"]]
    path = write_rows(tmp_path / f"d{SUFFIX[fmt]}", fmt, ["text", "cluster"], rows)
    grouped, _ = read_examples(path, fmt, ["text"], "group", "cluster")
    assert [e.texts for e in grouped] == [("first text",), ("second text",), ("third text",)]
    assert [e.target for e in grouped] == ["q7", "q7", "12"]
    # target none: no target column is needed, and none is returned.
    untargeted, _ = read_examples(path, fmt, ["text"], "none")
    assert [e.target for e in untargeted] == [None, None, None]
    assert [e.texts for e in untargeted] == [e.texts for e in grouped]


def test_target_without_column_is_a_config_error(tmp_path):
    path = write_rows(tmp_path / "d.csv", "csv", ["a", "b"], [["x", "y"]])
    with pytest.raises(ConfigError, match="target column"):
        read_examples(path, "csv", ["a", "b"], "binary")


def test_key_columns_are_returned_instead_of_texts(tmp_path):
    rows = [["1", "2", "How do I learn?", "How to learn?", "1"], ["3", "1", "Why?", "How do I learn?", "0"]]
    path = write_rows(tmp_path / "q.csv", "csv", ["qid1", "qid2", "q1", "q2", "dup"], rows)
    examples, keys = read_examples(path, "csv", ["q1", "q2"], "binary", "dup", key_columns=["qid1", "qid2"])
    assert keys == [("1", "2"), ("3", "1")]
    assert [e.texts for e in examples] == [("How do I learn?", "How to learn?"), ("Why?", "How do I learn?")]
    _, default_keys = read_examples(path, "csv", ["q1", "q2"], "binary", "dup")
    assert default_keys == [("how do i learn?", "how to learn?"), ("why?", "how do i learn?")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_label_outside_the_set_names_file_and_line(tmp_path, fmt):
    rows = [["a", "b", "1"], ["c", "d", "0"], ["e", "f", "2"]]
    path = write_rows(tmp_path / f"d{SUFFIX[fmt]}", fmt, ["s1", "s2", "y"], rows)
    line = 3 if fmt == "jsonl" else 4
    with pytest.raises(DataError) as info:
        read_examples(path, fmt, ["s1", "s2"], "binary", "y")
    assert (info.value.path, info.value.line) == (str(path), line)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert "'2'" in str(info.value) and "[0, 1]" in str(info.value)


def test_class_name_outside_label_names_lists_them(tmp_path):
    path = write_rows(
        tmp_path / "d.csv", "csv", ["p", "h", "g"], [["a", "b", "neutral"], ["a", "c", "maybe"]]
    )
    with pytest.raises(DataError) as info:
        read_examples(path, "csv", ["p", "h"], "class", "g", label_names=NLI, num_labels=3)
    assert info.value.line == 3
    assert "maybe" in str(info.value) and "contradiction" in str(info.value)


def test_score_outside_range_names_file_and_line(tmp_path):
    path = write_rows(tmp_path / "d.tsv", "tsv", ["a", "b", "s"], [["x", "y", "4"], ["x", "y", "5.5"]])
    with pytest.raises(DataError, match=r"d\.tsv:3: score 5\.5 is outside"):
        read_examples(path, "tsv", ["a", "b"], "score", "s")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_column_names_file_line_and_column(tmp_path, fmt):
    path = write_rows(
        tmp_path / f"d{SUFFIX[fmt]}", fmt, ["s1", "s2", "y"], [["a", "b", "1"], ["c", "d", "0"]]
    )
    with pytest.raises(DataError) as info:
        read_examples(path, fmt, ["s1", "s3"], "binary", "y")
    # Tables fail on the header line, JSON lines on the first object without the key.
    assert (info.value.path, info.value.line) == (str(path), 1)
    assert "s3" in str(info.value)


def test_missing_key_in_a_later_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": "x", "b": "y"}\n\n{"a": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_examples(path, "jsonl", ["a", "b"], "none")
    assert info.value.line == 3 and "'b'" in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_text_names_file_line_and_column(tmp_path, fmt, empty):
    rows = [["a", "b", "c", "1"], ["d", empty, "f", "0"]]
    path = write_rows(tmp_path / f"d{SUFFIX[fmt]}", fmt, ["x", "y", "z", "label"], rows)
    line = 2 if fmt == "jsonl" else 3
    with pytest.raises(DataError) as info:
        read_examples(path, fmt, ["x", "y", "z"], "binary", "label")
    assert (info.value.path, info.value.line) == (str(path), line)
    assert "'y'" in str(info.value)


def test_null_text_in_json_is_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": "x", "b": null}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:1: column 'b' is empty"):
        read_examples(path, "jsonl", ["a", "b"], "none")


# --------------------------------------------------------------------------------------------- parse_label
@pytest.mark.parametrize(
    ("raw", "names", "num_labels", "expected"),
    [
        ("0", None, 2, 0),
        ("1", None, 2, 1),
        ("1.0", None, 2, 1),
        (" 1 ", None, 2, 1),
        (1, None, 2, 1),
        (2.0, None, 3, 2),
        ("neutral", NLI, 3, 1),
        ("contradiction", NLI, 3, 2),
        ("Neutral", NLI, 3, 1),  # names match case-insensitively (SICK writes ENTAILMENT)
        (" CONTRADICTION ", NLI, 3, 2),
        ("2", NLI, 3, 2),  # an index still works next to names
    ],
)
def test_parse_label_valid(raw, names, num_labels, expected):
    value = parse_label(raw, names, num_labels, "f.csv", 7)
    assert value == expected and type(value) is int


@pytest.mark.parametrize(
    ("raw", "names", "num_labels"),
    [
        ("2", None, 2),
        ("-1", None, 2),
        ("1.5", None, 2),
        ("x", None, 2),
        ("", None, 2),
        ("nan", None, 2),
        ("inf", None, 2),
        ("neither", NLI, 3),
        ("3", NLI, 3),
    ],
)
def test_parse_label_invalid_names_file_line_and_choices(raw, names, num_labels):
    with pytest.raises(DataError) as info:
        parse_label(raw, names, num_labels, "f.csv", 7)
    assert str(info.value).startswith("f.csv:7: label ")
    assert repr(raw) in str(info.value)
    assert str(names or list(range(num_labels))) in str(info.value)


# ------------------------------------------------------------------------------ positives / duplicate groups
def test_positives_keep_only_label_one_pairs_without_target():
    examples = [
        Example(("a", "b"), 1, "f:2"),
        Example(("c", "d"), 0, "f:3"),
        Example(("e", "f"), 1, "f:4"),
        Example(("g", "h"), None, "f:5"),
        Example(("i", "j"), 2, "f:6"),
    ]
    assert positives(examples) == [Example(("a", "b"), None, "f:2"), Example(("e", "f"), None, "f:4")]


def brute_force_components(examples, min_size):
    """Connected components of label-1 pairs over normalised texts, by repeated graph search."""
    edges = {}
    for e in examples:
        if e.target == 1:
            a, b = normalise(e.texts[0]), normalise(e.texts[1])
            edges.setdefault(a, set()).add(b)
            edges.setdefault(b, set()).add(a)
    seen, components = set(), []
    for start in edges:
        if start in seen:
            continue
        component, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node not in component:
                component.add(node)
                stack.extend(edges[node] - component)
        seen |= component
        if len(component) >= min_size:
            components.append(frozenset(component))
    return components


def groups_of(out):
    by_id = {}
    for e in out:
        by_id.setdefault(e.target, set()).add(normalise(e.texts[0]))
    return by_id


def test_duplicate_groups_hand_made_graph():
    examples = [
        Example(("How do I learn Python?", "Best way to learn python?"), 1),
        Example(("best way to  LEARN python?", "Python for beginners"), 1),  # same key as line 1's b
        Example(("Python for beginners", "What is a snake?"), 0),  # label 0: no edge
        Example(("What is a snake?", "Snakes explained"), 1),
        Example(("Snakes explained", "Snakes   EXPLAINED"), 1),  # one key: a self-loop, no new member
        Example(("Lonely question", "Lonely question"), 1),  # one member only
        Example(("Cars", "Automobiles"), 0),
    ]
    out = duplicate_groups(examples)
    assert [e.texts for e in out] == [
        ("How do I learn Python?",),
        ("Best way to learn python?",),  # the first spelling seen is kept
        ("Python for beginners",),
        ("What is a snake?",),
        ("Snakes explained",),
    ]
    assert [e.target for e in out] == [0, 0, 0, 1, 1]  # numbered in order of first appearance
    assert set(map(frozenset, groups_of(out).values())) == set(brute_force_components(examples, 2))
    assert len({normalise(e.texts[0]) for e in out}) == len(out)  # each text once
    # min_size drops the 2-member group, min_size 1 keeps the singleton.
    assert [e.texts[0] for e in duplicate_groups(examples, min_size=3)] == [e.texts[0] for e in out[:3]]
    assert [e.target for e in duplicate_groups(examples, min_size=3)] == [0, 0, 0]
    assert ("Lonely question",) in [e.texts for e in duplicate_groups(examples, min_size=1)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("min_size", [2, 3])
def test_duplicate_groups_equal_brute_force_components(seed, min_size):
    rng = random.Random(seed)
    words = [f"question number {i}" for i in range(30)]

    def variant(text):  # the same question in another case / spacing
        return rng.choice([text, text.upper(), "  " + text.replace(" ", "   "), text.title()])

    examples = [
        Example((variant(rng.choice(words)), variant(rng.choice(words))), rng.choice([0, 1, 1]))
        for _ in range(40)
    ]
    out = duplicate_groups(examples, min_size=min_size)
    expected = brute_force_components(examples, min_size)
    found = groups_of(out)
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, expected))
    assert sorted(found) == list(range(len(expected)))  # ids 0..G-1
    assert len(out) == sum(map(len, expected))


def test_text_id_is_case_and_space_insensitive_and_in_range():
    assert text_id("The  Quick\tfox ") == text_id("the quick fox") == text_id("THE QUICK FOX")
    assert text_id("the quick fox") != text_id("the quick dog")
    assert all(0 <= text_id(t) < 2**63 for t in ["", "a", "the quick fox", "二匹の犬"])


def test_text_id_is_stable_across_processes():
    # Unlike hash(), the id must not depend on the interpreter's hash seed.
    code = "from sbert_siamese.data.examples import text_id; print(text_id('How do I learn?'))"
    values = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        values.add(int(result.stdout))
    assert values == {text_id("How do I learn?")}


# ------------------------------------------------------------------------------------------ ExampleCollator
ROWS = [
    ("a man plays the guitar", "a dog", "the new government said it will vote on the bill today"),
    ("two children play football in the rain", "the cat sleeps on the bed", "hello"),
    ("Café", "a woman eats", "red car"),
]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_collator_layout_equals_each_column_tokenized_alone(tiny_encoder, k):
    batch = [Example(row[:k], 1) for row in ROWS]
    out = ExampleCollator(tiny_encoder, "binary")(batch)
    columns = [tiny_encoder.tokenize([row[j] for row in ROWS]) for j in range(k)]  # each (B, T_j)
    length = max(c["input_ids"].shape[1] for c in columns)
    assert out["input_ids"].shape == (3, k, length)
    pad = {"input_ids": tiny_encoder.tokenizer.pad_token_id, "attention_mask": 0, "token_type_ids": 0}
    for name in tiny_encoder.tokenizer.model_input_names:
        for j, column in enumerate(columns):
            padded = torch.full((3, length), pad[name], dtype=column[name].dtype)
            padded[:, : column[name].shape[1]] = column[name]
            assert torch.equal(out[name][:, j], padded), (name, j)
    # And each text's tokens are those of the text alone.
    for i in range(3):
        for j in range(k):
            alone = tiny_encoder.tokenizer(ROWS[i][j])["input_ids"]
            assert out["input_ids"][i, j, : len(alone)].tolist() == alone
            assert out["attention_mask"][i, j].sum().item() == len(alone)
    assert set(out) == set(tiny_encoder.tokenizer.model_input_names) | {"targets"}


def test_collator_targets_per_kind(tiny_encoder):
    pairs = [("a man", "a dog"), ("the cat", "The  CAT "), ("red car", "blue bus")]
    scores = ExampleCollator(tiny_encoder, "score")(
        [Example(p, s) for p, s in zip(pairs, [0.0, 0.25, 1.0], strict=True)]
    )
    assert scores["targets"].dtype == torch.float32
    assert scores["targets"].tolist() == [0.0, 0.25, 1.0]

    for kind in ("binary", "class"):
        labels = ExampleCollator(tiny_encoder, kind)(
            [Example(p, y) for p, y in zip(pairs, [1, 0, 2], strict=True)]
        )
        assert labels["targets"].dtype == torch.long
        assert labels["targets"].tolist() == [1, 0, 2]

    none = ExampleCollator(tiny_encoder, "none")([Example(p) for p in pairs])
    assert none["targets"].dtype == torch.long
    assert none["targets"].tolist() == [text_id("a dog"), text_id("the cat"), text_id("blue bus")]
    # Same normalised positive text -> same id, so in-batch losses can mask it.
    assert none["targets"][1].item() == text_id("the cat")


def test_collator_group_ids_are_small_and_consistent_across_calls(tiny_encoder):
    collator = ExampleCollator(tiny_encoder, "group")
    first = collator([Example(("t1",), "q9"), Example(("t2",), 104), Example(("t3",), "q9")])
    second = collator([Example(("t4",), 104), Example(("t5",), "zz"), Example(("t6",), "q9")])
    assert first["targets"].dtype == second["targets"].dtype == torch.long
    assert first["targets"].tolist() == [0, 1, 0]
    assert second["targets"].tolist() == [1, 2, 0]


def test_collator_rejects_mixed_numbers_of_texts(tiny_encoder):
    collator = ExampleCollator(tiny_encoder, "none")
    with pytest.raises(DataError, match="different numbers of texts"):
        collator([Example(("a", "b")), Example(("a", "b", "c"))])
    with pytest.raises(DataError):
        collator([Example(("a", "b", "c")), Example(("a",))])


def test_collator_counts_truncated_texts(tiny_encoder):
    tiny_encoder.max_seq_length = 8  # [CLS] + 6 tokens + [SEP]
    collator = ExampleCollator(tiny_encoder, "none")
    long = "the new government said it will vote on the bill today"  # 11 words
    exactly = "a b c d e f"  # 6 tokens + 2 specials = 8: not truncated
    out = collator([Example((long, "a dog")), Example((exactly, long))])
    assert collator.truncated == 2
    assert out["input_ids"].shape == (2, 2, 8)
    assert out["input_ids"][0, 0, -1].item() == tiny_encoder.tokenizer.sep_token_id
    collator([Example(("short", exactly))])
    assert collator.truncated == 2
    collator([Example((long + " again", long))])
    assert collator.truncated == 4
