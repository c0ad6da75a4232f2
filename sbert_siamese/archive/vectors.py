"""The archive's vector index: one of the search kinds (``build_index``) over the questions present at its
last build, plus the questions added since, searched exactly, minus the removed ones.

The index kinds are built once over a fixed set of vectors; an archive grows and shrinks one request at a
time. So ``VectorIndex`` keeps three parts, all keyed by ``seq`` (the SQLite row of a question):

- ``base``: a ``SearchIndex`` over the live vectors at the last (re)build, with ``base_seqs`` (position ->
  seq);
- ``delta``: the vectors added since, in a growing buffer searched by one matrix product;
- ``alive``: a boolean per seq; removed questions are masked out of every result. Searches ask the base
  for ``k`` plus the number of removed rows in it, so a removal never costs a result.

When the delta outgrows ``max(REBUILD_MIN, len(base))`` (the archive doubled since the last build) or more
than ``DEAD_FRACTION`` of the base is removed, ``needs_rebuild`` says so and the archive rebuilds the base
from SQLite (the cost of a build, amortised over as many adds). ``kind="auto"`` is resolved at each build,
so an archive that grows past ``APPROXIMATE_FROM`` questions moves from exact to clustered search.

On disk (``index/`` in the archive) only what is costly to rebuild is kept: ``index.json`` (what the base
holds: kind, seqs up to which it is complete, the model's fingerprint), ``seqs.npy``, and for the faiss
kinds the faiss index itself. Exact and clustered bases are rebuilt from SQLite's vectors at open (a k-means
on a sample: under a second for 100k questions). Whatever is missing, stale or unreadable is rebuilt.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io.safe_io import atomic_write_bytes, atomic_write_text
from ..search.base import EPS, SearchIndex, _check_k
from ..search.faiss_index import FaissIndex, _import_faiss, ivf_nprobe
from ..search.index import build_index, resolve_kind

logger = logging.getLogger(__name__)

REBUILD_MIN = 20_000  # vectors added since the last build that are searched exactly before a rebuild
DEAD_FRACTION = 0.2  # removed share of the base that triggers a rebuild
SMALL = 2_000  # below this many vectors the clustered and ivf kinds are built as exact search
FAISS_KINDS = ("flat", "ivf", "hnsw")
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
        self.base: SearchIndex | None = None
        self.base_seqs = np.zeros(0, np.int64)
        self.upto_seq = 0  # every seq <= this is in the base or removed
        self.max_seq = 0  # the largest seq seen (base or delta)
        self._delta = torch.zeros((0, dim))
        self._delta_seqs = np.zeros(0, np.int64)
        self._delta_n = 0
        self.alive = np.zeros(1, dtype=bool)
        self._dead_in_base = 0
        self._dead_in_delta = 0

    # ------------------------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self.base_seqs) - self._dead_in_base + self._delta_n - self._dead_in_delta

    @property
    def built_kind(self) -> str:
        return "exact" if self.base is None else self.base.kind

    @property
    def delta_size(self) -> int:
        return self._delta_n

    def needs_rebuild(self) -> bool:
        base = len(self.base_seqs)
        return self._delta_n > max(REBUILD_MIN, base) or (
            base > 0 and self._dead_in_base > DEAD_FRACTION * base
        )

    # ------------------------------------------------------------------------------------ building
    def _grow_alive(self, max_seq: int) -> None:
        if max_seq >= len(self.alive):
            grown = np.zeros(max(max_seq + 1, 2 * len(self.alive)), dtype=bool)
            grown[: len(self.alive)] = self.alive
            self.alive = grown

    def build(self, seqs: np.ndarray, vectors: np.ndarray | None, upto_seq: int, base=None) -> None:
        """Make the base from live ``vectors`` (rows of ``seqs``), or adopt a loaded ``base``; clears the
        delta. ``upto_seq``: the largest seq the base accounts for."""
        seqs = np.asarray(seqs, dtype=np.int64)
        if base is None and len(seqs):
            kind = resolve_kind(len(seqs), self.kind)
            if kind in ("clustered", "ivf") and len(seqs) < SMALL:
                kind = "exact"  # k-means lists need a few thousand points to be worth it
            base = build_index(vectors, kind, self.similarity)
        self.base = base
        self.base_seqs = seqs
        self.upto_seq = self.max_seq = upto_seq
        self._delta = torch.zeros((0, self.dim))
        self._delta_seqs = np.zeros(0, np.int64)
        self._delta_n = self._dead_in_delta = 0
        self.alive = np.zeros(max(upto_seq, int(seqs.max(initial=0))) + 1, dtype=bool)
        self.alive[seqs] = True
        self._dead_in_base = 0

    def append(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        """Add live rows (seqs above every seq seen so far) to the delta."""
        seqs = np.asarray(seqs, dtype=np.int64)
        if not len(seqs):
            return
        rows = torch.from_numpy(np.array(vectors, dtype=np.float32))  # a writable copy
        if self.similarity == "cosine":
            rows = F.normalize(rows, dim=1, eps=EPS)
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
                if seq <= self.upto_seq:
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
