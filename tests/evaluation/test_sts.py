"""STS evaluation against hand-computed similarities and from-scratch correlations; the CLI's read_texts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from sbert_siamese.data.readers import PairExample, read_texts
from sbert_siamese.errors import ConfigError, DataError
from sbert_siamese.evaluation.pair_classification import SIMILARITIES, STSEvaluator, pairwise_similarities


# ---------------------------------------------------------------------------------------------- similarities
def test_pairwise_similarities_by_hand():
    u = np.array([[1, 0], [3, 4], [1, 2], [1, 1], [0, 0]], dtype=np.float32)  # (5, 2)
    v = np.array([[0, 1], [6, 8], [-1, -2], [2, 0], [1, 0]], dtype=np.float32)
    sims = pairwise_similarities(u, v)
    assert set(sims) == set(SIMILARITIES) == {"cosine", "euclidean", "manhattan", "dot"}
    expected = {
        "cosine": [0.0, 1.0, -1.0, 1 / math.sqrt(2), 0.0],  # a zero vector gives 0, not nan
        "euclidean": [-math.sqrt(2), -5.0, -math.sqrt(20), -math.sqrt(2), -1.0],
        "manhattan": [-2.0, -7.0, -6.0, -2.0, -1.0],
        "dot": [0.0, 50.0, -5.0, 2.0, 0.0],
    }
    for name, values in expected.items():
        assert sims[name].dtype == np.float64
        assert sims[name].shape == (5,)
        np.testing.assert_allclose(sims[name], values, rtol=1e-12, atol=1e-12, err_msg=name)


def test_pairwise_similarities_larger_means_closer():
    anchor = np.array([[1.0, 0.0, 0.0]] * 3)
    r = math.sqrt(0.5)
    others = np.array([[1.0, 0.0, 0.0], [r, r, 0.0], [-1.0, 0.0, 0.0]])  # same, 45 degrees, opposite (unit)
    for name, values in pairwise_similarities(anchor, others).items():
        assert values[0] > values[1] > values[2], name


# ---------------------------------------------------------------------------------------------- from scratch
def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    return float(np.sum(xc * yc) / math.sqrt(np.sum(xc * xc) * np.sum(yc * yc)))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(average_ranks(x), average_ranks(y))


def test_average_ranks_helper():
    np.testing.assert_array_equal(
        average_ranks(np.array([10.0, 30.0, 20.0, 30.0, 10.0])), [1.5, 4.5, 3, 4.5, 1.5]
    )


def brute_force_similarities(u, v):
    out = {name: [] for name in SIMILARITIES}
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        out["dot"].append(dot)
        out["cosine"].append(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))))
        out["euclidean"].append(-math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True))))
        out["manhattan"].append(-sum(abs(x - y) for x, y in zip(a, b, strict=True)))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("integer_vectors", [False, True], ids=["continuous", "ties"])
def test_compute_matches_scipy_and_from_scratch(integer_vectors):
    rng = np.random.default_rng(0)
    n, d = 40, 6
    if integer_vectors:  # small integer vectors: ties in dot and manhattan, and in the gold scores
        u = rng.integers(-2, 3, (n, d)).astype(np.float64)
        v = rng.integers(-2, 3, (n, d)).astype(np.float64)
        u[u.sum(axis=1) == 0, 0] = 1.0  # no zero vectors (cosine undefined)
        v[np.abs(v).sum(axis=1) == 0, 0] = 1.0
        u[np.abs(u).sum(axis=1) == 0, 0] = 1.0
    else:
        u = rng.normal(size=(n, d)).astype(np.float32)
        v = (0.5 * u + rng.normal(size=(n, d))).astype(np.float32)
    gold = rng.integers(0, 11, n) / 2.0  # 0, 0.5, ..., 5: many ties
    evaluator = STSEvaluator([f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)], gold, name="sts-dev")
    metrics = evaluator.compute(u, v)

    assert set(metrics) == {f"sts-dev_{c}_{s}" for c in ("pearson", "spearman") for s in SIMILARITIES}
    assert all(type(value) is float for value in metrics.values())
    sims = brute_force_similarities(u.astype(np.float64), v.astype(np.float64))
    for sim in SIMILARITIES:
        pearson_value, spearman_value = metrics[f"sts-dev_pearson_{sim}"], metrics[f"sts-dev_spearman_{sim}"]
        assert pearson_value == pytest.approx(pearsonr(gold, sims[sim])[0], abs=1e-9)
        assert spearman_value == pytest.approx(spearmanr(gold, sims[sim])[0], abs=1e-9)
        assert pearson_value == pytest.approx(pearson(gold, sims[sim]), abs=1e-9)
        assert spearman_value == pytest.approx(spearman(gold, sims[sim]), abs=1e-9)
    if integer_vectors:
        assert len(np.unique(sims["manhattan"])) < n  # the ties really are there


def test_primary_metric_and_default_name():
    assert STSEvaluator(["a", "b"], ["c", "d"], [0.0, 1.0]).primary_metric == "sts_spearman_cosine"
    evaluator = STSEvaluator(["a", "b", "c"], ["d", "e", "f"], [0.0, 1.0, 0.5], name="sts-test")
    assert evaluator.primary_metric == "sts-test_spearman_cosine"
    rng = np.random.default_rng(2)
    assert evaluator.primary_metric in evaluator.compute(rng.normal(size=(3, 4)), rng.normal(size=(3, 4)))


# ---------------------------------------------------------------------------------------------- __call__
class FakeEncoder:
    """Looks up fixed vectors; records every call."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors
        self.calls: list[tuple[list[str], int, bool]] = []

    def encode(self, texts, batch_size=32, show_progress_bar=False):
        self.calls.append((list(texts), batch_size, show_progress_bar))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_call_encodes_each_distinct_sentence_once():
    rng = np.random.default_rng(1)
    sentences1 = ["a cat", "a dog", "a cat", "the sun", "snow", "a dog"]
    sentences2 = ["a dog", "the moon", "snow", "the sun", "rain", "a cat"]
    scores = [0.5, 0.1, 0.3, 1.0, 0.6, 0.5]
    distinct = sorted(set(sentences1 + sentences2))
    vectors = {s: rng.normal(size=5).tolist() for s in distinct}
    encoder = FakeEncoder(vectors)
    evaluator = STSEvaluator(
        sentences1, sentences2, scores, name="dev", batch_size=7, show_progress_bar=False
    )
    metrics = evaluator(encoder)

    assert len(encoder.calls) == 1
    texts, batch_size, bar = encoder.calls[0]
    assert sorted(texts) == distinct and len(texts) == len(distinct)  # each once
    assert (batch_size, bar) == (7, False)
    u = np.array([vectors[s] for s in sentences1], dtype=np.float32)
    v = np.array([vectors[s] for s in sentences2], dtype=np.float32)
    expected = evaluator.compute(u, v)
    assert metrics.keys() == expected.keys()
    for key in expected:
        assert metrics[key] == pytest.approx(expected[key], abs=1e-12), key
    # ... and those are the from-scratch numbers for the looked-up vectors.
    sims = brute_force_similarities(u.astype(np.float64), v.astype(np.float64))
    assert metrics["dev_spearman_cosine"] == pytest.approx(
        spearman(np.array(scores), sims["cosine"]), abs=1e-9
    )


def test_perfect_encoder_gives_spearman_one():
    gold = [0.2, 0.9, 0.0, 0.55, 0.7, 0.35]
    sentences1 = [f"left {i}" for i in range(len(gold))]
    sentences2 = [f"right {i}" for i in range(len(gold))]
    vectors = {s: [1.0, 0.0] for s in sentences1}
    for s, g in zip(sentences2, gold, strict=True):
        angle = (1.0 - g) * math.pi / 2  # cosine = cos(angle) rises with the gold score
        vectors[s] = [math.cos(angle), math.sin(angle)]
    evaluator = STSEvaluator.from_examples(
        [PairExample(a, b, g) for a, b, g in zip(sentences1, sentences2, gold, strict=True)], name="sts-test"
    )
    metrics = evaluator(FakeEncoder(vectors))
    assert metrics["sts-test_spearman_cosine"] == pytest.approx(1.0)
    assert metrics["sts-test_spearman_euclidean"] == pytest.approx(1.0)  # unit vectors: same order
    assert metrics[evaluator.primary_metric] == pytest.approx(1.0)


def test_from_examples_keeps_order_and_kwargs():
    examples = [PairExample("a", "b", 0.25), PairExample("c", "d", 0.75)]
    evaluator = STSEvaluator.from_examples(examples, name="x", batch_size=3)
    assert (evaluator.sentences1, evaluator.sentences2) == (["a", "c"], ["b", "d"])
    np.testing.assert_array_equal(evaluator.scores, [0.25, 0.75])
    assert (evaluator.name, evaluator.batch_size) == ("x", 3)


@pytest.mark.parametrize(
    "args, match",
    [
        ((["a", "b"], ["c"], [0.1, 0.2]), "same length"),
        ((["a", "b"], ["c", "d"], [0.1]), "same length"),
        ((["a"], ["b"], [0.5]), "at least 2 pairs"),
        (([], [], []), "at least 2 pairs"),
    ],
)
def test_constructor_errors(args, match):
    with pytest.raises(ValueError, match=match):
        STSEvaluator(*args)


# ---------------------------------------------------------------------------------------------- read_texts
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
