"""Nearest-neighbour search over embeddings: exact, k-means clustered and faiss indexes, duplicate pairs and
groups, and corpus search with a model."""

from ..losses.miners import group_neighbours, mine_hard_negatives
from .corpus import DedupResult, embed_corpus, find_duplicates, semantic_search
from .exact import (
    KINDS,
    ClusteredIndex,
    DuplicateGroup,
    ExactIndex,
    FaissIndex,
    SearchIndex,
    build_index,
    cluster_duplicates,
    exact_topk,
    mine_duplicates,
    recall_at_k,
    resolve_kind,
)

__all__ = [
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
