"""Checks of what goes into an archive, shared by ``Archive`` and the HTTP service: each failure is an
``ArchiveError`` naming the argument (``texts[3]``, ``ids[0]``, ``metadata[1]``), raised before anything is
written. What is refused is what could not be served back later: a lone surrogate (JSON allows
``"\\ud800"``; UTF-8 and tokenizers do not), metadata nested too deep to serialise again, an id that JSON
clients cannot hold exactly."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from ..errors import ArchiveError
from .store import NewRow

MAX_ID = 2**53 - 1  # ids stay exact in every JSON client (JavaScript numbers are doubles)
METADATA_DEPTH = 32


def check_texts(texts, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise ArchiveError(f"{name} must be a list of strings; wrap a single text in a list", name)
    if not isinstance(texts, Sequence) or not texts:
        raise ArchiveError(f"{name} must be a non-empty list of strings", name)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ArchiveError(f"{name}[{i}] must be a string, got {type(text).__name__}", f"{name}[{i}]")
        if not text.strip():
            raise ArchiveError(f"{name}[{i}] is empty", f"{name}[{i}]")
        if not is_unicode(text):
            raise ArchiveError(f"{name}[{i}] is not valid Unicode (a lone surrogate)", f"{name}[{i}]")
    return list(texts)


def is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON allows "\\ud800"; UTF-8 and tokenizers do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(value, limit: int) -> int:
    """Nesting depth of a JSON value, counted up to ``limit + 1``."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


def check_metadata(item, field: str) -> None:
    """A question's metadata: a JSON object (or None) that serialises to valid UTF-8, nested at most
    ``METADATA_DEPTH`` deep (what comes back in every answer must serialise again)."""
    if item is None:
        return
    if _depth(item, METADATA_DEPTH) > METADATA_DEPTH:
        raise ArchiveError(f"{field} is nested more than {METADATA_DEPTH} levels deep", field)
    try:
        text = json.dumps(item, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ArchiveError(f"{field} is not JSON-serialisable ({exc})", field) from None
    if not is_unicode(text):
        raise ArchiveError(f"{field} is not valid Unicode (a lone surrogate)", field)


def check_ids(ids, n: int | None) -> list[int]:
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence | np.ndarray):
        raise ArchiveError("ids must be a list of integers", "ids")
    out = []
    for i, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= MAX_ID:
            raise ArchiveError(f"ids[{i}] must be an integer in 0..{MAX_ID}, got {value!r}", f"ids[{i}]")
        out.append(int(value))
    if n is not None and len(out) != n:
        raise ArchiveError(f"ids has {len(out)} entries for {n} texts", "ids")
    if len(set(out)) != len(out):
        raise ArchiveError("ids repeat within the request", "ids")
    return out


def check_rows(texts, ids=None, metadata=None) -> list[NewRow]:
    """Rows to add, every argument checked (ids None: counted on from the largest id when committed)."""
    texts = check_texts(texts)
    ids = [None] * len(texts) if ids is None else check_ids(ids, len(texts))
    if metadata is None:
        metadata = [None] * len(texts)
    elif not isinstance(metadata, list | tuple) or len(metadata) != len(texts):
        raise ArchiveError(f"metadata must be a list of {len(texts)} objects (one per text)", "metadata")
    for i, item in enumerate(metadata):
        if item is not None and not isinstance(item, dict):
            raise ArchiveError(f"metadata[{i}] must be a JSON object or null", f"metadata[{i}]")
        check_metadata(item, f"metadata[{i}]")
    return [NewRow(i, t, m) for i, t, m in zip(ids, texts, metadata, strict=True)]
