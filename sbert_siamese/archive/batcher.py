"""Dynamic micro-batching: concurrent requests share one model call, one index search and one commit.

Request handlers (on the event loop) put a ``Job`` on a queue and await its future. One worker thread owns
the model: it takes every job waiting (up to ``max_batch`` texts), waits at most ``max_wait_ms`` for more
when the batch is not full, then

1. encodes the texts of all jobs together, one model call per tower side (queries: side a; questions to
   archive: side b);
2. answers every ``duplicates`` job from one index search (at the largest ``top_k`` asked, trimmed per
   job);
3. commits every ``add`` job in one SQLite transaction (group commit: one fsync for the batch), after
   which their futures resolve: an answer never precedes the commit.

Under load the model is busy while requests queue, so batches grow by themselves; a lone request waits
only ``max_wait_ms``. A job that fails (an id clash) fails alone; the others of its batch go on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArchiveError
from .store import NewRow

logger = logging.getLogger(__name__)

READ_KINDS = ("duplicates", "encode", "similarity")


@dataclass
class Job:
    kind: str  # duplicates | encode | similarity | add | remove | get
    payload: dict
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    texts: int = 0  # how many texts it brings to the batch
    result: object = None
    error: BaseException | None = None
    vectors: dict = field(default_factory=dict)

    def finish(self) -> None:
        def settle():
            if self.future.done():  # the client went away
                return
            if self.error is not None:
                self.future.set_exception(self.error)
            else:
                self.future.set_result(self.result)

        self.loop.call_soon_threadsafe(settle)


class Batcher:
    """The worker thread and its queue. ``on_batch(n_jobs, n_texts, seconds)`` is called after each batch."""

    def __init__(self, archive, max_batch: int = 64, max_wait_ms: float = 2.0, on_batch=None):
        self.archive = archive
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sbert-siamese-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def submit(self, kind: str, payload: dict, texts: int = 0):
        loop = asyncio.get_running_loop()
        job = Job(kind, payload, loop, loop.create_future(), texts)
        self._queue.put(job)
        return await job.future

    # ------------------------------------------------------------------------------------ the worker
    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        batch, texts = [first], first.texts
        deadline = time.monotonic() + self.max_wait
        while texts < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
            texts += job.texts
        return batch, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            start = time.perf_counter()
            try:
                self._process(batch)
            except BaseException as exc:  # a bug or a full disk: fail the batch, keep serving
                logger.exception("batch of %d jobs failed", len(batch))
                for job in batch:
                    if job.error is None and job.result is None:
                        job.error = exc
            for job in batch:
                job.finish()
            if self.on_batch is not None:
                self.on_batch(len(batch), sum(j.texts for j in batch), time.perf_counter() - start)
            if stop:
                return

    def _process(self, batch: list[Job]) -> None:
        self._encode(batch)
        self._answer_duplicates([j for j in batch if j.kind == "duplicates"])
        for job in batch:
            if job.kind == "encode":
                job.result = job.vectors["texts"]
            elif job.kind == "similarity":
                job.result = self.archive.judge(job.vectors["texts_a"], job.vectors["texts_b"])
            elif job.kind in ("remove", "get"):
                self._guard(job, self._write_or_get)
        self._commit_adds([j for j in batch if j.kind == "add"])

    @staticmethod
    def _guard(job: Job, action) -> None:
        try:
            action(job)
        except ArchiveError as exc:
            job.error = exc

    def _write_or_get(self, job: Job) -> None:
        if job.kind == "remove":
            job.result = self.archive.remove([job.payload["id"]])
        else:
            job.result = self.archive.get(job.payload["id"])

    def _encode(self, batch: list[Job]) -> None:
        """One model call per side for every text of the batch; each job gets its slices back."""
        wanted = {"a": [], "b": []}  # (job, key, texts)
        for job in batch:
            if job.kind in ("duplicates", "encode"):
                wanted[job.payload.get("side", "a")].append((job, "texts", job.payload["texts"]))
            elif job.kind == "similarity":
                wanted["a"].append((job, "texts_a", job.payload["texts_a"]))
                wanted["b"].append((job, "texts_b", job.payload["texts_b"]))
            elif job.kind == "add":
                wanted["b"].append((job, "texts", job.payload["texts"]))
        for side, items in wanted.items():
            if not items:
                continue
            vectors = self.archive.encode([t for _, _, texts in items for t in texts], side=side)
            start = 0
            for job, key, texts in items:
                job.vectors[key] = vectors[start : start + len(texts)]
                start += len(texts)

    def _answer_duplicates(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        texts = [t for job in jobs for t in job.payload["texts"]]
        vectors = np.concatenate([job.vectors["texts"] for job in jobs])
        top_k = max(job.payload["top_k"] for job in jobs)
        results = self.archive.query(texts, top_k, vectors=vectors)
        start = 0
        for job in jobs:
            n, k = len(job.payload["texts"]), job.payload["top_k"]
            job.result = [matches[:k] for matches in results[start : start + n]]
            start += n

    def _commit_adds(self, jobs: list[Job]) -> None:
        """Every add of the batch in one transaction; a job whose ids clash is answered with its error and
        left out (its rows are not written)."""
        if not jobs:
            return
        accepted, rows, vectors = [], [], []
        claimed: dict[int, str] = {}
        for job in jobs:
            try:
                job_rows = self.archive.prepare_rows(
                    job.payload["texts"], job.payload.get("ids"), job.payload.get("metadata"), claimed
                )
            except ArchiveError as exc:
                job.error = exc
                continue
            accepted.append((job, len(job_rows)))
            rows.extend(job_rows)
            vectors.append(job.vectors["texts"])
        if not accepted:
            return
        try:
            ids = self.archive.add_encoded(rows, np.concatenate(vectors))
        except ArchiveError:  # two jobs clash (a counted id one of them asked for): each on its own
            for job, _ in accepted:
                self._guard(job, self._add_alone)
            return
        start = 0
        for job, n in accepted:
            job.result = ids[start : start + n]
            start += n

    def _add_alone(self, job: Job) -> None:
        rows = self.archive.prepare_rows(
            job.payload["texts"], job.payload.get("ids"), job.payload.get("metadata")
        )
        job.result = self.archive.add_encoded(rows, job.vectors["texts"])


__all__ = ["Batcher", "Job", "NewRow"]
