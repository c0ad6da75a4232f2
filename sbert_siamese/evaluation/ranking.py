"""Retrieval (each query ranks a corpus by cosine), and what the ranking evaluators share: encoding one
side's texts and the exact cosine top-k.

The ranking evaluators (retrieval here; ``duplicate_mining``, ``triplet``, ``one_shot``) follow one
convention. Like the other evaluators, each is a callable ``evaluator(model) -> dict[str, float]``
with flat keys prefixed by its ``name``, has a ``primary_metric`` property, and a ``compute(...)`` method
that takes precomputed embeddings (rows in the documented order), so that metrics can be checked on
hand-made vectors. Similarity is cosine unless said otherwise. A model with untied towers (``untied``)
encodes queries / anchors with tower ``a`` and documents / references / positives / negatives with ``b``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import torch


def encode_texts(model, texts: Sequence[str], side: str, batch_size: int, show_progress_bar: bool):
    """(N, D) embeddings of ``texts``; a model with untied towers uses the tower of ``side``."""
    kwargs = {"side": side} if getattr(model, "untied", False) else {}
    return model.encode(list(texts), batch_size=batch_size, show_progress_bar=show_progress_bar, **kwargs)


def _unit_rows(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (N, D) array of embeddings, got shape {tuple(x.shape)}")
    return torch.nn.functional.normalize(x, p=2, dim=1)


def cosine_top_k(queries, corpus, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` corpus rows most cosine-similar to each query row, best first (ties: lower index first);
    ``k`` is capped at the number of candidates. Exact chunked search from ``search.exact_topk``."""
    from ..search import exact_topk

    q, c = _unit_rows(queries), _unit_rows(corpus)
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"queries have dimension {q.shape[1]} but the corpus has {c.shape[1]}")
    if exclude_self and q.shape[0] != c.shape[0]:
        raise ValueError("exclude_self needs the queries to be the corpus (same number of rows)")
    k = min(k, c.shape[0] - (1 if exclude_self else 0))
    if k < 1:
        return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
    return exact_topk(q, c, k, "cosine", exclude_self=exclude_self)


def _positive_ks(values: Iterable[int], what: str) -> tuple[int, ...]:
    ks = tuple(values)
    if any(not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"{what} must be positive integers, got {list(ks)}")
    return tuple(sorted(set(int(k) for k in ks)))


class RetrievalEvaluator:
    """Information retrieval with binary relevance: each query ranks the corpus by cosine.

    Keys (k capped at the corpus size in the ranking, never in the key): ``{name}_accuracy@k`` (a
    relevant document in the top k), ``{name}_precision@k`` (relevant in top k / k),
    ``{name}_recall@k`` (relevant in top k / |relevant|), ``{name}_mrr@k`` (1 / rank of the first
    relevant document, 0 if not in the top k), ``{name}_ndcg@k`` (DCG = sum of 1 / log2(rank + 1) over
    relevant ranks <= k, divided by the DCG of min(k, |relevant|) relevant documents at the top) and
    ``{name}_map@k`` (sum of precision@rank at relevant ranks <= k, divided by min(k, |relevant|)), each
    averaged over queries. These are sentence-transformers' ``InformationRetrievalEvaluator``
    definitions. Only queries with at least one relevant document are evaluated (``query_ids``).
    Primary metric: ``{name}_ndcg@10`` (the largest ndcg k when 10 is not among them).

    Args:
        queries: query id -> text.
        corpus: document id -> text.
        relevant: query id -> ids of its relevant documents.
    """

    def __init__(
        self,
        queries: Mapping[Hashable, str],
        corpus: Mapping[Hashable, str],
        relevant: Mapping[Hashable, Iterable[Hashable]],
        name: str = "retrieval",
        mrr_at_k: Iterable[int] = (10,),
        ndcg_at_k: Iterable[int] = (10,),
        accuracy_at_k: Iterable[int] = (1, 3, 5, 10),
        precision_at_k: Iterable[int] = (1, 3, 5, 10),
        recall_at_k: Iterable[int] = (1, 3, 5, 10, 100),
        map_at_k: Iterable[int] = (100,),
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ):
        if not queries:
            raise ValueError("no queries given")
        if not corpus:
            raise ValueError("the corpus is empty")
        unknown_queries = [q for q in relevant if q not in queries]
        if unknown_queries:
            raise ValueError(
                f"relevant names {len(unknown_queries)} unknown query id(s): {unknown_queries[:5]}"
            )
        self.relevant = {q: set(docs) for q, docs in relevant.items()}
        unknown_docs = sorted({repr(d) for docs in self.relevant.values() for d in docs if d not in corpus})
        if unknown_docs:
            raise ValueError(
                f"relevant names {len(unknown_docs)} document id(s) not in the corpus: "
                f"{', '.join(unknown_docs[:5])}"
            )
        self.query_ids = [q for q in queries if self.relevant.get(q)]
        if not self.query_ids:
            raise ValueError("no query has a relevant document")
        self.queries = [queries[q] for q in self.query_ids]
        self.corpus_ids = list(corpus)
        self.corpus = [corpus[c] for c in self.corpus_ids]
        self.ks = {
            "accuracy": _positive_ks(accuracy_at_k, "accuracy_at_k"),
            "precision": _positive_ks(precision_at_k, "precision_at_k"),
            "recall": _positive_ks(recall_at_k, "recall_at_k"),
            "mrr": _positive_ks(mrr_at_k, "mrr_at_k"),
            "ndcg": _positive_ks(ndcg_at_k, "ndcg_at_k"),
            "map": _positive_ks(map_at_k, "map_at_k"),
        }
        if not any(self.ks.values()):
            raise ValueError("no cut-off k given for any metric")
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    @property
    def primary_metric(self) -> str:
        ks = self.ks["ndcg"]
        if ks:
            return f"{self.name}_ndcg@{10 if 10 in ks else max(ks)}"
        metric = next(m for m, values in self.ks.items() if values)
        return f"{self.name}_{metric}@{max(self.ks[metric])}"

    def __call__(self, model) -> dict[str, float]:
        q = encode_texts(model, self.queries, "a", self.batch_size, self.show_progress_bar)
        c = encode_texts(model, self.corpus, "b", self.batch_size, self.show_progress_bar)
        return self.compute(q, c)

    def compute(self, query_embeddings, corpus_embeddings) -> dict[str, float]:
        """Metrics from embeddings with rows in ``query_ids`` and ``corpus_ids`` order."""
        if len(query_embeddings) != len(self.query_ids):
            raise ValueError(f"expected {len(self.query_ids)} query embeddings, got {len(query_embeddings)}")
        if len(corpus_embeddings) != len(self.corpus_ids):
            raise ValueError(
                f"expected {len(self.corpus_ids)} corpus embeddings, got {len(corpus_embeddings)}"
            )
        k_max = max((k for ks in self.ks.values() for k in ks), default=1)
        _, top = cosine_top_k(query_embeddings, corpus_embeddings, k_max)
        hits = np.zeros((len(self.query_ids), k_max), dtype=bool)  # hits[q, r]: rank r + 1 is relevant
        for row, (qid, ranked) in enumerate(zip(self.query_ids, top, strict=True)):
            hits[row, : len(ranked)] = [self.corpus_ids[i] in self.relevant[qid] for i in ranked]
        n_relevant = np.array([len(self.relevant[q]) for q in self.query_ids], dtype=np.float64)
        metrics = ranking_metrics(hits, n_relevant, self.ks)
        return {f"{self.name}_{key}": value for key, value in metrics.items()}


def ranking_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Mapping[str, Iterable[int]]
) -> dict[str, float]:
    """Mean ranking metrics over queries from ``hits`` (Q, K) bool, True where rank r + 1 holds a relevant
    document, and ``n_relevant`` (Q,) relevant documents per query. ``ks`` maps metric names (accuracy,
    precision, recall, mrr, ndcg, map) to cut-offs k <= K. Keys: ``{metric}@{k}``."""
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    ranks = np.arange(1, hits.shape[1] + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1)
    out = {}
    for metric, values in ks.items():
        for k in values:
            if k > hits.shape[1]:
                raise ValueError(f"{metric}@{k} needs at least {k} ranks, got {hits.shape[1]}")
            top = hits[:, :k]
            found = top.sum(axis=1)
            if metric == "accuracy":
                value = found > 0
            elif metric == "precision":
                value = found / k
            elif metric == "recall":
                value = found / n_relevant
            elif metric == "mrr":
                first = top.argmax(axis=1)
                value = np.where(found > 0, 1.0 / (first + 1), 0.0)
            elif metric == "ndcg":
                dcg = (top * discount[:k]).sum(axis=1)
                ideal_cut = np.minimum(k, n_relevant).astype(np.int64)
                idcg = np.cumsum(discount[:k])[ideal_cut - 1]
                value = dcg / idcg
            elif metric == "map":
                precision_at_rank = np.cumsum(top, axis=1) / ranks[:k]
                value = (precision_at_rank * top).sum(axis=1) / np.minimum(k, n_relevant)
            else:
                raise ValueError(f"unknown ranking metric {metric!r}")
            out[f"{metric}@{k}"] = float(np.mean(value))
    return out
