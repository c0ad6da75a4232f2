"""The archive's vector index: one of the search kinds (``build_index``), kept up to date as questions are
added and removed one request at a time, and addressed by ``seq`` (a question's SQLite row).

- ``exact``: one matrix of every live vector (a growing buffer, no copy per add), searched by one matrix
  product per batch of queries;
- ``flat``, ``ivf``, ``hnsw`` (faiss): new vectors go into the faiss index itself (``base_seqs`` maps its
  positions to seqs);
- ``clustered``: k-means lists cannot take new rows, so they are searched beside an exact ``delta`` of the
  questions added since the build, which is rebuilt into the lists when the delta outgrows
  ``max(REBUILD_MIN, len(base))``.

Removed questions are masked out (``alive``, a boolean per seq); the base is asked for ``k`` plus the number
of removed rows in it, so a removal never costs a result. A rebuild from the database (``needs_rebuild``)
also follows when more than ``DEAD_FRACTION`` of the index is removed, when an ivf index outgrows its lists
``IVF_REGROW`` times, and when ``auto`` moves from exact to HNSW at ``APPROXIMATE_FROM`` questions.

On disk (``index/`` in the archive) only what is costly to rebuild is kept: ``index.json`` (kind, the seq up
to which it is complete, the model's fingerprint), ``seqs.npy``, and a faiss index itself. Exact and clustered
indexes are rebuilt from SQLite's vectors at open (a k-means on a sample: seconds for 100k questions).
Whatever is missing, stale or unreadable is rebuilt; whatever was committed after the save is caught up.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io.safe_io import atomic_write_bytes, atomic_write_text
from ..search import index as search_index
from ..search.base import EPS, SearchIndex, _check_k
from ..search.faiss_index import FaissIndex, _import_faiss, ivf_nprobe
from ..search.index import build_index

logger = logging.getLogger(__name__)

REBUILD_MIN = 20_000  # vectors added since the last build that are searched exactly before a rebuild
DEAD_FRACTION = 0.2  # removed share of the base that triggers a rebuild
SMALL = 2_000  # below this many vectors the clustered and ivf kinds are built as exact search
IVF_REGROW = 4  # an ivf base that grew past this many times the vectors its lists were trained on is rebuilt
FAISS_KINDS = ("flat", "ivf", "hnsw")
SERIAL_FAISS_BELOW = 64  # query batches up to this size are searched by faiss on one thread
INDEX_DIR = "index"
INDEX_INFO = "index.json"
SEQS_FILE = "seqs.npy"
FAISS_FILE = "faiss.index"


class VectorIndex:
    """Base index + exact delta + removal mask, addressed by seq. Not thread-safe (the archive locks)."""

    def __init__(self, kind: str, similarity: str, dim: int):
        self.kind = kind  # as asked: may be "auto"
        self.similarity = similarity
        self.dim = dim
        self.saved_rows = -1  # rows of the base when it was last saved (-1: never)
        self._reset(np.zeros(0, np.int64), 0)

    def _reset(self, seqs: np.ndarray, upto_seq: int) -> None:
        self.base: SearchIndex | None = None
        self.base_seqs = np.zeros(0, np.int64)
        self.upto_seq = self.max_seq = upto_seq  # every seq <= upto_seq is in the index or removed
        self._base_upto = 0  # the largest seq in the base: a removal at or below it is counted there
        self._built_rows = 0
        self._delta = torch.zeros((0, self.dim))
        self._delta_seqs = np.zeros(0, np.int64)
        self._delta_n = self._dead_in_delta = self._dead_in_base = 0
        self.alive = np.zeros(max(upto_seq, int(seqs.max(initial=0))) + 1, dtype=bool)

    # ------------------------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self.base_seqs) - self._dead_in_base + self._delta_n - self._dead_in_delta

    @property
    def built_kind(self) -> str:
        return "exact" if self.base is None else self.base.kind

    @property
    def delta_size(self) -> int:
        return self._delta_n

    def kind_for(self, n: int) -> str:
        """The kind a build over ``n`` vectors makes. ``auto`` is exact search below ``APPROXIMATE_FROM``
        and HNSW above: an archive is searched a few queries at a time, where a graph answers in well under
        a millisecond (k-means lists, the ``auto`` of corpus-wide dedup, pay off on whole corpora)."""
        if self.kind == "auto":
            return "exact" if n < search_index.APPROXIMATE_FROM else "hnsw"
        if self.kind in ("clustered", "ivf") and n < SMALL:
            return "exact"  # k-means lists need a few thousand points to be worth it
        return self.kind

    def needs_rebuild(self) -> bool:
        """Whether a rebuild from the database would now give a better index (see the module docstring)."""
        base = len(self.base_seqs)
        if self.base is None:
            dead = self._delta_n > SMALL and self._dead_in_delta > DEAD_FRACTION * self._delta_n
            return dead or (len(self) > 0 and self.kind_for(len(self)) != "exact")
        if base and self._dead_in_base > DEAD_FRACTION * base:
            return True
        if isinstance(self.base, FaissIndex):  # grows in place; IVF lists trained on far fewer go stale
            return self.base.kind == "ivf" and base > IVF_REGROW * self._built_rows
        return self._delta_n > max(REBUILD_MIN, base)

    # ------------------------------------------------------------------------------------ building
    def _grow_alive(self, max_seq: int) -> None:
        if max_seq >= len(self.alive):
            grown = np.zeros(max(max_seq + 1, 2 * len(self.alive)), dtype=bool)
            grown[: len(self.alive)] = self.alive
            self.alive = grown

    def build(self, seqs: np.ndarray, vectors: np.ndarray | None, upto_seq: int, base=None) -> None:
        """Make the index over live ``vectors`` (rows of ``seqs``), or adopt a loaded faiss ``base`` over
        ``seqs``. ``upto_seq``: the largest seq this accounts for (removed rows included)."""
        seqs = np.asarray(seqs, dtype=np.int64)
        self._reset(seqs, upto_seq)
        if base is None and len(seqs):
            kind = self.kind_for(len(seqs))
            if kind == "exact":  # searched as one matrix: the delta is exactly that
                self._append_delta(seqs, vectors)
                return
            base = build_index(vectors, kind, self.similarity)
        if base is not None:
            self.base, self.base_seqs = base, seqs
            self._base_upto = int(seqs.max(initial=0))
            self._built_rows = len(seqs)
            self.alive[seqs] = True

    def _rows(self, vectors: np.ndarray) -> torch.Tensor:
        rows = torch.from_numpy(np.array(vectors, dtype=np.float32))  # a writable copy
        return F.normalize(rows, dim=1, eps=EPS) if self.similarity == "cosine" else rows

    def append(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        """Add live rows (seqs above every seq seen so far): into a faiss base directly, else to the delta."""
        seqs = np.asarray(seqs, dtype=np.int64)
        if not len(seqs):
            return
        if isinstance(self.base, FaissIndex):
            self.base.index.add(self._rows(vectors).numpy())
            self.base_seqs = np.concatenate([self.base_seqs, seqs])
            self._base_upto = int(seqs.max())
            self._grow_alive(int(seqs.max()))
            self.alive[seqs] = True
            self.upto_seq = self.max_seq = max(self.max_seq, int(seqs.max()))
            return
        self._append_delta(seqs, vectors)

    def _append_delta(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        rows = self._rows(vectors)
        need = self._delta_n + len(seqs)
        if need > self._delta.shape[0]:  # amortised growth: no copy of the whole delta per add
            grown = torch.zeros((max(need, 2 * self._delta.shape[0], 1024), self.dim))
            grown[: self._delta_n] = self._delta[: self._delta_n]
            self._delta = grown
            self._delta_seqs = np.concatenate(
                [self._delta_seqs[: self._delta_n], np.zeros(grown.shape[0] - self._delta_n, np.int64)]
            )
        self._delta[self._delta_n : need] = rows
        self._delta_seqs[self._delta_n : need] = seqs
        self._delta_n = need
        self._grow_alive(int(seqs.max()))
        self.alive[seqs] = True
        self.max_seq = max(self.max_seq, int(seqs.max()))

    def remove(self, seqs) -> None:
        for seq in np.asarray(seqs, dtype=np.int64).reshape(-1):
            if seq < len(self.alive) and self.alive[seq]:
                self.alive[seq] = False
                if self.base is not None and seq <= self._base_upto:
                    self._dead_in_base += 1
                else:
                    self._dead_in_delta += 1

    # ------------------------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k') float32 scores and int64 seqs, best first, k' = min(k, live size); removed rows never
        appear. Missing slots (an approximate kind found fewer) hold seq -1 and score -inf."""
        k = _check_k(k)
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        if self.similarity == "cosine":
            q = F.normalize(q, dim=1, eps=EPS)
        k_out = min(k, len(self))
        n_q = q.shape[0]
        if k_out == 0:
            return np.zeros((n_q, 0), np.float32), np.zeros((n_q, 0), np.int64)
        parts_s, parts_i = [], []
        if self.base is not None and len(self.base_seqs):
            kk = min(len(self.base_seqs), k_out + self._dead_in_base)
            with _few_threads(self.base, q.shape[0]):
                scores, positions = self.base.search(q, kk)
            seqs = np.where(positions >= 0, self.base_seqs[np.clip(positions, 0, None)], -1)
            parts_s.append(torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)))
            parts_i.append(torch.from_numpy(seqs))
        if self._delta_n:
            kk = min(self._delta_n, k_out + self._dead_in_delta)
            with torch.inference_mode():
                scores, positions = torch.topk(q @ self._delta[: self._delta_n].T, kk, dim=1)
            parts_s.append(scores.clone())
            parts_i.append(torch.from_numpy(self._delta_seqs[positions.numpy()]))
        scores = torch.cat(parts_s, dim=1)
        seqs = torch.cat(parts_i, dim=1)
        alive = torch.from_numpy(self.alive[np.clip(seqs.numpy(), 0, None)]) & (seqs >= 0)
        scores = torch.where(alive, scores, torch.tensor(-float("inf")))
        best, order = torch.topk(scores, k_out, dim=1)
        chosen = torch.gather(seqs, 1, order)
        chosen = torch.where(torch.isfinite(best), chosen, torch.tensor(-1, dtype=torch.int64))
        return best.numpy(), chosen.numpy()

    # ------------------------------------------------------------------------------------ persistence
    def save(self, archive_dir: Path, fingerprint: str) -> None:
        """Write the base's description (and a faiss base itself) under ``archive_dir/index``."""
        folder = archive_dir / INDEX_DIR
        folder.mkdir(exist_ok=True)
        kind = self.built_kind
        if kind in FAISS_KINDS:
            faiss = _import_faiss()
            atomic_write_bytes(folder / FAISS_FILE, faiss.serialize_index(self.base.index).tobytes(), "index")
            self.saved_rows = len(self.base_seqs)
        else:
            (folder / FAISS_FILE).unlink(missing_ok=True)
        buffer = _npy_bytes(self.base_seqs)
        atomic_write_bytes(folder / SEQS_FILE, buffer, "index")
        info = {
            "kind": kind,
            "similarity": self.similarity,
            "dim": self.dim,
            "rows": int(len(self.base_seqs)),
            "upto_seq": int(self.upto_seq),
            "fingerprint": fingerprint,
            "nprobe": getattr(self.base, "nprobe", None),
            "ef_search": getattr(self.base, "ef_search", None),
        }
        atomic_write_text(folder / INDEX_INFO, json.dumps(info, indent=2) + "\n", "index")


@contextlib.contextmanager
def _few_threads(base, queries: int):
    """faiss on one thread for a small batch of queries: its OpenMP threads cost more to wake than the
    search itself (measured: HNSW over 100k vectors, 8 queries, 12 ms on 2 threads vs about 2 ms on one)."""
    if not isinstance(base, FaissIndex) or queries > SERIAL_FAISS_BELOW:
        yield
        return
    faiss = _import_faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def load_saved(archive_dir: Path, fingerprint: str, similarity: str, max_seq: int):
    """``(info, seqs, faiss base or None)`` of a saved index that fits this archive, or None with the reason
    logged (missing, unreadable, another model, ahead of the database)."""
    folder = archive_dir / INDEX_DIR
    try:
        info = json.loads((folder / INDEX_INFO).read_text(encoding="utf-8"))
        seqs = np.load(folder / SEQS_FILE, allow_pickle=False)
    except FileNotFoundError:
        logger.info("%s: no saved index; building it", folder)
        return None
    except (OSError, ValueError) as exc:
        logger.warning("%s: saved index unreadable (%s); rebuilding it", folder, exc)
        return None
    problem = None
    if not isinstance(info, dict) or info.get("fingerprint") != fingerprint:
        problem = "made with other weights"
    elif info.get("similarity") != similarity or seqs.ndim != 1 or len(seqs) != info.get("rows"):
        problem = "does not match the archive"
    elif int(info.get("upto_seq", -1)) > max_seq or int(seqs.max(initial=0)) > max_seq:
        problem = "is ahead of the database"
    if problem:
        logger.warning("%s: saved index %s; rebuilding it", folder, problem)
        return None
    base = None
    if info.get("kind") in FAISS_KINDS:
        try:
            faiss = _import_faiss()
            raw = np.frombuffer((folder / FAISS_FILE).read_bytes(), dtype=np.uint8)
            index = faiss.deserialize_index(raw)
        except Exception as exc:  # faiss raises RuntimeError for a torn file
            logger.warning("%s: saved faiss index unreadable (%s); rebuilding it", folder, exc)
            return None
        if index.ntotal != len(seqs):
            logger.warning(
                "%s: saved faiss index has %d rows, expected %d; rebuilding", folder, index.ntotal, len(seqs)
            )
            return None
        nprobe = info.get("nprobe") or (ivf_nprobe(index.nlist) if info["kind"] == "ivf" else None)
        base = FaissIndex(index, info["kind"], similarity, nprobe=nprobe, ef_search=info.get("ef_search"))
    return info, seqs.astype(np.int64), base
