"""The local engine: corpus jobs in this process. The jobs themselves live where they always have
(``io.streaming.encode_to_disk``, ``search.find_duplicates``, ``archive.ingest.add_file``); this module
gives them the inputs the cluster engine takes too: one file, a directory or a glob, files in sorted order."""

from __future__ import annotations

from pathlib import Path

from ..data.pieces import input_files
from ..data.rows import BadRows
from ..data.texts import read_texts_with_lines


def read_inputs(
    spec: str | Path, column: str = "text", bad_rows: BadRows | None = None
) -> tuple[list[str], list]:
    """The texts of every file of ``spec`` in order, and where each came from: its line (one file) or
    ``path:line`` (several files), as the cluster engine reports them."""
    files = input_files(spec)
    if len(files) == 1:
        return read_texts_with_lines(files[0], column, bad_rows)
    texts, lines = [], []
    for path in files:
        file_texts, file_lines = read_texts_with_lines(path, column, bad_rows)
        texts += file_texts
        lines += [f"{path}:{line}" for line in file_lines]
    return texts, lines
