"""Fixtures of the engine tests: small corpora with duplicates, and the local engine's results to match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def corpus_texts(n: int = 120) -> list[str]:
    """n texts, every seventh repeating an earlier one (exact duplicates: pairs at score 1)."""
    texts = []
    for i in range(n):
        texts.append(
            texts[i // 2] if i % 7 == 6 else f"question number {i} about topic {i % 11} and {i * 7 % 13}"
        )
    return texts


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("".join(t + "\n" for t in corpus_texts()), encoding="utf-8")
    return path


@pytest.fixture
def mixed_dir(tmp_path) -> Path:
    """A directory of three formats, with rows a skip policy leaves out (blank, not JSON, wrong fields)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    texts = corpus_texts(60)
    (folder / "a.txt").write_text("".join(t + "\n" for t in texts[:20]), encoding="utf-8")
    rows = "".join(f'{i},"{t}"\n' for i, t in enumerate(texts[20:40]))
    (folder / "b.csv").write_text("id,text\n" + rows + "99,too,many,fields\n", encoding="utf-8")
    lines = [json.dumps({"text": t}) for t in texts[40:]]
    lines.insert(5, "not json")
    (folder / "c.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def sidecars(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("shard_*.json"))]


def check_rows_once(folder: Path, expected_lines: list) -> None:
    """Row ids in the manifest: shards contiguous from row 0, each input line in exactly one shard."""
    m = manifest(folder)
    starts = [s["first_row"] for s in m["shards"]]
    assert starts == list(np.cumsum([0] + m["shard_rows"][:-1]))
    assert sum(m["shard_rows"]) == m["count"] == len(expected_lines)
    lines = [(info["file"], line) for info in sidecars(folder) for line in info["lines"]]
    assert len(lines) == len(set(lines))  # none written twice
    assert [line for _, line in lines] == expected_lines  # none lost, in input order
