"""Deterministic train / dev / test splits of question pairs with no question shared across splits.

Questions are nodes, pairs are edges; every connected component goes entirely to one split, so a question
(and everything transitively paired with it) never appears in two splits. Keys are any hashable values;
for QQP use :func:`question_key` (normalised text, see its docstring for why not the qid).

The split of a component depends only on the seed and the component's own keys (the seeded hash of its
smallest key), never on the order of the input rows. Components are laid end to end in that hashed order
and each goes to the split whose share of the pair count contains the component's midpoint, so the splits
miss their target by at most half a component at each boundary. A component too big for a held-out split
(more pairs than the smallest positive dev/test target, unless ``giant_share`` says otherwise) goes to
train first: train then grows and dev/test keep their place on the remaining interval. On QQP (subset +
more, 24,466 pairs) the largest component has 83 pairs (0.34 %), so this rule does not fire there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

from ..errors import ConfigError

SPLITS = ("train", "dev", "test")


def question_key(qid: str | int | None, text: str) -> str:
    """The key that identifies a question across QQP files: its lowercased, whitespace-collapsed text.

    ``qid`` is accepted for the call site's clarity but not used. Across qqp-subset, qqp-more and
    qqp-positives each qid has exactly one text, but 24 normalised texts carry two qids (a real qid in one
    file and a synthetic >= 2,000,000 one in another, or two real qids for the same question differing in
    case or spacing). Text keys therefore merge everything qid keys merge and more, so a split by text key
    has no qid shared across splits either, while a split by qid can leak the same text.
    """
    from .examples import normalise

    return normalise(text)


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


def _components(pairs: Sequence[tuple[Hashable, Hashable]]) -> list[int]:
    """Iterative union-find over the keys: the root node of each pair's component."""
    index: dict[Hashable, int] = {}
    parent: list[int] = []
    ends: list[int] = []
    for a, b in pairs:
        nodes = []
        for key in (a, b):
            if key not in index:
                index[key] = len(parent)
                parent.append(index[key])
            nodes.append(index[key])
        ra, rb = _find(parent, nodes[0]), _find(parent, nodes[1])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the earlier node stays the root: deterministic
        ends.append(nodes[0])
    return [_find(parent, node) for node in ends]


def question_groups(pairs: Sequence[tuple[Hashable, Hashable]]) -> list[int]:
    """For each (key_a, key_b) pair, the id of its connected component in the question graph.

    Ids are 0, 1, 2, ... in order of each component's first pair in ``pairs``. Two pairs have the same id
    exactly when a path of pairs links their questions. A self-pair (a == b) is a component of its own
    unless ``a`` also occurs elsewhere.
    """
    roots = _components(pairs)
    ids: dict[int, int] = {}
    return [ids.setdefault(root, len(ids)) for root in roots]


def _rank(text: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=16).digest()


def split_by_question(
    pairs_keys: Sequence[tuple[Hashable, Hashable]],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    giant_share: float | None = None,
) -> list[str]:
    """``"train"`` / ``"dev"`` / ``"test"`` for each pair, keeping every question component in one split.

    ``fractions`` (train, dev, test) are non-negative and sum to 1; they are met by pair count up to half
    a component at each boundary. The result is a function of the seed and of the set of pairs: shuffling
    the input permutes the output with it. Components with more than ``giant_share`` of all pairs (default:
    the smallest positive dev/test fraction) go to train regardless of the fractions.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"fractions must be 3 non-negative numbers summing to 1, got {tuple(fractions)}")
    if not pairs_keys:
        return []
    roots = _components(pairs_keys)
    size: dict[int, int] = {}
    smallest: dict[int, str] = {}  # repr of the smallest key: names the component whatever the input order
    for root, pair in zip(roots, pairs_keys, strict=True):
        size[root] = size.get(root, 0) + 1
        low = min(repr(pair[0]), repr(pair[1]))
        if root not in smallest or low < smallest[root]:
            smallest[root] = low
    total = len(pairs_keys)
    if giant_share is None:
        held_out = [f for f in fractions[1:] if f > 0]
        giant_share = min(held_out) if held_out and fractions[0] > 0 else 1.0
    order = sorted(
        size, key=lambda r: (size[r] <= giant_share * total, _rank(smallest[r], seed), smallest[r])
    )
    bounds = [fractions[0] * total, (fractions[0] + fractions[1]) * total]
    assigned: dict[int, str] = {}
    start = 0
    for root in order:
        if size[root] > giant_share * total:
            assigned[root] = "train"
        else:
            mid = start + size[root] / 2
            assigned[root] = SPLITS[0] if mid < bounds[0] else SPLITS[1] if mid < bounds[1] else SPLITS[2]
        start += size[root]
    return [assigned[root] for root in roots]


def leakage(split_names: Sequence[str], pairs_keys: Sequence[tuple[Hashable, Hashable]]) -> int:
    """How many distinct question keys occur in pairs of more than one split (0 for a clean split)."""
    seen: dict[Hashable, set[str]] = {}
    for name, (a, b) in zip(split_names, pairs_keys, strict=True):
        seen.setdefault(a, set()).add(name)
        seen.setdefault(b, set()).add(name)
    return sum(len(names) > 1 for names in seen.values())
