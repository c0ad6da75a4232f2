"""Ranking evaluators: duplicate mining, retrieval, triplets and N-way one-shot classification.

Like ``sbert_siamese.evaluation``, each evaluator is a callable ``evaluator(model) -> dict[str, float]``
with flat keys prefixed by its ``name``, has a ``primary_metric`` property, and a ``compute(...)`` method
that takes precomputed embeddings (rows in the documented order), so that metrics can be checked on
hand-made vectors. Similarity is cosine unless said otherwise. A model with untied towers (``untied``)
encodes queries / anchors with tower ``a`` and documents / references / positives / negatives with ``b``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .pair_classification import SIMILARITIES, pairwise_similarities, threshold_sweep


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


# ---------------------------------------------------------------------------------------- duplicate mining
def duplicate_closure(pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """All pairs (i, j), i < j, inside the connected components of the graph with edges ``pairs``
    (duplicates of duplicates are duplicates)."""
    from ..search import cluster_duplicates

    pairs = [(int(a), int(b)) for a, b in pairs]
    n = 1 + max((max(a, b) for a, b in pairs), default=-1)
    closed = set()
    for group in cluster_duplicates(n, [(a, b, 1.0) for a, b in pairs if a != b], representative="first"):
        members = sorted(group.members)
        closed.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    return closed


class DuplicateMiningEvaluator:
    """Mine a corpus for duplicates: every sentence retrieves its ``top_k`` most cosine-similar others; the
    distinct candidate pairs, ranked by cosine, are scored against the gold duplicate pairs.

    As in sentence-transformers' ``ParaphraseMiningEvaluator``, gold pairs never retrieved count as
    misses: recall is over *all* gold pairs. Keys: ``{name}_ap`` (average precision over the ranked
    candidates, sum over cut points of (R_k - R_{k-1}) P_k with tied scores cut together; primary),
    and at the threshold ("duplicate if cosine >= t") with the best F1: ``{name}_f1``,
    ``{name}_precision``, ``{name}_recall``, ``{name}_threshold``.

    Args:
        sentences: the corpus.
        duplicates: gold pairs, as (i, j) indices into ``sentences`` or as (text, text) pairs (each
            text must occur exactly once in ``sentences``). Order and repeats do not matter.
        top_k: neighbours retrieved per sentence (capped at ``len(sentences) - 1``).
    """

    def __init__(
        self,
        sentences: Sequence[str],
        duplicates: Iterable[tuple[int, int]] | Iterable[tuple[str, str]],
        name: str = "mining",
        top_k: int = 100,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ):
        self.sentences = list(sentences)
        if len(self.sentences) < 2:
            raise ValueError(f"duplicate mining needs at least 2 sentences, got {len(self.sentences)}")
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        self.gold = self._gold_pairs(duplicates)
        if not self.gold:
            raise ValueError("no gold duplicate pairs given")
        self.name = name
        self.top_k = int(top_k)
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    def _gold_pairs(self, duplicates) -> set[tuple[int, int]]:
        n = len(self.sentences)
        index: dict[str, int] | None = None
        gold = set()
        for pair in duplicates:
            if len(pair) != 2:
                raise ValueError(f"a duplicate pair must have 2 elements, got {pair!r}")
            a, b = pair
            if isinstance(a, str) or isinstance(b, str):
                if index is None:
                    index, repeated = {}, set()
                    for i, s in enumerate(self.sentences):
                        if s in index:
                            repeated.add(s)
                        index[s] = i
                    for s in repeated:
                        del index[s]
                for text in (a, b):
                    if text not in index:
                        problem = "occurs more than once in" if text in self.sentences else "is not in"
                        raise ValueError(f"duplicate pair text {text!r} {problem} the sentences")
                a, b = index[a], index[b]
            for i in (a, b):
                if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n:
                    raise ValueError(f"duplicate pair {pair!r}: index {i!r} is not in [0, {n})")
            if a == b:
                raise ValueError(f"duplicate pair {pair!r} pairs a sentence with itself")
            gold.add((int(min(a, b)), int(max(a, b))))
        return gold

    @classmethod
    def from_labelled_pairs(
        cls,
        texts_a: Sequence[str],
        texts_b: Sequence[str],
        labels: Sequence[int],
        name: str = "mining",
        **kwargs,
    ) -> DuplicateMiningEvaluator:
        """Corpus = the distinct texts of the pairs (first-seen order); gold = the label-1 pairs closed
        transitively (all pairs within each duplicate cluster). A label-0 pair inside a cluster is
        overruled by the closure; pairs of identical texts are dropped."""
        if not (len(texts_a) == len(texts_b) == len(labels)):
            raise ValueError("texts_a, texts_b and labels must have the same length")
        values = set(np.asarray(labels).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"labels must be 0 or 1, found {sorted(values - {0, 1})[:5]}")
        corpus = list(dict.fromkeys([*texts_a, *texts_b]))
        index = {s: i for i, s in enumerate(corpus)}
        edges = [
            (index[a], index[b])
            for a, b, y in zip(texts_a, texts_b, labels, strict=True)
            if int(y) == 1 and a != b
        ]
        return cls(corpus, sorted(duplicate_closure(edges)), name=name, **kwargs)

    @property
    def primary_metric(self) -> str:
        return f"{self.name}_ap"

    def __call__(self, model) -> dict[str, float]:
        embeddings = encode_texts(model, self.sentences, "a", self.batch_size, self.show_progress_bar)
        return self.compute(embeddings)

    def candidates(self, embeddings) -> tuple[np.ndarray, np.ndarray]:
        """Distinct candidate pairs (M, 2) with i < j, and their cosine (M,) in float64, best first."""
        if len(embeddings) != len(self.sentences):
            raise ValueError(f"expected {len(self.sentences)} embeddings, got {len(embeddings)}")
        _, neighbours = cosine_top_k(embeddings, embeddings, self.top_k, exclude_self=True)
        rows = np.repeat(np.arange(len(neighbours)), neighbours.shape[1])
        cols = neighbours.reshape(-1)
        pairs = np.unique(np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], axis=1), axis=0)
        # Rescore each pair once in float64 (a float32 matmul may give q_i.c_j and q_j.c_i different bits).
        unit = np.asarray(embeddings, dtype=np.float64)
        unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        scores = np.einsum("md,md->m", unit[pairs[:, 0]], unit[pairs[:, 1]])
        order = np.argsort(-scores, kind="stable")
        return pairs[order], scores[order]

    def compute(self, embeddings) -> dict[str, float]:
        """Metrics from (N, D) embeddings of ``sentences`` (row i = sentence i)."""
        pairs, scores = self.candidates(embeddings)
        n = len(self.sentences)
        gold_keys = np.array([i * n + j for i, j in self.gold], dtype=np.int64)
        labels = np.isin(pairs[:, 0].astype(np.int64) * n + pairs[:, 1], gold_keys)
        sweep = threshold_sweep(scores, labels)
        tp, fp = sweep["tp"].astype(np.float64), sweep["fp"].astype(np.float64)
        precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
        recall = tp / len(self.gold)  # unretrieved gold pairs are misses
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(tp > 0))
        best = int(np.argmax(f1))
        return {
            f"{self.name}_ap": float(np.sum(np.diff(recall) * precision[1:])),
            f"{self.name}_f1": float(f1[best]),
            f"{self.name}_precision": float(precision[best]),
            f"{self.name}_recall": float(recall[best]),
            f"{self.name}_threshold": float(sweep["threshold"][best]),
        }


# ---------------------------------------------------------------------------------------- retrieval
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


# ---------------------------------------------------------------------------------------- triplets
class TripletEvaluator:
    """Triplet accuracy: the fraction of (anchor, positive, negative) with sim(a, p) > sim(a, n), under
    each measure in ``distances`` (distances compared negated: closer = more similar). A tie counts as
    wrong. Keys: ``{name}_accuracy_{measure}``; primary: the first measure (cosine by default)."""

    def __init__(
        self,
        anchors: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        name: str = "triplets",
        distances: Sequence[str] = SIMILARITIES,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ):
        if not (len(anchors) == len(positives) == len(negatives)):
            raise ValueError(
                f"anchors, positives and negatives must have the same length, got "
                f"{len(anchors)}, {len(positives)}, {len(negatives)}"
            )
        if not anchors:
            raise ValueError("no triplets given")
        distances = tuple(distances)
        unknown = [d for d in distances if d not in SIMILARITIES]
        if unknown or not distances:
            raise ValueError(f"distances must be among {', '.join(SIMILARITIES)}, got {list(distances)}")
        self.anchors, self.positives, self.negatives = list(anchors), list(positives), list(negatives)
        self.distances = distances
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    @property
    def primary_metric(self) -> str:
        return f"{self.name}_accuracy_{self.distances[0]}"

    def __call__(self, model) -> dict[str, float]:
        a = encode_texts(model, self.anchors, "a", self.batch_size, self.show_progress_bar)
        others = list(dict.fromkeys(self.positives + self.negatives))  # each distinct text once
        index = {s: i for i, s in enumerate(others)}
        b = encode_texts(model, others, "b", self.batch_size, self.show_progress_bar)
        return self.compute(a, b[[index[s] for s in self.positives]], b[[index[s] for s in self.negatives]])

    def compute(self, anchors, positives, negatives) -> dict[str, float]:
        """Accuracies from (N, D) embeddings of the anchors, positives and negatives."""
        if not (len(anchors) == len(positives) == len(negatives) == len(self.anchors)):
            raise ValueError(f"expected {len(self.anchors)} embeddings of each kind")
        to_positive = pairwise_similarities(np.asarray(anchors), np.asarray(positives))
        to_negative = pairwise_similarities(np.asarray(anchors), np.asarray(negatives))
        return {
            f"{self.name}_accuracy_{d}": float(np.mean(to_positive[d] > to_negative[d]))
            for d in self.distances
        }


# ---------------------------------------------------------------------------------------- one-shot
class OneShotEvaluator:
    """N-way one-shot classification (Koch et al., 2015): one reference text per class; each query gets the
    class of its most cosine-similar reference (ties: the first reference in ``references`` order).

    Keys: ``{name}_accuracy`` (primary) and ``{name}_ways`` (N, the number of references).
    """

    def __init__(
        self,
        references: Mapping[Hashable, str],
        queries: Sequence[str],
        labels: Sequence[Hashable],
        name: str = "one-shot",
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ):
        if len(references) < 2:
            raise ValueError(f"N-way one-shot needs at least 2 references, got {len(references)}")
        if len(queries) != len(labels):
            raise ValueError(
                f"queries and labels must have the same length, got {len(queries)}, {len(labels)}"
            )
        if not queries:
            raise ValueError("no queries given")
        unknown = sorted({repr(y) for y in labels if y not in references})
        if unknown:
            raise ValueError(f"label(s) without a reference: {', '.join(unknown[:5])}")
        self.reference_labels = list(references)
        self.references = [references[y] for y in self.reference_labels]
        self.queries = list(queries)
        self.labels = list(labels)
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar

    @property
    def primary_metric(self) -> str:
        return f"{self.name}_accuracy"

    def __call__(self, model) -> dict[str, float]:
        r = encode_texts(model, self.references, "b", self.batch_size, self.show_progress_bar)
        q = encode_texts(model, self.queries, "a", self.batch_size, self.show_progress_bar)
        return self.compute(r, q)

    def predict(self, reference_embeddings, query_embeddings) -> list[Hashable]:
        """The predicted label of each query."""
        if len(reference_embeddings) != len(self.references) or len(query_embeddings) != len(self.queries):
            raise ValueError(
                f"expected {len(self.references)} reference and {len(self.queries)} query embeddings, "
                f"got {len(reference_embeddings)} and {len(query_embeddings)}"
            )
        q = np.asarray(query_embeddings, dtype=np.float64)
        r = np.asarray(reference_embeddings, dtype=np.float64)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
        nearest = np.argmax(q @ r.T, axis=1)  # (Q, N) is small: N references; argmax takes the first tie
        return [self.reference_labels[i] for i in nearest]

    def compute(self, reference_embeddings, query_embeddings) -> dict[str, float]:
        """Metrics from embeddings with rows in ``reference_labels`` and ``queries`` order."""
        predicted = self.predict(reference_embeddings, query_embeddings)
        correct = [p == y for p, y in zip(predicted, self.labels, strict=True)]
        return {
            f"{self.name}_accuracy": float(np.mean(correct)),
            f"{self.name}_ways": float(len(self.references)),
        }
