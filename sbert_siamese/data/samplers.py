"""Batch samplers that decide which examples share a batch (each yields lists of example indices).

- ``NoDuplicatesBatchSampler``: no text appears twice in a batch, so in-batch negatives never contain a
  copy of the anchor's own positive.
- ``LengthGroupedBatchSampler``: random batches of examples of similar length, so little padding is
  computed (the order of batches stays random).
- ``GroupBatchSampler``: P groups x K items per batch (Hermans et al. 2017), so batch-mined triplet losses
  always find positives.
Both are deterministic for a seed and draw a new order each epoch (each ``__iter__``), identically on every
process, which is what accelerate needs to shard them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from ..errors import ConfigError
from .examples import Example, normalise


class NoDuplicatesBatchSampler:
    """Shuffled batches of ``batch_size`` examples in which no (normalised) text repeats.

    An example whose text is already in the batch being filled waits for a later batch. Only full batches
    are yielded (constant batch size keeps accelerate's per-process split even): the few examples left
    at the end of an epoch, fewer than a batch or all clashing, wait for the next epoch's shuffle.
    """

    def __init__(self, examples: Sequence[Example], batch_size: int, seed: int = 0):
        self.keys = [frozenset(normalise(t) for t in e.texts) for e in examples]
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.keys)))
        random.Random(f"{self.seed}-{self.epoch}").shuffle(order)
        self.epoch += 1
        pending = order
        while pending:
            batch, seen, rest = [], set(), []
            for i in pending:
                if len(batch) < self.batch_size and not (self.keys[i] & seen):
                    batch.append(i)
                    seen |= self.keys[i]
                else:
                    rest.append(i)
            if len(batch) < self.batch_size:
                return
            yield batch
            pending = rest

    def __len__(self) -> int:  # an upper bound: clashing duplicates may end an epoch a batch or two early
        return len(self.keys) // self.batch_size


class LengthGroupedBatchSampler:
    """Shuffle, cut into windows of ``window`` batches, sort each window by length, cut into batches, and
    shuffle the batches. Every example is used once per epoch; batches stay random in content order but
    hold texts of similar length, so padding (wasted compute) shrinks."""

    def __init__(self, examples: Sequence[Example], batch_size: int, seed: int = 0, window: int = 50):
        self.lengths = [max(len(t) for t in e.texts) for e in examples]
        self.batch_size = batch_size
        self.window = window
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(f"{self.seed}-{self.epoch}")
        self.epoch += 1
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=self.lengths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        yield from batches

    def __len__(self) -> int:
        span = self.batch_size * self.window
        full, rest = divmod(len(self.lengths), span)
        return full * self.window + -(-rest // self.batch_size)


class GroupBatchSampler:
    """Batches of P = batch_size // K groups with K examples each, groups drawn without replacement.

    Only groups with at least K examples take part; one epoch is len(eligible groups) // P batches.

    ``neighbours`` (group id -> nearby group ids, nearest first) makes batches hard: each batch starts from
    a random unused group and takes its nearest unused neighbours before random ones, so the negatives a
    miner finds in the batch are close ones, not random texts that the model already tells apart.
    """

    def __init__(
        self,
        groups: Sequence,
        batch_size: int,
        samples_per_group: int = 2,
        seed: int = 0,
        neighbours: dict | None = None,
    ):
        if samples_per_group < 2:
            raise ConfigError(
                f"samples_per_group must be >= 2 (a group needs a positive), got {samples_per_group}"
            )
        if batch_size % samples_per_group:
            raise ConfigError(
                f"batch_size {batch_size} must be a multiple of samples_per_group {samples_per_group}"
            )
        members: dict = {}
        for index, group in enumerate(groups):
            members.setdefault(group, []).append(index)
        ids = [g for g, m in members.items() if len(m) >= samples_per_group]
        self.members = [members[g] for g in ids]
        index = {g: i for i, g in enumerate(ids)}
        self.neighbours = None
        if neighbours is not None:
            self.neighbours = [
                [index[n] for n in neighbours.get(g, ()) if n in index and n != g] for g in ids
            ]
        self.k = samples_per_group
        self.p = batch_size // samples_per_group
        self.batch_size = batch_size  # accelerate reads it to split batches across processes
        if self.p < 2:
            raise ConfigError(
                f"batch_size {batch_size} holds only {self.p} group of {samples_per_group}; a batch needs "
                f">= 2 groups for negatives: use batch_size >= {2 * samples_per_group}"
            )
        if len(self.members) < max(self.p, 2):
            raise ConfigError(
                f"groups sampler cannot fill a batch: {len(self.members)} groups have >= {self.k} "
                f"examples, a batch needs {self.p} of them (and at least 2 for negatives); "
                "lower batch_size or samples_per_group"
            )
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(f"{self.seed}-{self.epoch}")
        self.epoch += 1
        order = list(range(len(self.members)))
        rng.shuffle(order)
        if self.neighbours is None:
            chosen = [order[start : start + self.p] for start in range(0, len(order) - self.p + 1, self.p)]
        else:
            chosen = self._hard_batches(order)
        for groups in chosen:
            batch = []
            for g in groups:
                batch.extend(rng.sample(self.members[g], self.k))
            yield batch

    def _hard_batches(self, order: list[int]) -> list[list[int]]:
        used = [False] * len(order)
        batches, cursor = [], 0
        for seed_group in order:
            if used[seed_group]:
                continue
            groups = [seed_group]
            used[seed_group] = True
            for n in self.neighbours[seed_group]:
                if len(groups) == self.p:
                    break
                if not used[n]:
                    groups.append(n)
                    used[n] = True
            while len(groups) < self.p and cursor < len(order):  # top up with random unused groups
                g = order[cursor]
                cursor += 1
                if not used[g]:
                    groups.append(g)
                    used[g] = True
            if len(groups) == self.p:
                batches.append(groups)
        return batches

    def __len__(self) -> int:
        return len(self.members) // self.p
