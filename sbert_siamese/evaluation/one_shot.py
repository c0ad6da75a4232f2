"""N-way one-shot classification: each query takes the class of its most similar reference text."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from .ranking import encode_texts


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
