"""Search over an embedding directory shard by shard: the steps the cluster engine (``engines.ray``) runs as
tasks, each a plain function of arrays and shard files, so it can be run and tested without Ray.

- ``exact_pairs``: one block of rows against the whole (prepared) corpus.
- ``train_ivf`` (on a sample of the shards) -> ``ivf_add`` (one shard each) -> ``ivf_merge`` -> ``ivf_search``
  (one shard each, IVF-PQ candidates re-scored from the vectors): a faiss IVF index built and searched in
  parallel, after the faiss wiki's "indexes that do not fit in RAM".
- ``load_rows``: all rows, or some, of the shards as one array.

Each returns what ``duplicates.merge_pairs`` takes: (rows, cols, scores) of each row's top-k neighbours
other than itself, scoring at least the threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io.streaming import _shard_path
from .base import _normalise_array

PQ_DIMS_PER_CODE = 8  # ivf-pq: one byte per 8 dimensions (48 bytes for a 384-d vector)
# Lists an IVF dedup search probes per text. Near-duplicates sit in the same or the next list: at 100k real
# questions (all-MiniLM-L6-v2, cosine >= 0.9, 506 lists) nprobe 4 finds 99.85% of exact search's pairs, 8
# finds 99.99%, 16 all of them, in 7.5 / 8.8 / 15 s against 40 s for the search-wide default (nlist / 10),
# which scans a tenth of the corpus per text and so grows with n squared.
DEDUP_NPROBE = 16


def load_rows(folder: Path, sizes: list[int], rows: np.ndarray | None) -> np.ndarray:
    """All rows (``rows`` None) or the given sorted rows of the shards, as one float32 array."""
    parts, start = [], 0
    for index, size in enumerate(sizes):
        if size:
            shard = np.load(_shard_path(folder, index), mmap_mode="r")
            if rows is None:
                parts.append(np.asarray(shard, dtype=np.float32))
            else:
                take = rows[(rows >= start) & (rows < start + size)] - start
                parts.append(np.asarray(shard[take], dtype=np.float32))
        start += size
    return np.concatenate(parts)


def exact_pairs(corpus: np.ndarray, start: int, stop: int, k: int, threshold: float, threads: int):
    """Rows ``start:stop`` against the whole (prepared) corpus: their top-k neighbours above threshold."""
    import torch

    from ..search.exact import DEFAULT_CHUNK_SIZE, _exact_topk

    torch.set_num_threads(max(1, threads))
    whole = torch.from_numpy(np.array(corpus))  # the object store's copy is read-only
    scores, neighbours = _exact_topk(whole[start:stop].clone(), whole, min(k + 1, len(whole)),
                                     DEFAULT_CHUNK_SIZE, exclude_self=False)  # fmt: skip
    return _keep(scores, neighbours, start, k, threshold)


def _keep(scores: np.ndarray, neighbours: np.ndarray, start: int, k: int, threshold: float):
    """(rows, cols, scores) of each row's first k neighbours other than itself, scoring >= threshold."""
    rows = np.arange(start, start + len(neighbours))[:, None]
    keep = (neighbours != rows) & (neighbours >= 0)
    keep &= np.cumsum(keep, axis=1) <= k
    keep &= scores >= threshold
    return np.broadcast_to(rows, neighbours.shape)[keep], neighbours[keep], scores[keep].astype(np.float32)


def _prepared(path: str, similarity: str) -> np.ndarray:
    x = np.array(np.load(path), dtype=np.float32)
    if similarity == "cosine":
        _normalise_array(x)
    return x


def train_ivf(folder: Path, sizes: list[int], similarity: str, kind: str, nlist, nprobe):
    """An empty, trained IVF (IVF-PQ) index, serialised: k-means centroids from a sample of the shards."""
    import torch

    from ..search.clustered import KMEANS_ITERATIONS, KMEANS_SAMPLE_PER_LIST, _kmeans
    from ..search.exact import DEFAULT_CHUNK_SIZE
    from ..search.faiss_index import _import_faiss, ivf_nlist

    faiss = _import_faiss()
    n = sum(sizes)
    nlist = nlist or ivf_nlist(n)
    if nlist > n:
        raise ConfigError(f"nlist={nlist} is more than the {n} vectors to train on")
    nprobe = min(nlist, nprobe or DEDUP_NPROBE)
    count = min(n, max(KMEANS_SAMPLE_PER_LIST * nlist, 10_000))
    rows = np.sort(np.random.default_rng(0).choice(n, size=count, replace=False))
    sample = load_rows(folder, sizes, rows)
    if similarity == "cosine":
        _normalise_array(sample)
    d = sample.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    with torch.inference_mode():
        centroids = _kmeans(torch.from_numpy(sample), nlist, KMEANS_ITERATIONS, count, DEFAULT_CHUNK_SIZE)
    quantizer.add(centroids.numpy())
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        if d % PQ_DIMS_PER_CODE:
            raise ConfigError(f"ivf-pq needs a dimension divisible by {PQ_DIMS_PER_CODE}, got {d}")
        index = faiss.IndexIVFPQ(quantizer, d, nlist, d // PQ_DIMS_PER_CODE, 8, faiss.METRIC_INNER_PRODUCT)
        index.train(sample)  # the product quantizer; the lists keep the centroids above
    index.own_fields = False
    data = faiss.serialize_index(index)
    del quantizer
    return data, nprobe


def ivf_add(trained: np.ndarray, path: str, start: int, similarity: str) -> np.ndarray:
    """The trained index holding one shard (ids: its global rows), serialised."""
    from ..search.faiss_index import _import_faiss

    faiss = _import_faiss()
    faiss.omp_set_num_threads(1)
    index = faiss.deserialize_index(np.asarray(trained))
    x = _prepared(path, similarity)
    index.add_with_ids(x, np.arange(start, start + len(x), dtype=np.int64))
    return faiss.serialize_index(index)


def ivf_merge(trained: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """The shards' indexes merged into one (their inverted lists concatenated, ids kept)."""
    from ..search.faiss_index import _import_faiss

    faiss = _import_faiss()
    merged = faiss.deserialize_index(np.asarray(trained))
    for part in parts:
        merged.merge_from(faiss.deserialize_index(np.asarray(part)), 0)
    return faiss.serialize_index(merged)


def ivf_search(index: np.ndarray, path: str, start: int, k: int, threshold: float, similarity: str,
                nprobe: int, threads: int, refine: tuple[str, list[int]] | None = None):  # fmt: skip
    """One shard's rows searched in the merged index: their top-k neighbours above threshold. With
    ``refine`` (the embedding folder and its shard sizes), the neighbours' scores are computed again from
    the vectors themselves: IVF-PQ ranks by compressed codes, whose scores are only estimates."""
    from ..search.faiss_index import _import_faiss

    faiss = _import_faiss()
    faiss.omp_set_num_threads(max(1, threads))
    searcher = faiss.deserialize_index(np.asarray(index))
    searcher.nprobe = nprobe
    x = _prepared(path, similarity)
    scores, neighbours = searcher.search(x, k + 1)
    if refine is not None:
        found = np.unique(neighbours[neighbours >= 0])
        vectors = load_rows(Path(refine[0]), refine[1], found)
        if similarity == "cosine":
            _normalise_array(vectors)
        at = np.searchsorted(found, np.maximum(neighbours, 0))
        scores = np.einsum("nd,nkd->nk", x, vectors[at]).astype(np.float32)
        scores[neighbours < 0] = -np.inf
    return _keep(scores, neighbours, start, k, threshold)
