"""Nearest-neighbour search over embeddings, duplicate pairs and groups, offline hard negatives, and corpus
search with a model.

Modules, lowest first (each imports only those above it):

- ``base``: input checks, embeddings as float32 tensors, the ``SearchIndex`` interface.
- ``exact``: ``exact_topk``, chunked matrix products with a running top-k, the self-search over the blocks
  on and above the diagonal, ``ExactIndex``; the result contract of every search.
- ``clustered``: ``ClusteredIndex``, k-means lists searched by matrix products (no faiss).
- ``faiss_index``: ``FaissIndex``, faiss ``flat`` / ``ivf`` / ``hnsw``.
- ``index``: ``build_index`` over every kind, ``auto`` (``resolve_kind``, ``APPROXIMATE_FROM``),
  ``recall_at_k``.
- ``duplicates``: ``mine_duplicates`` (all-pairs near-duplicates, "paraphrase mining") and
  ``cluster_duplicates`` (connected components with a representative).
- ``hard_negatives``: ``mine_hard_negatives`` and ``group_neighbours``, with an encoder over a corpus
  (the in-batch triplet miners are in ``losses.miners``).
- ``corpus``: texts in, through a model: ``embed_corpus``, ``find_duplicates``, ``semantic_search``.

Constants read at call time (``APPROXIMATE_FROM``, ``TOPK_GROUP``, ...) are set on the module that defines
them; the copies re-exported here are for reading only.
"""

from .base import SearchIndex
from .clustered import ClusteredIndex
from .corpus import DedupResult, embed_corpus, find_duplicates, semantic_search
from .duplicates import DuplicateGroup, cluster_duplicates, mine_duplicates
from .exact import ExactIndex, exact_topk
from .faiss_index import FaissIndex
from .hard_negatives import group_neighbours, mine_hard_negatives
from .index import APPROXIMATE_FROM, KINDS, build_index, recall_at_k, resolve_kind

__all__ = [
    "APPROXIMATE_FROM",
    "KINDS",
    "ClusteredIndex",
    "DedupResult",
    "DuplicateGroup",
    "ExactIndex",
    "FaissIndex",
    "SearchIndex",
    "build_index",
    "cluster_duplicates",
    "embed_corpus",
    "exact_topk",
    "find_duplicates",
    "group_neighbours",
    "mine_duplicates",
    "mine_hard_negatives",
    "recall_at_k",
    "resolve_kind",
    "semantic_search",
]
