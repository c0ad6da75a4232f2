"""``Archive``: a persistent, searchable collection of questions that every new question is checked against.

An archive is a directory::

    archive.json        the manifest: model (path + weights fingerprint), index kind, backend, threshold
    questions.sqlite    every question: id, text, metadata, removed flag, embedding (the source of truth)
    index/              the vector index as last built (see ``archive.vectors``); rebuilt when missing
                        and caught up with the database at open, never trusted blindly

Example:
    >>> archive = Archive.create("qa-archive", "runs/qqp", index="auto")  # doctest: +SKIP
    >>> archive.add(["How do I learn Python?"], ids=[7])  # doctest: +SKIP
    >>> archive.query(["What is the best way to learn Python?"], top_k=3)[0][0]  # doctest: +SKIP
    Match(id=7, text='How do I learn Python?', score=0.83, duplicate=True, probability=None, ...)

The decision ("duplicate") applies the model's calibrated threshold (``sbert-siamese calibrate``), or the
one given at ``create``; without either it is None. A model with a verification or softmax head also
re-scores each match with the head: ``probability`` is P(same) of a 2-class head, ``probabilities`` the
class probabilities of a larger one.

Every public method takes the archive's lock, so one ``Archive`` may be shared by threads (the server
does). Several processes may open the same archive: SQLite serialises their writes, and each process
catches up with the others' commits before it searches (``PRAGMA data_version``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..backends import check_backend
from ..errors import ArchiveError, ConfigError, IdConflictError, UnknownIdError
from ..io.safe_io import atomic_write_text
from ..io.streaming import weights_fingerprint
from ..models.threshold import Threshold
from ..search.index import KINDS, _check_kind
from .checks import MAX_ID, check_ids, check_rows, check_texts
from .decisions import Judgement, Match, judge
from .store import DATABASE, NewRow, Question, Store
from .vectors import FAISS_KINDS, VectorIndex, load_saved

logger = logging.getLogger(__name__)

MANIFEST = "archive.json"
FORMAT = 1


def _model_reference(model, allow_pickle: bool = False) -> tuple[str, object]:
    """(reference stored in the manifest, loaded SiameseModel) for a path / name or a loaded model."""
    from ..models.siamese import SiameseModel

    if isinstance(model, SiameseModel):
        source = getattr(model.encoder, "source_path", None)
        if source is None:
            raise ArchiveError("the model was not loaded from a directory: save it first, then pass its path")
        return str(Path(source).resolve()), model
    if not isinstance(model, str | Path) or not str(model):
        raise ArchiveError(f"model must be a path, a model name or a SiameseModel, got {model!r}")
    path = Path(model)
    reference = str(path.resolve()) if path.exists() else str(model)
    return reference, SiameseModel.load(model, allow_pickle=allow_pickle)


def model_fingerprint(model) -> str:
    """sha256 prefix of every weight of the model (both towers and the head)."""
    return weights_fingerprint(model)


def _check_threshold(threshold) -> Threshold | None:
    if threshold is None or isinstance(threshold, Threshold):
        return threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(
            f"threshold must be a number (on cosine similarity) or a Threshold, got {threshold!r}"
        )
    return Threshold(score="cosine", threshold=float(threshold))


class Archive:
    """A question archive directory; create it with ``Archive.create``, reopen it with ``Archive.open``."""

    def __init__(self, path: Path, manifest: dict, model, store: Store, backend: str, batch_size: int):
        self.path = path
        self.manifest = manifest
        self.model = model.eval()
        self.store = store
        self.backend = backend
        self.batch_size = batch_size
        self.allow_pickle = False
        self.fingerprint = manifest["model"]["fingerprint"]
        override = manifest.get("threshold")
        self.threshold = (
            Threshold.from_dict(override, f"{path / MANIFEST}: threshold") if override else (model.threshold)
        )
        # what Match.score is: cosine similarity, or the dot product when the threshold is on it
        self.score = "dot" if self.threshold is not None and self.threshold.score == "dot" else "cosine"
        self.dim = int(model.encoder.embedding_dim)
        self._lock = threading.RLock()
        self._data_version = -1
        self.index = VectorIndex(manifest["index"]["kind"], self.score, self.dim)
        self._load_index()

    # ------------------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls,
        path: str | Path,
        model,
        index: str = "auto",
        backend: str = "torch",
        threshold: float | Threshold | None = None,
        batch_size: int = 16,
    ) -> Archive:
        """A new, empty archive at ``path`` (a missing or empty folder) for ``model`` (a path, a model name
        or a loaded ``SiameseModel``). ``index``: one of the search kinds (``auto``: exact below 20k
        questions, HNSW above). ``threshold``: the duplicate rule on cosine similarity when the model
        has no calibrated one (or to override it). ``backend``: the default encode backend (``auto`` is
        resolved now and stored as the backend it stands for). ``batch_size``:
        texts per forward pass, after sorting by length; 16 pads less than 64 and measured 20% faster on
        a batch of 32 real questions (torch and onnx-int8, 2 cores)."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ArchiveError(f"{path}: already exists and is not an empty folder; pick a new archive path")
        _check_kind(index)
        check_backend(backend)
        rule = _check_threshold(threshold)
        reference, loaded = _model_reference(model)
        if backend == "auto":  # decided once, here: every vector of the archive comes from one backend
            from ..backends.choice import resolve

            backend = resolve(loaded.tower("a"), backend)
        manifest = {
            "format": FORMAT,
            "library": "sbert-siamese",
            "version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model": {"path": reference, "fingerprint": model_fingerprint(loaded)},
            "index": {"kind": index},
            "backend": backend,
            "threshold": rule.to_dict() if rule is not None and rule != loaded.threshold else None,
        }
        path.mkdir(parents=True, exist_ok=True)
        store = Store(path / DATABASE, create=True)
        atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=2) + "\n", "archive manifest")
        return cls(path, manifest, loaded, store, backend, batch_size)

    @classmethod
    def open(
        cls,
        path: str | Path,
        model=None,
        backend: str | None = None,
        batch_size: int = 16,
        allow_pickle: bool = False,
    ) -> Archive:
        """Open an archive. Its model is loaded from the manifest's path unless ``model`` (a path, name or
        loaded model: e.g. after moving the model) is given; either way its weights must have the
        fingerprint the archive was built with. ``backend`` overrides the stored default."""
        path = Path(path)
        manifest_file = path / MANIFEST
        if not manifest_file.is_file():
            raise ArchiveError(f"{path}: not an archive (no {MANIFEST}); create one with `archive create`")
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
            manifest["model"]["fingerprint"], manifest["model"]["path"], manifest["index"]["kind"]  # noqa: B018
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{manifest_file}: not a readable archive manifest ({exc})") from None
        if manifest.get("format") != FORMAT:
            raise ArchiveError(f"{manifest_file}: archive format {manifest.get('format')}, expected {FORMAT}")
        reference, loaded = _model_reference(
            model if model is not None else manifest["model"]["path"], allow_pickle
        )
        found = model_fingerprint(loaded)
        if found != manifest["model"]["fingerprint"]:
            raise ArchiveError(
                f"{path}: the archive was built with model {manifest['model']['path']} (weights fingerprint "
                f"{manifest['model']['fingerprint']}), but {reference} has fingerprint {found}: its "
                "embeddings would not be comparable. Open it with the same model, or create a new archive",
                field="model",
            )
        store = Store(path / DATABASE)
        archive = cls(
            path,
            manifest,
            loaded,
            store,
            check_backend(backend or manifest.get("backend", "torch")),
            batch_size,
        )
        archive.allow_pickle = allow_pickle  # how a worker of the cluster engine loads the model too
        return archive

    def close(self) -> None:
        """Save a faiss index that grew since it was saved (so the next open need not catch up), then close
        the database."""
        with self._lock:
            if self.index.built_kind in FAISS_KINDS and len(self.index.base_seqs) != self.index.saved_rows:
                self.index.save(self.path, self.fingerprint)
            self.store.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ the index
    def _load_index(self) -> None:
        """The saved index when it fits, caught up with the database; else a fresh build. Reads one
        consistent snapshot of the database (commits of other processes meanwhile are caught up later)."""
        with self.store.snapshot():
            self._load_index_from_snapshot()

    def _load_index_from_snapshot(self) -> None:
        self._data_version = self.store.data_version()
        saved = load_saved(self.path, self.fingerprint, self.score, self.store.max_seq())
        if saved is None or saved[2] is None:  # exact / clustered are not kept: built from the vectors
            self._rebuild()
            return
        info, seqs, base = saved
        upto = int(info["upto_seq"])
        self.index.build(seqs, None, upto, base=base)
        self.index.saved_rows = len(seqs)
        self.index.remove(self.store.removed_seqs(upto))
        self._catch_up(upto)

    def _catch_up(self, after_seq: int) -> None:
        seqs, vectors = self.store.vectors(after_seq=after_seq)
        self.index.append(seqs, vectors)
        self.index.remove(self.store.removed_seqs())
        if seqs.size:
            logger.debug(
                "%s: index caught up with %d questions added since it was saved", self.path, seqs.size
            )

    def _rebuild(self) -> None:
        """The index over every live question, from one consistent snapshot of the database."""
        with self.store.snapshot():
            self._data_version = self.store.data_version()
            seqs, vectors = self.store.vectors(live_only=True)
            self.index.build(seqs, vectors, self.store.max_seq())
        self.index.save(self.path, self.fingerprint)

    def _sync(self) -> None:
        """Catch up with commits made by other processes since we last looked."""
        version = self.store.data_version()
        if version != self._data_version:
            self._data_version = version
            self._catch_up(self.index.max_seq)

    def _maybe_rebuild(self) -> None:
        if self.index.needs_rebuild():
            logger.info(
                "%s: rebuilding the index (%d added since the last build)", self.path, self.index.delta_size
            )
            self._rebuild()

    # ------------------------------------------------------------------------------------ encoding
    def encode(self, texts: Sequence[str], side: str = "a") -> np.ndarray:
        """(N, D) float32 embeddings with the archive's model and backend (``side`` b: archived texts)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            return self.model.encode(list(texts), side=side, batch_size=self.batch_size, backend=self.backend)

    def judge(self, u: np.ndarray, v: np.ndarray) -> Judgement:
        """Scores, decisions and head probabilities for paired rows of query (u) and archived (v)
        embeddings (``decisions.judge`` with this archive's model, threshold and score)."""
        return judge(self.model, self.threshold, self.score, u, v)

    # ------------------------------------------------------------------------------------ writes
    def prepare_rows(
        self, texts, ids=None, metadata=None, claimed: dict[int, str] | None = None
    ) -> list[NewRow]:
        """Checked rows for ``add_encoded``: an id that already names another question (live in the
        archive, or in ``claimed``: id -> text of rows prepared earlier for the same commit) raises
        ``ArchiveError`` naming ``ids[i]``; nothing is written. ``claimed`` is updated."""
        rows = check_rows(texts, ids, metadata)
        given = [r.id for r in rows if r.id is not None]
        with self._lock:
            known = self.store.live_texts(given) if given else {}
        claimed = {} if claimed is None else claimed
        for i, row in enumerate(rows):
            if row.id is None:
                continue
            other = known.get(row.id, claimed.get(row.id, row.text))
            if other != row.text:
                raise IdConflictError(
                    f"id {row.id} already names another question ({other[:80]!r}); remove it first or use "
                    "another id",
                    f"ids[{i}]",
                )
        claimed.update((r.id, r.text) for r in rows if r.id is not None)
        return rows

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[int] | None = None,
        metadata=None,
        vectors: np.ndarray | None = None,
    ) -> list[int]:
        """Add questions; returns their ids (given, or counted on from the largest id ever used). They are
        committed to SQLite before this returns. Re-adding an id with the same text is a no-op; an id that
        names another question raises ``ArchiveError`` and adds nothing."""
        rows = self.prepare_rows(texts, ids, metadata)
        if vectors is None:
            vectors = self.encode([r.text for r in rows], side="b")  # outside the lock: the slow part
        return self.add_encoded(rows, vectors)

    def add_encoded(self, rows: list[NewRow], vectors: np.ndarray, on_commit=None) -> list[int]:
        """Insert rows (id None: counted on from the largest id) with their (N, D) embeddings; returns the
        ids, one per row. See ``add_rows``."""
        return self.add_rows(rows, vectors, on_commit)[0]

    def add_rows(self, rows: list[NewRow], vectors: np.ndarray, on_commit=None) -> tuple[list[int], int]:
        """Insert rows with their embeddings in one transaction (``on_commit(conn)`` runs inside it: e.g. to
        record ingest progress), then index them. Returns (the ids, one per row; how many rows were new).
        Rows whose id is already live with the same text, or repeated with the same text, are skipped; an id
        given to two different texts raises ``ArchiveError`` (field ``ids[i]``) and nothing is written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(rows), self.dim):
            expected = (len(rows), self.dim)
            raise ArchiveError(f"vectors must have shape {expected}, got {vectors.shape}", "vectors")
        with self._lock:
            with self.store.transaction() as conn:
                # Inside the write lock: no other process can commit now, so what _sync sees is complete.
                self._sync()
                ids, keep = self._resolve_ids(rows)
                fresh = [NewRow(ids[i], rows[i].text, rows[i].metadata) for i in keep]
                seqs = self.store.insert(conn, fresh, vectors[keep]) if fresh else []
                if on_commit is not None:
                    on_commit(conn)
            self.index.append(np.asarray(seqs, np.int64), vectors[keep])
            self._maybe_rebuild()
            return ids, len(fresh)

    def _resolve_ids(self, rows: list[NewRow]) -> tuple[list[int], list[int]]:
        """(the id of every row, the rows to insert): counted ids start past the largest id; repeats of a
        (id, text) and ids already live with the same text are left out; other clashes raise."""
        start = self.store.max_id() + 1
        if start + len(rows) > MAX_ID:
            raise ArchiveError(f"no ids left: counted ids would pass {MAX_ID}", "ids")
        ids, counted = [], 0
        for row in rows:
            ids.append(row.id if row.id is not None else start + counted)
            counted += row.id is None
        first: dict[int, int] = {}
        for i, (qid, row) in enumerate(zip(ids, rows, strict=True)):
            if qid in first and rows[first[qid]].text != row.text:
                raise IdConflictError(f"id {qid} is given to two different texts", f"ids[{i}]")
            first.setdefault(qid, i)
        known = self.store.live_texts([i for i in first if rows[first[i]].id is not None])
        keep = []
        for qid, i in first.items():
            if qid in known:
                if known[qid] != rows[i].text:
                    raise IdConflictError(
                        f"id {qid} already names another question ({known[qid][:80]!r})", f"ids[{i}]"
                    )
                continue
            keep.append(i)
        return ids, keep

    def start_ingest(self, source: str, reserve: int | None) -> tuple[int, int, int, bool]:
        """Where adding the file ``source`` stands (``Store.start_ingest``; used by ``ingest.add_file``)."""
        with self._lock:
            return self.store.start_ingest(source, reserve)

    def remove(self, ids: Sequence[int]) -> list[int]:
        """Remove questions by id; returns the ids that were present. They never come back in results;
        ``compact`` frees their space in the index."""
        ids = check_ids(ids, None)
        with self._lock:
            with self.store.transaction() as conn:
                self._sync()  # inside the write lock (see add_rows)
                seqs = self.store.mark_removed(conn, ids)
            self.index.remove(seqs)
            found = self.store.by_seq(seqs)
            self._maybe_rebuild()
            return [found[s][0].id for s in seqs]

    def compact(self) -> dict:
        """Rebuild the index over the live questions only, free removed questions' embeddings, and
        reclaim the database's free pages. Returns counts before and after."""
        with self._lock:
            before = self.store.counts()
            freed = self.store.drop_removed_vectors()
            self.store.vacuum()
            self._rebuild()
            return {
                "before": before,
                "after": self.store.counts(),
                "vectors_freed": freed,
                "index": self.index.built_kind,
            }

    # ------------------------------------------------------------------------------------ reads
    def __len__(self) -> int:
        with self._lock:
            return self.store.count()

    def get(self, question_id: int) -> Question:
        """The live question with this id; ``UnknownIdError`` when there is none."""
        (question_id,) = check_ids([question_id], None)
        with self._lock:
            found = self.store.get(question_id)
        if found is None:
            raise UnknownIdError(question_id)
        return found

    def query(
        self, texts: Sequence[str], top_k: int = 10, vectors: np.ndarray | None = None
    ) -> list[list[Match]]:
        """For each text, its ``top_k`` nearest archived questions, best first, with scores and decisions."""
        texts = check_texts(texts)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ArchiveError(f"top_k must be a positive integer, got {top_k!r}", "top_k")
        if vectors is None:
            vectors = self.encode(texts, side="a")
        with self._lock:
            self._sync()
            _, seqs = self.index.search(vectors, top_k)
            # scores and decisions are computed on the stored embeddings, as /similarity computes them
            rows = self.store.by_seq(seqs[seqs >= 0].tolist(), vectors=True)
        return self._matches(vectors, seqs, rows)

    def _matches(self, queries: np.ndarray, seqs: np.ndarray, rows: dict) -> list[list[Match]]:
        pairs = [(q, s) for q in range(seqs.shape[0]) for s in seqs[q] if s >= 0]
        if not pairs:
            return [[] for _ in range(seqs.shape[0])]
        u = queries[[q for q, _ in pairs]]
        v = np.stack([rows[s][1] for _, s in pairs])
        verdict = self.judge(u, v)
        results: list[list[Match]] = [[] for _ in range(seqs.shape[0])]
        for n, (q, s) in enumerate(pairs):
            question = rows[s][0]
            results[q].append(
                Match(
                    id=question.id,
                    text=question.text,
                    score=float(verdict.scores[n]),
                    duplicate=verdict.duplicate[n],
                    probability=None if verdict.probability is None else float(verdict.probability[n]),
                    probabilities=verdict.probabilities[n] if verdict.probabilities else None,
                    metadata=question.metadata,
                )
            )
        for found in results:  # the index's order is by its own (normalised) score: keep the stored one's
            found.sort(key=lambda m: -m.score)
        return results

    def similarity(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> Judgement:
        """Scores and decisions for pairs (texts_a[i], texts_b[i]), as ``query`` would give them."""
        texts_a, texts_b = check_texts(texts_a, "texts_a"), check_texts(texts_b, "texts_b")
        if len(texts_a) != len(texts_b):
            raise ArchiveError(f"texts_a and texts_b differ in length: {len(texts_a)} vs {len(texts_b)}")
        return self.judge(self.encode(texts_a, "a"), self.encode(texts_b, "b"))

    def info(self) -> dict:
        with self._lock:
            self._sync()
            counts = self.store.counts()
            return {
                "path": str(self.path),
                "model": self.manifest["model"],
                "backend": self.backend,
                "index": {
                    "kind": self.manifest["index"]["kind"],
                    "built": self.index.built_kind,
                    "indexed": int(len(self.index.base_seqs)),
                    "added_since_build": self.index.delta_size,
                },
                "similarity": self.score,
                "threshold": None if self.threshold is None else self.threshold.to_dict(),
                "head": None if self.model.head is None else type(self.model.head).__name__,
                "dimension": self.dim,
                **counts,
                "largest_id": self.store.max_id(),
                "database_bytes": (self.path / DATABASE).stat().st_size,
            }


__all__ = ["Archive", "Match", "Judgement", "KINDS", "model_fingerprint"]
