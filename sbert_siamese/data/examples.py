"""Training examples of any shape: k texts and one target, read from files and derived from labelled pairs.

- ``Example(texts, target)``: ``texts`` has 2 items for pairs, 3 for (anchor, positive, negative), 1 for a
  text with a group label. ``target`` is a scaled score, a 0/1 label, a class index, a group id, or None.
- ``read_examples`` reads any of them from csv / tsv / tsv_quoted / jsonl / parquet / stsb with a column
  mapping; ``positives`` and ``duplicate_groups`` derive in-batch-negative pairs and group-labelled texts
  from labelled pairs; ``ExampleCollator`` tokenizes a batch into (B, k, T) tensors.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from .readers import PairExample, ScoreRange, read_stsb
from .rows import (
    EXTENSIONS,
    BadRows,
    _decode,
    _lines,
    _no_rows,
    _policy,
    _require_columns,
    _show,
    _text,
    parquet_rows,
    parquet_table,
    table_rows,
)


@dataclass(frozen=True)
class Example:
    texts: tuple[str, ...]
    target: float | int | None = None
    source: str = ""


def from_pairs(pairs: Iterable[PairExample]) -> list[Example]:
    return [Example((p.text_a, p.text_b), p.score, p.source) for p in pairs]


def parse_label(raw, label_names: Sequence[str] | None, num_labels: int, path: str, line: int | None) -> int:
    """A class index from an int-like value or, with ``label_names``, a name; errors name file and line."""
    text = str(raw).strip()
    lowered = [str(name).lower() for name in label_names or []]
    if text.lower() in lowered:  # names match case-insensitively (SICK writes ENTAILMENT, SNLI entailment)
        return lowered.index(text.lower())
    try:
        value = int(float(text)) if text not in ("", "nan") and float(text).is_integer() else None
    except ValueError:
        value = None
    valid = list(label_names) if label_names else list(range(num_labels))
    if value is None or not 0 <= value < num_labels:
        raise DataError(f"label {_show(raw)} is not one of {valid}", path, line, reason="bad_label")
    return value


def _group_id(raw, path: str, line: int | None):
    """A group id as given (a string or a number); null, blank, NaN or a list/object is an error."""
    bad = (
        not isinstance(raw, str | int | float)
        or (isinstance(raw, float) and not math.isfinite(raw))
        or not str(raw).strip()
    )
    if bad:
        raise DataError(
            f"group id {_show(raw)} is not usable (expected a non-empty string or a number)",
            path,
            line,
            reason="bad_label",
        )
    return raw


def _rows(
    path: str, data_format: str, required: Sequence[str], bad_rows: BadRows
) -> Iterable[tuple[int | None, dict]]:
    rows = table_rows(path, data_format, required, bad_rows=bad_rows)
    if rows is not None:
        return rows
    if data_format == "parquet":
        table = parquet_table(path, "examples")
        missing = [c for c in required if c not in table.column_names]
        if missing:
            raise DataError(
                f"missing column(s) {missing}; found {table.column_names}", path, reason="columns_not_found"
            )
        return enumerate(parquet_rows(table), start=1)  # rows count from 1, like lines
    raise ConfigError(
        f"{path}: data_format {data_format!r} cannot hold these columns; "
        "use csv, tsv, tsv_quoted, jsonl or parquet"
    )


def _target_parser(
    target: str, column: str | None, score_range: ScoreRange, label_names: Sequence[str] | None, n_labels: int
) -> Callable[[dict, str, int | None], object]:
    """``parse(row, path, line)``: the target of a row as ``target`` says (a scaled score, a label index, a
    group id, or None); a bad value is a ``DataError`` naming file and line."""
    if target == "score":
        return lambda row, path, line: score_range.scale(row[column], path, line)
    if target in ("binary", "class"):
        return lambda row, path, line: parse_label(row[column], label_names, n_labels, path, line)
    if target == "group":
        return lambda row, path, line: _group_id(row[column], path, line)
    return lambda row, path, line: None


def read_examples(
    path: str | Path,
    data_format: str | None,
    text_columns: Sequence[str],
    target: str,
    target_column: str | None = None,
    score_range: ScoreRange | None = None,
    label_names: Sequence[str] | None = None,
    num_labels: int = 2,
    key_columns: Sequence[str] | None = None,
    bad_rows: BadRows | None = None,
) -> tuple[list[Example], list[tuple[str, ...]]]:
    """Read examples with ``len(text_columns)`` texts each.

    Args:
        target: ``score`` (scaled with ``score_range``), ``binary`` (0/1), ``class`` (index or name from
            ``label_names``), ``group`` (any id, kept as given), or ``none``.
        key_columns: optional per-text identity columns (e.g. Quora's ``qid1, qid2``) returned alongside,
            for question-level splits; defaults to the normalised texts.
        bad_rows: what to do with a malformed row (``data.BadRows``); None raises on the first one.

    Returns:
        (examples, keys): ``keys[i]`` holds one key per text of example i. ``source`` is ``file:line``
        (parquet: ``file:row``, rows counted from 1).
    """
    path = str(path)
    score_range = score_range or ScoreRange()
    bad_rows = _policy(bad_rows)
    fmt = data_format or EXTENSIONS.get(Path(path).suffix.lower())
    if fmt == "senteval":
        return _read_senteval(path, target, label_names, n_labels_for(target, num_labels), bad_rows)
    if fmt == "stsb":
        if target != "score":
            raise ConfigError(
                f"{path}: the stsb format holds scored pairs; target {target!r} needs another format"
            )
        pairs = read_stsb(path, score_range, bad_rows)
        return from_pairs(pairs), [(normalise(p.text_a), normalise(p.text_b)) for p in pairs]
    if target != "none" and not target_column:
        raise ConfigError(f"target {target!r} needs a target column (score_column / label_column)")
    required = list(text_columns) + ([target_column] if target != "none" else []) + list(key_columns or [])
    before = bad_rows.total
    examples, keys = [], []
    parse_target = _target_parser(
        target, target_column, score_range, label_names, n_labels_for(target, num_labels)
    )
    for line_no, row in _rows(path, fmt, required, bad_rows):
        try:
            _require_columns(row, required, path, line_no)
            texts = tuple(_text(row[c], f"column {c!r}", path, line_no) for c in text_columns)
            value = parse_target(row, path, line_no)
        except DataError as err:
            bad_rows.handle(err)
            continue
        where = f"{path}:{line_no}" if line_no is not None else path
        examples.append(Example(texts, value, where))
        keys.append(tuple(str(row[c]) for c in key_columns) if key_columns else tuple(map(normalise, texts)))
    if not examples:
        raise _no_rows("pairs" if len(text_columns) == 2 else "examples", path, bad_rows, before)
    return examples, keys


def n_labels_for(target: str, num_labels: int) -> int:
    return 2 if target == "binary" else num_labels


def _read_senteval(path: str, target: str, label_names, num_labels: int, bad_rows: BadRows | None = None):
    """SentEval/InferSent NLI layout: ``path`` = ``folder/SPLIT`` for aligned files ``folder/s1.SPLIT``,
    ``folder/s2.SPLIT`` and ``folder/labels.SPLIT`` (one item per line). Under ``skip`` a bad line drops
    the row (line i of the three files) it belongs to."""
    bad_rows = _policy(bad_rows)
    if target not in ("class", "binary"):
        raise ConfigError(f"{path}: the senteval format holds labelled pairs; target {target!r} does not fit")
    before = bad_rows.total
    folder, split = Path(path).parent, Path(path).name
    files = [folder / f"{part}.{split}" for part in ("s1", "s2", "labels")]
    decoded = [_decode(f, "one item per line", bad_rows) for f in files]
    columns = []
    for text, bad_lines in decoded:
        lines = [line for _, line in _lines(text)]
        if lines and not lines[-1].strip() and len(lines) not in bad_lines:
            lines.pop()  # the newline that ends the last line
        columns.append(lines)
    if len({len(c) for c in columns}) != 1:
        raise DataError(
            f"s1/s2/labels files differ in length: {[len(c) for c in columns]}",
            str(folder / split),
            reason="misaligned_files",
        )
    dropped = set().union(*(lines for _, lines in decoded))  # counted as invalid_utf8 already
    examples, keys = [], []
    for i, (a, b, label) in enumerate(zip(*columns, strict=True), start=1):
        if i in dropped:
            continue
        where = str(files[0])
        try:
            texts = (_text(a, "s1", where, i).strip(), _text(b, "s2", str(files[1]), i).strip())
            value = parse_label(label, label_names, num_labels, str(files[2]), i)
        except DataError as err:
            bad_rows.handle(err)
            continue
        examples.append(Example(texts, value, f"{where}:{i}"))
        keys.append(tuple(map(normalise, texts)))
    if not examples:
        raise _no_rows("pairs", str(folder / split), bad_rows, before)
    return examples, keys


def normalise(text: str) -> str:
    """Identity of a text for splits and de-duplication: lower-cased, whitespace collapsed."""
    return " ".join(text.lower().split())


def text_id(text: str) -> int:
    """A stable 63-bit id of a normalised text (for masking duplicates inside a batch)."""
    return (
        int.from_bytes(hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=8).digest(), "big") >> 1
    )


def positives(examples: Sequence[Example]) -> list[Example]:
    """(a, b) pairs labelled 1 -> target-less (anchor, positive) examples for in-batch negatives."""
    return [Example(e.texts[:2], None, e.source) for e in examples if e.target == 1]


def known_positives(examples: Sequence[Example]) -> dict[str, set[str]]:
    """Normalised text -> the normalised texts of its duplicate cluster (itself included), from the pairs
    labelled 1. What a hard-negative miner must never return as a negative."""
    clusters: dict[object, set[str]] = {}
    for e in duplicate_groups(examples):
        clusters.setdefault(e.target, set()).add(normalise(e.texts[0]))
    return {key: members for members in clusters.values() for key in members}


def duplicate_groups(examples: Sequence[Example], min_size: int = 2) -> list[Example]:
    """Connected components of the duplicate graph (pairs labelled 1) -> one ``Example((text,), group)`` per
    text. Texts are identified by ``normalise``; groups smaller than ``min_size`` are dropped (a P x K
    sampler cannot use them). Groups are numbered in order of first appearance."""
    parent: dict[str, str] = {}
    first_text: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in examples:
        if e.target != 1:
            continue
        keys = [normalise(t) for t in e.texts[:2]]
        for key, text in zip(keys, e.texts[:2], strict=True):
            parent.setdefault(key, key)
            first_text.setdefault(key, text)
        ra, rb = find(keys[0]), find(keys[1])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for key in parent:  # dicts keep insertion order: deterministic
        members.setdefault(find(key), []).append(key)
    out = []
    for group_id, keys in enumerate(k for k in members.values() if len(k) >= min_size):
        out.extend(Example((first_text[key],), group_id, "duplicate group") for key in keys)
    return out


class ExampleCollator:
    """Tokenizes a batch of ``Example`` with k texts each into (B, k, T) tensors and (B,) ``targets``.

    All B*k texts are tokenized in one call and padded to one length, so the encoder can run them in a
    single forward pass; the (B, k, T) layout keeps an example together when accelerate splits a batch
    across processes. Targets: float for scores, long for labels and groups; for target-less examples,
    stable ids of the second text, so in-batch losses can mask duplicates. ``truncated`` counts texts cut
    to ``max_seq_length``.
    """

    def __init__(self, encoder, target: str):
        self.encoder = encoder
        self.target = target
        self.truncated = 0
        self._groups: dict = {}

    def __call__(self, batch: Sequence[Example]) -> dict[str, torch.Tensor]:
        k = len(batch[0].texts)
        if any(len(e.texts) != k for e in batch):
            raise DataError(f"a batch mixes examples with different numbers of texts (expected {k})")
        texts = [self.encoder.prepare_text(e.texts[j]) for j in range(k) for e in batch]  # column-major
        self.truncated += len(self.encoder.count_truncated(texts))
        features = self.encoder.tokenize(texts)  # (k*B, T)
        size = len(batch)
        out = {name: t.reshape(k, size, -1).transpose(0, 1).contiguous() for name, t in features.items()}
        out["targets"] = self._targets(batch)
        return out

    def _targets(self, batch: Sequence[Example]) -> torch.Tensor:
        if self.target == "score":
            return torch.tensor([float(e.target) for e in batch], dtype=torch.float32)
        if self.target == "none":
            return torch.tensor(
                [text_id(e.texts[1]) if len(e.texts) > 1 else 0 for e in batch], dtype=torch.long
            )
        if self.target == "group":  # any hashable id -> a small integer, stable for the collator's lifetime
            return torch.tensor([self._groups.setdefault(e.target, len(self._groups)) for e in batch])
        return torch.tensor([int(e.target) for e in batch], dtype=torch.long)
