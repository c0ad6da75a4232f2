"""Batch samplers: every example once per epoch, no duplicate text in a batch, length-grouped batches,
P groups x K items; deterministic for a seed, a new order each epoch."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sbert_siamese.data.examples import Example, normalise
from sbert_siamese.data.samplers import GroupBatchSampler, LengthGroupedBatchSampler, NoDuplicatesBatchSampler
from sbert_siamese.errors import ConfigError


def epoch(sampler) -> list[list[int]]:
    return [list(batch) for batch in sampler]


def flat(batches) -> list[int]:
    return [i for batch in batches for i in batch]


# ----------------------------------------------------------------------------------------- no duplicates
def many_duplicates(n: int = 120, seed: int = 0) -> list[Example]:
    """Pairs over a pool of 15 texts, each written in several cases / spacings: duplicates everywhere."""
    rng = random.Random(seed)
    pool = [f"question {i} about python" for i in range(15)]

    def variant(text):
        return rng.choice([text, text.upper(), " " + text.replace(" ", "  ") + " "])

    return [Example((variant(rng.choice(pool)), variant(rng.choice(pool)))) for _ in range(n)]


@pytest.mark.parametrize("batch_size", [1, 4, 7])
def test_no_duplicates_every_index_once_and_no_text_twice_in_a_batch(batch_size):
    examples = many_duplicates()
    sampler = NoDuplicatesBatchSampler(examples, batch_size, seed=3)
    for _ in range(2):  # two epochs
        batches = epoch(sampler)
        used = flat(batches)
        assert len(used) == len(set(used))  # no example twice in an epoch
        assert all(len(b) == batch_size for b in batches)  # only full batches
        if batch_size == 1:  # a single-example batch never clashes: nothing is left over
            assert sorted(used) == list(range(len(examples)))
        for batch in batches:
            texts = [normalise(t) for i in batch for t in set(map(normalise, examples[i].texts))]
            assert len(texts) == len(set(texts)), batch
    assert sampler.batch_size == batch_size


def test_no_duplicates_fills_batches_when_texts_are_distinct():
    examples = [Example((f"anchor {i}", f"positive {i}")) for i in range(23)]
    batches = epoch(NoDuplicatesBatchSampler(examples, 5, seed=0))
    assert [len(b) for b in batches] == [5, 5, 5, 5]  # the last 3 wait for the next epoch
    assert len(NoDuplicatesBatchSampler(examples, 5)) == 4


def test_no_duplicates_deterministic_per_seed_and_new_order_each_epoch():
    examples = many_duplicates()
    a, b = NoDuplicatesBatchSampler(examples, 8, seed=1), NoDuplicatesBatchSampler(examples, 8, seed=1)
    first_a, first_b = epoch(a), epoch(b)
    assert first_a == first_b
    second_a = epoch(a)
    assert second_a == epoch(b)
    assert second_a != first_a
    assert epoch(NoDuplicatesBatchSampler(examples, 8, seed=2)) != first_a


# ----------------------------------------------------------------------------------------- length grouped
def varied_lengths(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    return [Example(("x" * rng.randint(1, 400), "y" * rng.randint(1, 40))) for _ in range(n)]


@pytest.mark.parametrize(
    ("n", "batch_size", "window"), [(1000, 16, 5), (1000, 16, 50), (37, 4, 3), (64, 8, 8)]
)
def test_length_grouped_every_index_once_and_len_matches(n, batch_size, window):
    sampler = LengthGroupedBatchSampler(varied_lengths(n), batch_size, seed=0, window=window)
    for _ in range(2):
        batches = epoch(sampler)
        assert sorted(flat(batches)) == list(range(n))
        assert len(batches) == len(sampler)
        assert all(1 <= len(b) <= batch_size for b in batches)
    assert sampler.batch_size == batch_size


def test_length_grouped_batches_hold_similar_lengths():
    examples = varied_lengths(1600, seed=1)
    lengths = [max(len(t) for t in e.texts) for e in examples]

    def mean_spread(batches):
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)

    grouped = epoch(LengthGroupedBatchSampler(examples, 16, seed=0, window=20))
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    shuffled = [order[i : i + 16] for i in range(0, len(order), 16)]
    # Random batches of 16 from lengths uniform in [1, 400] spread over ~350; sorted windows of 320 over ~25.
    assert mean_spread(shuffled) > 300
    assert mean_spread(grouped) < 40


def test_length_grouped_batches_are_runs_of_sorted_windows():
    # With one window holding everything, batches are consecutive runs of the length-sorted examples.
    examples = [Example(("z" * length,)) for length in random.Random(5).sample(range(1, 200), 40)]
    batches = epoch(LengthGroupedBatchSampler(examples, 8, seed=0, window=10))
    runs = sorted(sorted(len(examples[i].texts[0]) for i in b) for b in batches)
    everything = sorted(len(e.texts[0]) for e in examples)
    assert runs == [everything[i : i + 8] for i in range(0, 40, 8)]


def test_length_grouped_deterministic_and_new_order_each_epoch():
    examples = varied_lengths(300)
    a, b = LengthGroupedBatchSampler(examples, 8, seed=4), LengthGroupedBatchSampler(examples, 8, seed=4)
    first = epoch(a)
    assert first == epoch(b)
    second = epoch(a)
    assert second == epoch(b) and second != first
    assert epoch(LengthGroupedBatchSampler(examples, 8, seed=5)) != first
    # The order of batches is shuffled, not longest-first or shortest-first.
    maxima = [max(len(examples[i].texts[0]) for i in batch) for batch in first]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


# ----------------------------------------------------------------------------------------------- groups
def group_labels() -> list:
    """Group label per example: 12 groups of 2..6 members (ids of mixed types) and 5 singletons."""
    rng = random.Random(7)
    labels = []
    for g in range(12):
        labels += [f"g{g}" if g % 2 else g] * (2 + g % 5)
    labels += [f"single{i}" for i in range(5)]
    rng.shuffle(labels)
    return labels


@pytest.mark.parametrize(("batch_size", "k"), [(4, 2), (6, 3), (12, 3), (8, 4)])
def test_group_batches_are_p_groups_of_k_distinct_items(batch_size, k):
    labels = group_labels()
    counts = Counter(labels)
    eligible = {g for g, c in counts.items() if c >= k}
    sampler = GroupBatchSampler(labels, batch_size, samples_per_group=k, seed=0)
    assert sampler.batch_size == batch_size
    for _ in range(3):
        batches = epoch(sampler)
        assert len(batches) == len(sampler) == len(eligible) // (batch_size // k)
        used = []
        for batch in batches:
            assert len(batch) == batch_size and len(set(batch)) == batch_size  # K distinct items per group
            per_group = Counter(labels[i] for i in batch)
            assert set(per_group.values()) == {k}
            assert len(per_group) == batch_size // k >= 2
            assert set(per_group) <= eligible  # groups with < K members never appear
            used += list(per_group)
        assert len(used) == len(set(used))  # groups drawn without replacement within an epoch


def test_group_batches_deterministic_and_new_order_each_epoch():
    labels = group_labels()
    a, b = GroupBatchSampler(labels, 4, 2, seed=1), GroupBatchSampler(labels, 4, 2, seed=1)
    first = epoch(a)
    assert first == epoch(b)
    second = epoch(a)
    assert second == epoch(b) and second != first
    assert epoch(GroupBatchSampler(labels, 4, 2, seed=2)) != first


def test_group_sampler_every_batch_has_at_least_two_groups():
    # batch_size == samples_per_group gives P = 1: a batch of a single group has no negatives for a
    # batch-mined triplet loss, so the sampler must refuse it like the other impossible settings.
    labels = group_labels()
    try:
        sampler = GroupBatchSampler(labels, 4, samples_per_group=4)
    except ConfigError as exc:
        assert "batch_size" in str(exc)
        return
    groups_per_batch = [len({labels[i] for i in batch}) for batch in sampler]
    assert min(groups_per_batch) >= 2, f"batches with one group each: {groups_per_batch}"


@pytest.mark.parametrize("k", [0, 1])
def test_group_sampler_needs_k_at_least_two(k):
    with pytest.raises(ConfigError, match=r"samples_per_group must be >= 2.*got " + str(k)):
        GroupBatchSampler(group_labels(), 4, samples_per_group=k)


def test_group_sampler_batch_size_must_be_a_multiple_of_k():
    with pytest.raises(ConfigError, match="batch_size 7 must be a multiple of samples_per_group 2"):
        GroupBatchSampler(group_labels(), 7, samples_per_group=2)


def test_group_sampler_too_few_groups_says_how_to_fix():
    labels = ["a", "a", "b", "b", "c", "d"]  # two groups of 2
    with pytest.raises(ConfigError) as info:
        GroupBatchSampler(labels, 6, samples_per_group=2)  # needs 3 groups
    message = str(info.value)
    assert "2 groups" in message and "3" in message
    assert "lower batch_size or samples_per_group" in message
    # Only one group large enough for K = 3: no negatives possible.
    with pytest.raises(ConfigError, match="at least 2"):
        GroupBatchSampler(["a"] * 3 + ["b"] * 2 + ["c"] * 2, 3 * 2, samples_per_group=3)
    # Exactly enough groups: one batch holding both, each group's two items.
    (batch,) = epoch(GroupBatchSampler(labels, 4, samples_per_group=2))
    assert sorted(batch) == [0, 1, 2, 3]
    assert {frozenset(batch[:2]), frozenset(batch[2:])} == {frozenset({0, 1}), frozenset({2, 3})}
