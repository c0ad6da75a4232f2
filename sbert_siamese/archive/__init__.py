"""The duplicate-question archive and its HTTP service.

- ``store``: the SQLite database, the source of truth (questions, embeddings, removals, ingest progress).
- ``vectors``: the vector index over it (a search kind + the questions added since + a removal mask).
- ``checks``: what every input must be (texts, ids, metadata), shared by ``Archive`` and the server.
- ``decisions``: scores, threshold decisions and head probabilities of pairs; ``Match``.
- ``archive``: ``Archive`` (create, open, add, remove, query, compact, info).
- ``ingest``: ``add_file``: large input files added in chunks, resumable.
- ``batcher``, ``server``: the FastAPI app (``sbert-siamese serve``) and its micro-batching worker.
"""

from .archive import Archive
from .decisions import Judgement, Match
from .store import Question

__all__ = ["Archive", "Judgement", "Match", "Question"]
