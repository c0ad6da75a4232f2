"""STS12-16 / STS-B / SICK-R suite: readers on small hand-written files, scoring, the Table-1 markdown, and
(marked slow) all-MiniLM-L6-v2 on the real data."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from sbert_siamese.errors import ConfigError, DataError
from sbert_siamese.evaluation.sts_suite import (
    STS_SUBSETS,
    SUITE,
    STSSuiteData,
    evaluate_sts_suite,
    load_sts_suite,
    read_sick,
    read_sts_subset,
    read_sts_year,
    score_sts_suite,
    sts_suite_markdown,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def write_year(folder: Path, year: str, rows_by_subset: dict[str, list[tuple[str, str, str]]]) -> None:
    """(s1, s2, gold) rows per subset; STS16 files get the STS2016. prefix, like the organisers' release."""
    prefix = "STS2016" if year == "STS16" else "STS"
    for subset, rows in rows_by_subset.items():
        extra = "\tsrc1\tsrc2" if year == "STS16" else ""
        write(folder / f"{prefix}.input.{subset}.txt", "".join(f"{a}\t{b}{extra}\n" for a, b, _ in rows))
        write(folder / f"{prefix}.gs.{subset}.txt", "".join(f"{g}\n" for _, _, g in rows))


def tiny_year_rows(year: str) -> dict[str, list[tuple[str, str, str]]]:
    return {
        subset: [(f"{year} {subset} a{i}", f"{year} {subset} b{i}", str(i)) for i in range(3)]
        for subset in STS_SUBSETS[year]
    }


def write_suite(root: Path, names=SUITE) -> Path:
    for year in STS_SUBSETS:
        if year in names:
            write_year(root / "sts12-16" / year, year, tiny_year_rows(year))
    if "STSb" in names:
        rows = [f"main-news\tfile\t2016\t{i:04d}\t{i}.0\tstsb left {i}\tstsb right {i}" for i in range(4)]
        write(root / "stsbenchmark" / "sts-test.csv", "\n".join(rows) + "\n")
    if "SICK-R" in names:
        lines = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        lines += [f"{i}\tsick left {i}\tsick right {i}\t{1 + i}\tNEUTRAL" for i in range(4)]
        write(root / "sick" / "SICK_test_annotated.txt", "\r\n".join(lines) + "\r\n")
    return root


# ---------------------------------------------------------------------------------------------- readers
def test_read_subset_skips_empty_gold_lines_and_ignores_source_columns(tmp_path):
    inputs = write(
        tmp_path / "STS.input.x.txt",
        'A man "plays"\tA man plays.\tsrc\tsrc\nunscored one\tunscored two\nDogs run.\tCats sleep.\n',
    )
    gold = write(tmp_path / "STS.gs.x.txt", "4.6\n\n0.25\n")
    examples = read_sts_subset(inputs, gold)
    assert [(e.text_a, e.text_b) for e in examples] == [
        ('A man "plays"', "A man plays."),
        ("Dogs run.", "Cats sleep."),
    ]
    assert [e.score for e in examples] == pytest.approx([4.6 / 5, 0.05])  # scaled to [0, 1]
    assert [e.source for e in examples] == [f"{inputs}:1", f"{inputs}:3"]


def test_read_subset_without_final_newline(tmp_path):
    examples = read_sts_subset(write(tmp_path / "in.txt", "a\tb\nc\td"), write(tmp_path / "gs.txt", "1\n2"))
    assert [e.text_b for e in examples] == ["b", "d"]


@pytest.mark.parametrize(
    "inputs, gold, where, match",
    [
        ("a\tb\nno tab here\nc\td\n", "1\n2\n3\n", "in.txt:2", "expected 2 tab-separated sentences"),
        ("a\tb\n\nc\td\n", "1\n2\n3\n", "in.txt:2", "found 1 field"),  # empty input line with a score
        ("a\tb\n\tx\n", "1\n2\n", "in.txt:2", "sentence1 is empty"),
        ("a\tb\nc\td\n", "1\nfour\n", "gs.txt:2", "'four' is not a number"),
        ("a\tb\nc\td\n", "5.5\n1\n", "gs.txt:1", r"outside \[0.0, 5.0\]"),
    ],
)
def test_read_subset_malformed_lines_name_file_and_line(tmp_path, inputs, gold, where, match):
    with pytest.raises(DataError, match=match) as info:
        read_sts_subset(write(tmp_path / "in.txt", inputs), write(tmp_path / "gs.txt", gold))
    assert str(info.value).startswith(str(tmp_path / where) + ": ")


def test_read_subset_misaligned_files(tmp_path):
    with pytest.raises(DataError, match=r"gs\.txt: has 1 lines but .*in\.txt has 2"):
        read_sts_subset(write(tmp_path / "in.txt", "a\tb\nc\td\n"), write(tmp_path / "gs.txt", "1\n"))


def test_read_year_sts16_prefix_and_subset_order(tmp_path):
    write_year(tmp_path, "STS16", tiny_year_rows("STS16"))
    year = read_sts_year(tmp_path, "STS16")
    assert list(year) == list(STS_SUBSETS["STS16"])
    assert year["plagiarism"][2].text_a == "STS16 plagiarism a2"
    assert year["plagiarism"][2].source.endswith("STS2016.input.plagiarism.txt:3")


def test_read_year_sts13_without_smt_input(tmp_path):
    write_year(tmp_path, "STS13", tiny_year_rows("STS13"))
    write(tmp_path / "STS.gs.SMT.txt", "1\n2\n")  # gold only, as shipped (no licensed input)
    assert list(read_sts_year(tmp_path, "STS13")) == ["FNWN", "headlines", "OnWN"]


def test_read_year_missing_subset_or_unscored_subset_is_an_error(tmp_path):
    rows = tiny_year_rows("STS14")
    del rows["images"]
    write_year(tmp_path / "a", "STS14", rows)
    with pytest.raises(
        DataError, match=r"STS\.input\.images\.txt: file not found \(subset 'images' of STS14\)"
    ):
        read_sts_year(tmp_path / "a", "STS14")
    write_year(tmp_path / "b", "STS15", {"x": [("a", "b", "")]})
    with pytest.raises(DataError, match=r"STS\.gs\.x\.txt: file is empty; expected gold scores"):
        read_sts_year(tmp_path / "b", "STS15", subsets=["x"])
    with pytest.raises(ConfigError, match="unknown STS year 'STS17'"):
        read_sts_year(tmp_path, "STS17")


def test_read_sick_crlf_header_and_bad_score(tmp_path):
    path = write(
        tmp_path / "SICK_test_annotated.txt",
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n"
        '1\tA "quoted" man\tA man\t4.5\tENTAILMENT\r\n2\tx\ty\t1\tNEUTRAL\r\n',
    )
    examples = read_sick(path)
    assert [(e.text_a, e.score) for e in examples] == [('A "quoted" man', 0.875), ("x", 0.0)]  # (s - 1) / 4
    bad = write(tmp_path / "bad.txt", "pair_ID\tsentence_A\tsentence_B\trelatedness_score\n1\ta\tb\t0.5\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: score 0\.5 is outside \[1\.0, 5\.0\]"):
        read_sick(bad)


def test_load_suite_all_present(tmp_path):
    data = load_sts_suite(write_suite(tmp_path))
    assert list(data) == list(SUITE) and data.missing == {}
    assert len(data.pairs("STS12")) == 3 * 5 and len(data.pairs("STS13")) == 3 * 3
    assert list(data["STSb"]) == ["test"] and len(data.pairs("STSb")) == 4
    assert [e.score for e in data.pairs("SICK-R")] == [0.0, 0.25, 0.5, 0.75]


def test_load_suite_records_missing_datasets(tmp_path):
    data = load_sts_suite(write_suite(tmp_path, names=("STS12", "SICK-R")))
    assert list(data) == ["STS12", "SICK-R"]
    assert set(data.missing) == {"STS13", "STS14", "STS15", "STS16", "STSb"}
    assert str(tmp_path / "stsbenchmark" / "sts-test.csv") in data.missing["STSb"]
    assert list(load_sts_suite(tmp_path, names=["SICK-R"])) == ["SICK-R"]


def test_load_suite_errors(tmp_path):
    with pytest.raises(DataError, match="none of the STS suite datasets found"):
        load_sts_suite(tmp_path)
    with pytest.raises(DataError, match="data directory not found"):
        load_sts_suite(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"unknown STS suite dataset\(s\) \['STS99'\]"):
        load_sts_suite(tmp_path, names=["STS99"])
    write_suite(tmp_path, names=("STS12",))
    write(tmp_path / "sts12-16" / "STS12" / "STS.gs.MSRvid.txt", "1\n2\nx\n")
    with pytest.raises(DataError, match=r"STS\.gs\.MSRvid\.txt:3: score 'x' is not a number"):
        load_sts_suite(tmp_path)


# ---------------------------------------------------------------------------------------------- scoring
def test_score_suite_all_is_the_concatenated_spearman(tmp_path):
    data = load_sts_suite(write_suite(tmp_path, names=("STS13", "STSb")))
    gold13 = np.array([e.score for e in data.pairs("STS13")])  # 0, .2, .4 per subset
    rng = np.random.default_rng(0)
    cos13 = (
        gold13 + rng.normal(scale=0.3, size=gold13.shape) + np.repeat([0.0, 1.0, -1.0], 3)
    )  # subset offsets
    cos_b = np.array([0.1, 0.3, 0.2, 0.9])
    results = score_sts_suite(data, {"STS13": cos13, "STSb": cos_b})
    concatenated = spearmanr(gold13, cos13)[0] * 100
    per_subset = [spearmanr(gold13[i : i + 3], cos13[i : i + 3])[0] * 100 for i in (0, 3, 6)]
    assert results["STS13"] == pytest.approx(concatenated)
    assert results["STSb"] == pytest.approx(spearmanr([0, 1, 2, 3], cos_b)[0] * 100) == pytest.approx(80.0)
    assert results["avg"] == pytest.approx((concatenated + 80.0) / 2)
    assert results.missing == data.missing and "STS12" in results.missing
    details = results.details["STS13"]
    assert [details[s] for s in ("FNWN", "headlines", "OnWN")] == pytest.approx(per_subset)
    assert details["mean"] == pytest.approx(np.mean(per_subset))
    assert details["wmean"] == pytest.approx(np.mean(per_subset))  # equal sizes
    assert details["n"] == 9 and details["all"] == results["STS13"]
    assert not math.isclose(details["all"], details["mean"])  # the conventions really differ here
    wmean = score_sts_suite(data, {"STS13": cos13, "STSb": cos_b}, aggregate="wmean")
    assert wmean["STS13"] == pytest.approx(details["wmean"]) and wmean["STSb"] == results["STSb"]
    with pytest.raises(ConfigError, match="aggregate must be one of all, wmean, mean"):
        score_sts_suite(data, {}, aggregate="median")


def test_score_suite_weighted_mean_uses_subset_sizes():
    from sbert_siamese.data.readers import PairExample

    def pairs(scores):
        return [PairExample("a", "b", s) for s in scores]

    data = STSSuiteData({"STS12": {"x": pairs([0.0, 0.5, 1.0]), "y": pairs([0.0, 1.0])}})
    # subset x: perfectly ordered (+100); subset y: reversed (-100); concatenated: 5 pairs
    cosine = np.array([0.1, 0.2, 0.3, 0.9, 0.8])
    results = score_sts_suite(data, {"STS12": cosine})
    details = results.details["STS12"]
    assert (details["x"], details["y"]) == (pytest.approx(100.0), pytest.approx(-100.0))
    assert details["mean"] == pytest.approx(0.0)
    assert details["wmean"] == pytest.approx((3 * 100 - 2 * 100) / 5)
    assert results["STS12"] == pytest.approx(spearmanr([0, 0.5, 1, 0, 1], cosine)[0] * 100)


class FakeEncoder:
    """First sentences (``... a<i>``, ``... left <i>``) at angle 0; second sentences at angle 0.15 (9 - i), so
    the cosine of pair i rises with i, like the gold scores of ``write_suite``."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, batch_size=32, show_progress_bar=False):
        self.calls.append(len(texts))
        first = ["left" in t or t.split()[-1].startswith("a") for t in texts]
        angles = np.array([0.0 if f else 0.15 * (9 - int(t[-1])) for t, f in zip(texts, first, strict=True)])
        return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def test_evaluate_suite_with_a_fake_encoder(tmp_path):
    write_suite(tmp_path, names=("STS12", "STSb", "SICK-R"))
    encoder = FakeEncoder()
    results = evaluate_sts_suite(encoder, tmp_path, batch_size=8)
    assert set(results) == {"STS12", "STSb", "SICK-R", "avg"}
    assert encoder.calls == [30, 8, 8]  # one call per dataset, each distinct sentence once
    for key in ("STS12", "STSb", "SICK-R", "avg"):
        assert results[key] == pytest.approx(100.0), key
    assert set(results.missing) == {"STS13", "STS14", "STS15", "STS16"}
    with pytest.raises(ConfigError, match="aggregate must be one of"):
        evaluate_sts_suite(encoder, tmp_path, aggregate="max")


def test_evaluate_suite_with_the_tiny_encoder(tmp_path, tiny_encoder):
    write_suite(tmp_path, names=("STS16", "SICK-R"))
    results = evaluate_sts_suite(tiny_encoder, tmp_path, batch_size=16)
    assert set(results) == {"STS16", "SICK-R", "avg"}
    assert all(-100 <= results[k] <= 100 for k in results)
    assert results["avg"] == pytest.approx((results["STS16"] + results["SICK-R"]) / 2)


# ---------------------------------------------------------------------------------------------- markdown
def test_markdown_table_one_model():
    scores = dict(zip(SUITE, [70.0, 80.5, 75.25, 85.0, 79.0, 82.034, 77.7], strict=True))
    scores["avg"] = float(np.mean(list(scores.values())))
    table = sts_suite_markdown(scores)
    assert table.splitlines() == [
        "| Model | STS12 | STS13 | STS14 | STS15 | STS16 | STSb | SICK-R | Avg. |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|",
        "| model | 70.00 | 80.50 | 75.25 | 85.00 | 79.00 | 82.03 | 77.70 | 78.50 |",
    ]


def test_markdown_table_several_models_and_missing_columns():
    full = dict(zip(SUITE, [60.0] * 7, strict=True))
    partial = {"STS12": 50.0, "STSb": 70.0, "avg": 60.0}
    table = sts_suite_markdown({"SBERT-base": full, "mine": partial}, digits=1)
    lines = table.splitlines()
    assert lines[2] == "| SBERT-base | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 |"
    assert lines[3] == "| mine | 50.0 | – | – | – | – | 70.0 | – | 60.0* |"
    assert lines[-1] == "\\* average over the datasets present only."
    with pytest.raises(ConfigError, match="must be a mapping"):
        sts_suite_markdown({"a": full, "b": 3.0, "c": "x"})


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_all_minilm_l6_v2_on_the_real_suite(shared_data_dir, packaged_minilm):
    from sbert_siamese import SiameseEncoder

    if not (shared_data_dir / "sts12-16").is_dir():
        pytest.skip("STS12-16 not found under the shared data directory")
    encoder = SiameseEncoder.from_pretrained(packaged_minilm)
    start = time.perf_counter()
    results = evaluate_sts_suite(encoder, shared_data_dir, batch_size=64)
    elapsed = time.perf_counter() - start
    assert results.missing == {}
    assert list(results) == [*SUITE, "avg"]
    assert results["STSb"] == pytest.approx(82.03, abs=0.1)  # sentence-transformers' published STS-B test
    assert all(50 < results[name] < 100 for name in SUITE)
    assert [int(results.details[name]["n"]) for name in SUITE] == [3108, 1500, 3750, 3000, 1186, 1379, 4927]
    # shown with -s / -rP: the numbers and the aggregation alternatives
    print(f"\n{sts_suite_markdown({'all-MiniLM-L6-v2': results})}({elapsed:.0f} s)")
    for name in SUITE[:5]:
        d = results.details[name]
        print(f"{name}: all {d['all']:.2f}  wmean {d['wmean']:.2f}  mean {d['mean']:.2f}")
