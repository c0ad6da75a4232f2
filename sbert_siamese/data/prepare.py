"""From a TrainConfig to training examples and evaluators: read, split by question, add train-only data,
derive the objective's input, and pick the evaluator that fits the targets.

Order (each step fails with a file:line error before any model loads):
1. read ``train_data`` (one path or a list, concatenated) with the columns and target the objective needs
   (labelled pairs when ``derive`` turns them into something else);
2. ``split: question`` cuts them into train / dev / test so that no question (normalised text, or the
   ``key_columns``) is in two splits (``splits.split_by_question``); otherwise dev/test come from
   ``dev_data`` / ``test_data``;
3. ``extra_train_data`` joins train, minus any pair that shares a question with dev or test;
4. ``derive: positives`` keeps the duplicate pairs as (anchor, positive) for in-batch negatives;
   ``derive: groups`` turns duplicate clusters into group-labelled texts for batch-mined triplets.

Malformed rows follow ``on_bad_rows``: ``error`` stops at the first one (file:line and what was expected);
``skip`` leaves them out, logs one warning with the count by reason and the first examples, and adds
``data/skipped_rows`` and ``data/skipped_rows/<reason>`` to ``TaskData.stats`` (hence to metrics.json).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import SOURCE_KEYS, TrainConfig
from ..errors import ConfigError
from ..losses import Objective
from .examples import (
    Example,
    duplicate_groups,
    from_pairs,
    known_positives,
    normalise,
    positives,
    read_examples,
)
from .readers import BadRows, Columns, ScoreRange, load_pairs
from .splits import split_by_question

logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    train: list[Example]
    dev: list[Example] | None
    test: list[Example] | None
    eval_target: str  # "score" (STS evaluation) or "binary" (pair classification)
    stats: dict[str, float] = field(default_factory=dict)
    extra_tests: dict[str, list[Example]] = field(default_factory=dict)  # name -> pairs, like test
    # for hard-negative mining: every training text, and each text's known positives (duplicate cluster)
    corpus: list[str] = field(default_factory=list)
    same: dict[str, set[str]] = field(default_factory=dict)
    # (anchor, positive, labelled non-duplicate) rows, added to the mined triplets (labelled_negatives)
    negative_rows: list[Example] = field(default_factory=list)
    # group id -> group ids linked by a labelled non-duplicate (labelled_negatives with derive: groups)
    group_neighbours: dict | None = None
    # the rows skipped as malformed (on_bad_rows: skip), counted by reason
    bad_rows: BadRows | None = None


def _paths(value) -> list[str]:
    return list(value) if isinstance(value, list | tuple) else [value]


def source_config(config: TrainConfig, source) -> tuple[TrainConfig, str]:
    """A data source is a path, or a mapping ``{path: ..., data_format: ..., text_a_column: ...}`` whose
    keys override the recipe's for that source only (e.g. SNLI, MultiNLI and SICK in one training set)."""
    if not isinstance(source, dict):
        return config, source
    unknown = sorted(set(source) - set(SOURCE_KEYS) - {"path", "name"})
    if unknown or "path" not in source:
        raise ConfigError(
            f"data source {source}: needs 'path'; other keys may be {', '.join(SOURCE_KEYS)} "
            f"(unknown: {unknown})"
        )
    overrides = {k: v for k, v in source.items() if k in SOURCE_KEYS}
    return dataclasses.replace(config, **overrides), source["path"]


def _read(
    config: TrainConfig, source, target: str, bad_rows: BadRows | None = None
) -> tuple[list[Example], list[tuple[str, ...]]]:
    config, source = source_config(config, source)
    if config.data_format in ("stsb", "hf"):
        if target != "score":
            raise ConfigError(
                f"data_format {config.data_format} holds scored pairs; loss {config.loss} needs "
                "labels: use csv, tsv, tsv_quoted, jsonl or parquet"
            )
        columns = Columns(config.text_a_column, config.text_b_column, config.score_column)
        pairs = load_pairs(
            source,
            config.data_format,
            config.data_dir,
            columns,
            ScoreRange(config.score_min, config.score_max),
            bad_rows,
        )
        examples = from_pairs(pairs)
        return examples, [tuple(normalise(t) for t in e.texts) for e in examples]
    path = Path(source)
    if config.data_dir is not None and not path.is_absolute():
        path = Path(config.data_dir) / path
    text_columns = config.text_columns or [config.text_a_column, config.text_b_column]
    target_column = {"score": config.score_column, "none": None}.get(target, config.label_column)
    return read_examples(
        path,
        config.data_format,
        text_columns,
        target,
        target_column,
        ScoreRange(config.score_min, config.score_max),
        config.label_names,
        config.num_labels,
        config.key_columns,
        bad_rows,
    )


def prepare_data(config: TrainConfig, objective: Objective, bad_rows: BadRows | None = None) -> TaskData:
    """Read and arrange the data of ``config`` for ``objective`` (see the module docstring).

    ``bad_rows`` collects the malformed rows of every read; by default a new ``BadRows(config.on_bad_rows)``.
    Pass one to share the count between several calls (the main task and the ``tasks``): each call logs
    what it skipped, and ``stats`` holds the collector's running totals."""
    if bad_rows is None:
        bad_rows = BadRows(config.on_bad_rows)
    start = bad_rows.copy()
    read_target, eval_target = _targets(config, objective)
    train, train_keys = _read_all(config, _paths(config.train_data), read_target, bad_rows)
    stats: dict[str, float] = {}  # filled step by step: its order is the order of metrics.json
    if config.split == "question":
        train, dev, test, held_out = _split_by_question(config, train, train_keys, read_target, stats)
    else:
        dev, test, held_out = _read_dev_test(config, eval_target, bad_rows)
    train = train + _extra_train(config, held_out, read_target, bad_rows, stats)
    extra_tests = _read_extra_tests(config, eval_target, bad_rows)
    if config.drop_test_overlap:
        train = _drop_test_overlap(train, [test or [], *extra_tests.values()], stats)
    corpus, same = _mining_corpus(config, train)
    negative_rows, groups, neighbours = _labelled_negatives(config, train, stats)
    train = _derive(config, train, groups, stats)
    if not train:
        raise ConfigError("no training examples left after the split / derivation")
    stats["data/train_examples"] = len(train)
    if dev and eval_target == "binary" and objective.target == "class" and config.num_labels != 2:
        raise ConfigError(
            "pair-classification evaluation needs 0/1 labels; NLI-style evaluation on STS comes "
            "from scored dev/test data"
        )
    skipped = bad_rows.since(start)
    if skipped.total:
        logger.warning("on_bad_rows: skip: %s", skipped.summary(3))
    if bad_rows.total:
        stats.update(bad_rows.to_stats())
    return TaskData(
        train, dev, test, eval_target, stats, extra_tests, corpus, same, negative_rows, neighbours, bad_rows
    )


# ------------------------------------------------------------------------------------ the steps, in order
def _targets(config: TrainConfig, objective: Objective) -> tuple[str, str]:
    """What to read for training and for evaluation: ``(read_target, eval_target)``. Refuses a ``derive``
    that does not fit the loss before any file is read."""
    derived = config.derive != "none"
    if derived and objective.target not in ("none", "group"):
        raise ConfigError(
            f"derive: {config.derive} makes inputs for in-batch or mined-triplet losses, "
            f"not for loss {config.loss}"
        )
    if config.derive == "positives" and objective.target != "none":
        raise ConfigError(
            f"derive: positives fits in_batch_negatives or triplet-style losses, not {config.loss}"
        )
    if config.derive == "groups" and objective.target != "group":
        raise ConfigError(f"derive: groups fits the batch_*_triplet losses, not {config.loss}")
    if objective.target == "group" and not derived:
        raise ConfigError(f"loss {config.loss} needs group-labelled texts: set derive: groups")
    read_target = "binary" if derived else objective.target  # derivations start from labelled pairs
    eval_target = "score" if objective.target == "score" or config.eval_task == "sts" else "binary"
    if config.eval_task == "pairs":
        eval_target = "binary"
    return read_target, eval_target


def _read_all(
    config: TrainConfig, sources, target: str, bad_rows: BadRows
) -> tuple[list[Example], list[tuple[str, ...]]]:
    """The examples of every source, concatenated in order, with their question keys."""
    examples, keys = [], []
    for source in sources:
        more, more_keys = _read(config, source, target, bad_rows)
        examples += more
        keys += more_keys
    return examples, keys


def _split_by_question(
    config: TrainConfig, train: list[Example], keys: list[tuple[str, ...]], read_target: str, stats: dict
) -> tuple[list[Example], list[Example], list[Example], set[str]]:
    """``split: question``: train / dev / test cut from ``train_data`` so that no question is in two of
    them. Returns them and the keys held out of train (dev and test questions)."""
    if config.dev_data is not None or config.test_data is not None:
        raise ConfigError(
            "split: question makes dev and test from train_data: set dev_data and test_data to null"
        )
    if read_target not in ("binary", "class", "score"):
        raise ConfigError("split: question needs labelled or scored pairs in train_data")
    names = split_by_question(keys, tuple(config.split_fractions), config.split_seed)
    parts = {n: [e for e, s in zip(train, names, strict=True) if s == n] for n in ("train", "dev", "test")}
    held_out = {k for key, s in zip(keys, names, strict=True) if s != "train" for k in key}
    stats.update({f"data/{n}_pairs": len(p) for n, p in parts.items()})
    return parts["train"], parts["dev"], parts["test"], held_out


def _read_dev_test(
    config: TrainConfig, eval_target: str, bad_rows: BadRows
) -> tuple[list[Example] | None, list[Example] | None, set[str]]:
    """``dev_data`` and ``test_data`` (None when not set), and their normalised texts, held out of train."""
    dev = _read(config, config.dev_data, eval_target, bad_rows)[0] if config.dev_data else None
    test = _read(config, config.test_data, eval_target, bad_rows)[0] if config.test_data else None
    held_out = set()
    for part in (dev, test):
        for e in part or []:
            held_out.update(normalise(t) for t in e.texts)
    return dev, test, held_out


def _extra_train(
    config: TrainConfig, held_out: set[str], read_target: str, bad_rows: BadRows, stats: dict
) -> list[Example]:
    """``extra_train_data``: train-only examples, minus any that shares a question with dev or test."""
    added = []
    for source in _paths(config.extra_train_data) if config.extra_train_data else []:
        examples, keys = _read(config, source, read_target, bad_rows)
        kept = [e for e, key in zip(examples, keys, strict=True) if not (set(key) & held_out)]
        label = Path(source["path"] if isinstance(source, dict) else source).name
        stats[f"data/extra_dropped_shared_question/{label}"] = len(examples) - len(kept)
        added += kept
    return added


def _read_extra_tests(config: TrainConfig, eval_target: str, bad_rows: BadRows) -> dict[str, list[Example]]:
    """``extra_test_data``: name (the metric prefix) -> pairs, read like the test set."""
    extra_tests = {}
    for source in config.extra_test_data or []:
        if not isinstance(source, dict) or "name" not in source:
            raise ConfigError(
                f"extra_test_data entries need a 'name' (the metric prefix) and a 'path': {source}"
            )
        extra_tests[source["name"]] = _read(config, source, eval_target, bad_rows)[0]
    return extra_tests


def _drop_test_overlap(train: list[Example], tests: list[list[Example]], stats: dict) -> list[Example]:
    """``drop_test_overlap``: train without the examples that hold a text of a test set."""
    test_texts = {normalise(t) for part in tests for e in part for t in e.texts}
    kept = [e for e in train if not any(normalise(t) in test_texts for t in e.texts)]
    stats["data/dropped_test_overlap"] = len(train) - len(kept)
    return kept


def _mining_corpus(config: TrainConfig, train: list[Example]) -> tuple[list[str], dict[str, set[str]]]:
    """For ``hard_negatives``: every training text, and each text's known positives (never a negative)."""
    if not config.hard_negatives:
        return [], {}
    if config.derive != "positives":
        raise ConfigError(
            "hard_negatives mines negatives for (anchor, positive) pairs: set derive: positives"
        )
    return [t for e in train for t in e.texts], known_positives(train)


def _labelled_negatives(
    config: TrainConfig, train: list[Example], stats: dict
) -> tuple[list[Example], list[Example] | None, dict | None]:
    """For ``labelled_negatives``: ``(negative_rows, groups, neighbours)``. With ``derive: groups`` the
    groups and their labelled-negative links (``groups_with_labelled_negatives``); otherwise the
    (anchor, positive, negative) rows added to the mined triplets (``labelled_negative_rows``)."""
    if not config.labelled_negatives:
        return [], None, None
    if config.derive == "groups":
        if config.hard_batches:
            raise ConfigError("labelled_negatives and hard_batches both choose batch neighbours: set one")
        groups, neighbours = groups_with_labelled_negatives(train)
        stats["data/labelled_negative_links"] = sum(len(v) for v in neighbours.values()) // 2
        return [], groups, neighbours
    if not config.hard_negatives:
        raise ConfigError(
            "labelled_negatives adds (anchor, positive, negative) rows, so the duplicate pairs need a "
            "negative too: set hard_negatives: true (or use derive: groups)"
        )
    negative_rows = labelled_negative_rows(train)
    stats["data/labelled_negative_rows"] = len(negative_rows)
    stats["data/labelled_negative_rows_self_positive"] = sum(e.texts[0] == e.texts[1] for e in negative_rows)
    return negative_rows, None, None


def _derive(
    config: TrainConfig, train: list[Example], groups: list[Example] | None, stats: dict
) -> list[Example]:
    """``derive``: the duplicate pairs as (anchor, positive), or the duplicate clusters as group-labelled
    texts (``groups``, when ``_labelled_negatives`` made them already)."""
    if config.derive == "positives":
        return positives(train)
    if config.derive == "groups":
        train = groups if groups is not None else duplicate_groups(train)
        stats["data/groups"] = len({e.target for e in train})
    return train


# ------------------------------------------------------------------------------------ derived inputs
def groups_with_labelled_negatives(pairs: list[Example]) -> tuple[list[Example], dict[int, list[int]]]:
    """Duplicate clusters as groups (``duplicate_groups``), plus, for the batch-mined triplet losses, the
    labelled non-duplicates: a text of a pair labelled 0 that is in no cluster becomes a group of its own,
    listed twice (its two passes differ by dropout, so it has a positive), and every pair labelled 0 links
    the two texts' groups as neighbours, so that a P x K batch holding one also holds the other: the
    hardest negative a miner finds is then a real non-duplicate, not a random text.

    Returns ``(examples, neighbours)``: ``Example((text,), group id)`` and group id -> linked group ids."""
    examples = duplicate_groups(pairs)
    group = {normalise(e.texts[0]): e.target for e in examples}
    next_id = 1 + max(group.values(), default=-1)
    neighbours: dict[int, list[int]] = {}
    for e in pairs:
        if e.target != 0:
            continue
        ids = []
        for text in e.texts[:2]:
            key = normalise(text)
            if key not in group:
                group[key] = next_id
                examples += [Example((text,), next_id, "labelled negative")] * 2
                next_id += 1
            ids.append(group[key])
        a, b = ids
        if a != b:
            for x, y in ((a, b), (b, a)):
                if y not in neighbours.setdefault(x, []):
                    neighbours[x].append(y)
    return examples, neighbours


def labelled_negative_rows(pairs: list[Example]) -> list[Example]:
    """One ``(anchor, positive, negative)`` row per pair labelled 0. The anchor is a side with a known
    duplicate when there is one (its positive: the first other member of its duplicate cluster); otherwise
    the anchor is its own positive: encoded twice in training mode, the two passes differ by dropout (as
    in SimCSE), and the loss still has to rank the labelled non-duplicate below them."""
    members: dict[object, list[str]] = {}
    for e in duplicate_groups(pairs):
        members.setdefault(e.target, []).append(e.texts[0])
    cluster = {normalise(t): texts for texts in members.values() for t in texts}
    rows = []
    for e in pairs:
        if e.target != 0:
            continue
        a, b = e.texts[0], e.texts[1]
        if normalise(a) not in cluster and normalise(b) in cluster:
            a, b = b, a
        if normalise(b) in {normalise(t) for t in cluster.get(normalise(a), [a])}:
            continue  # the labels contradict each other (a duplicate of a duplicate labelled 0): skip
        others = [t for t in cluster.get(normalise(a), []) if normalise(t) != normalise(a)]
        rows.append(Example((a, others[0] if others else a, b), None, "labelled negative"))
    return rows


# ------------------------------------------------------------------------------------ evaluators
