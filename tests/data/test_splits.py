"""Question-disjoint splits: components by hand, no leakage by brute force, determinism, fractions, QQP."""

from __future__ import annotations

import csv
import random
from collections import Counter

import pytest

from sbert_siamese.data.splits import leakage, question_groups, question_key, split_by_question
from sbert_siamese.errors import ConfigError


def _partition(ids: list[int]) -> set[frozenset[int]]:
    """Component ids as a set of pair-index sets, so tests do not depend on how ids are numbered."""
    groups: dict[int, set[int]] = {}
    for i, g in enumerate(ids):
        groups.setdefault(g, set()).add(i)
    return {frozenset(s) for s in groups.values()}


def _brute_components(pairs: list[tuple]) -> set[frozenset[int]]:
    """Pairs sharing a question, closed transitively by repeated merging (no union-find)."""
    groups = [({a, b}, {i}) for i, (a, b) in enumerate(pairs)]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if groups[i][0] & groups[j][0]:
                    groups[i] = (groups[i][0] | groups[j][0], groups[i][1] | groups[j][1])
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return {frozenset(idx) for _, idx in groups}


def _random_graph(seed: int, n_pairs: int = 120, n_nodes: int = 150) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"q{rng.randrange(n_nodes)}", f"q{rng.randrange(n_nodes)}") for _ in range(n_pairs)]


def test_chain_star_and_disconnected_pairs():
    pairs = [("a", "b"), ("x", "y"), ("b", "c"), ("hub", "s1"), ("c", "d"), ("s2", "hub"), ("p", "q")]
    ids = question_groups(pairs)
    assert ids == [0, 1, 0, 2, 0, 2, 3]  # numbered by first appearance
    assert _partition(ids) == {frozenset({0, 2, 4}), frozenset({1}), frozenset({3, 5}), frozenset({6})}


def test_chain_joined_from_both_ends_and_integer_keys():
    # the last pair links two chains built separately
    pairs = [(1, 2), (3, 4), (2, 5), (4, 6), (6, 5)]
    assert question_groups(pairs) == [0, 0, 0, 0, 0]
    assert question_groups([(1, 2), (3, 4), (5, 6)]) == [0, 1, 2]


@pytest.mark.parametrize("seed", range(5))
def test_components_match_brute_force(seed):
    pairs = _random_graph(seed, n_pairs=60, n_nodes=80)
    assert _partition(question_groups(pairs)) == _brute_components(pairs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (0.0, 0.5, 0.5)])
def test_no_question_in_two_splits(seed, fractions):
    pairs = _random_graph(seed)
    names = split_by_question(pairs, fractions=fractions, seed=seed)
    assert set(names) <= {"train", "dev", "test"}
    where: dict[str, set[str]] = {}
    for name, (a, b) in zip(names, pairs, strict=True):
        where.setdefault(a, set()).add(name)
        where.setdefault(b, set()).add(name)
    assert all(len(s) == 1 for s in where.values())
    assert leakage(names, pairs) == 0


def test_leakage_counts_questions_in_several_splits():
    pairs = [("a", "b"), ("b", "c"), ("c", "d"), ("e", "f")]
    assert leakage(["train", "dev", "dev", "test"], pairs) == 1  # b
    assert leakage(["train", "dev", "test", "test"], pairs) == 2  # b and c
    assert leakage([], []) == 0


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_deterministic_and_independent_of_input_order(seed):
    pairs = _random_graph(seed, n_pairs=300, n_nodes=500)
    names = split_by_question(pairs, seed=seed)
    assert names == split_by_question(list(pairs), seed=seed)
    order = list(range(len(pairs)))
    random.Random(seed + 100).shuffle(order)
    shuffled = split_by_question([pairs[i][::-1] if i % 2 else pairs[i] for i in order], seed=seed)
    assert [shuffled[order.index(i)] for i in range(len(pairs))] == names


def test_seed_changes_the_assignment():
    pairs = [(f"a{i}", f"b{i}") for i in range(200)]
    assert split_by_question(pairs, seed=0) != split_by_question(pairs, seed=1)


@pytest.mark.parametrize("seed", range(4))
def test_fractions_respected_on_many_small_components(seed):
    rng = random.Random(seed)
    pairs = []
    for c in range(1500):  # components of 1 to 4 pairs (stars)
        pairs += [(f"c{c}", f"c{c}-{k}") for k in range(rng.randint(1, 4))]
    counts = Counter(split_by_question(pairs, seed=seed))
    n = len(pairs)
    # the midpoint rule misses each boundary by at most half a component (<= 2 pairs)
    assert abs(counts["train"] - 0.8 * n) <= 2
    assert abs(counts["dev"] - 0.1 * n) <= 4
    assert abs(counts["test"] - 0.1 * n) <= 2


def test_giant_component_goes_to_train():
    giant = [("hub", f"s{i}") for i in range(300)]  # 300 of 400 pairs in one component
    pairs = giant + [(f"a{i}", f"b{i}") for i in range(100)]
    for seed in range(5):
        names = split_by_question(pairs, seed=seed)
        assert set(names[:300]) == {"train"}
        counts = Counter(names)
        # the rest lies at [300, 400): dev keeps [320, 360), test [360, 400)
        assert (counts["dev"], counts["test"]) == (40, 40)


def test_edge_cases():
    assert split_by_question([]) == []
    assert question_groups([]) == []
    assert split_by_question([("a", "b")]) == ["train"]
    assert question_groups([("a", "a")]) == [0]
    assert question_groups([("a", "a"), ("b", "b"), ("a", "c")]) == [0, 1, 0]
    with_self = [("a", "a"), ("a", "b")] + [(f"x{i}", f"y{i}") for i in range(8)]
    names = split_by_question(with_self)
    assert len(names) == 10 and names[0] == names[1] and leakage(names, with_self) == 0
    assert Counter(split_by_question([(f"x{i}", f"y{i}") for i in range(10)])) == {
        "train": 8,
        "dev": 1,
        "test": 1,
    }
    assert set(split_by_question([("a", "b"), ("c", "d")], fractions=(1.0, 0.0, 0.0))) == {"train"}
    for bad in [(0.8, 0.1), (0.8, 0.3, -0.1), (0.8, 0.1, 0.2)]:
        with pytest.raises(ConfigError):
            split_by_question([("a", "b")], fractions=bad)


def test_question_key_normalises_case_and_whitespace():
    assert question_key("12", "  How do I  lose\tweight?\n") == "how do i lose weight?"
    assert question_key(2000001, "How do I lose weight?") == question_key(5, "how do i lose weight?")


def _read_qqp(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        return [dict(zip(header, row, strict=True)) for row in reader]


@pytest.mark.slow
def test_real_qqp_split_has_no_shared_question(shared_data_dir):
    rows = []
    for path in ["qqp-subset/mini_quora_duplicate_questions.tsv", "qqp-more/qqp_train_pieces.tsv"]:
        if not (shared_data_dir / path).is_file():
            pytest.skip(f"{path} not in {shared_data_dir}")
        rows += _read_qqp(shared_data_dir / path)
    assert len(rows) == 9_998 + 14_468
    by_text = [
        (question_key(r["qid1"], r["question1"]), question_key(r["qid2"], r["question2"])) for r in rows
    ]
    by_qid = [(r["qid1"], r["qid2"]) for r in rows]
    assert max(Counter(question_groups(by_text)).values()) < 0.01 * len(rows)  # no giant component
    for seed in (0, 1):
        names = split_by_question(by_text, seed=seed)
        assert leakage(names, by_text) == 0
        assert leakage(names, by_qid) == 0
        counts = Counter(names)
        # largest component 83 pairs: each boundary moves by <= 42 pairs; 100 leaves room for data edits
        for name, fraction in [("train", 0.8), ("dev", 0.1), ("test", 0.1)]:
            assert abs(counts[name] - fraction * len(rows)) <= 100, (name, counts)
        for name in ("dev", "test"):  # duplicate rate near the overall 37.2 %
            dup = sum(r["is_duplicate"] == "1" for r, s in zip(rows, names, strict=True) if s == name)
            assert 0.30 < dup / counts[name] < 0.45
