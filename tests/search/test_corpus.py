"""Duplicate detection and semantic search with a model, from Python and the CLI, checked against
brute-force all-pairs cosine on the tiny BERT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sbert_siamese import ConfigError
from sbert_siamese.cli import main
from sbert_siamese.evaluation.calibration import Threshold
from sbert_siamese.models.siamese import SiameseModel
from sbert_siamese.search import find_duplicates, semantic_search

CORPUS = [
    "how do i learn python",
    "what is the capital of france",
    "How do I learn Python",  # = 0 after the uncased tokenizer
    "the weather is nice today",
    "what is the capital of France",  # = 1
    "how can i lose weight fast",
    "HOW DO I LEARN PYTHON",  # = 0
    "which phone should i buy",
    "a completely different sentence about boats",
]


def brute_force_pairs(embeddings: np.ndarray, threshold: float) -> dict[tuple[int, int], float]:
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sims = x @ x.T
    n = len(x)
    return {(i, j): float(sims[i, j]) for i in range(n) for j in range(i + 1, n) if sims[i, j] >= threshold}


def test_find_duplicates_equals_brute_force_at_any_threshold(tiny_encoder):
    model = SiameseModel(tiny_encoder)
    embeddings = tiny_encoder.encode(CORPUS)
    for threshold in (0.9999, 0.9, 0.5, -1.0):
        result = find_duplicates(model, CORPUS, threshold=threshold, top_k=len(CORPUS))
        expected = brute_force_pairs(embeddings, threshold)
        assert {(i, j) for i, j, _ in result.pairs} == set(expected), threshold
        for i, j, score in result.pairs:
            assert score == pytest.approx(expected[(i, j)], abs=1e-5)
        assert [p[2] for p in result.pairs] == sorted((p[2] for p in result.pairs), reverse=True)
        assert result.index == "exact" and result.similarity == "cosine"


def test_exact_duplicates_form_groups_with_a_representative(tiny_encoder):
    model = SiameseModel(tiny_encoder, threshold=Threshold(score="cosine", threshold=0.9999))
    result = find_duplicates(model, CORPUS)  # the calibrated threshold
    assert result.threshold == 0.9999
    assert [sorted(g.members) for g in result.groups] == [[0, 2, 6], [1, 4]]
    assert result.groups[0].representative in (0, 2, 6) and result.groups[1].representative in (1, 4)


def test_threshold_must_come_from_somewhere_and_fit_the_search(tiny_encoder):
    with pytest.raises(ConfigError, match="calibrate"):
        find_duplicates(SiameseModel(tiny_encoder), CORPUS)
    on_head = SiameseModel(tiny_encoder, threshold=Threshold(score="head", threshold=0.5))
    with pytest.raises(ConfigError, match="--score cosine"):
        find_duplicates(on_head, CORPUS)
    with pytest.raises(ConfigError, match="at least 2 texts"):
        find_duplicates(SiameseModel(tiny_encoder), CORPUS[:1], threshold=0.5)


def test_semantic_search_equals_brute_force_ranking(tiny_encoder):
    model = SiameseModel(tiny_encoder)
    queries = ["learn python", "capital city of france", "boats"]
    hits = semantic_search(model, CORPUS, queries, top_k=4)
    c = tiny_encoder.encode(CORPUS, normalize=True)
    q = tiny_encoder.encode(queries, normalize=True)
    sims = q @ c.T
    for row, got in zip(sims, hits, strict=True):
        assert [i for i, _ in got] == list(np.argsort(-row, kind="stable")[:4])
        np.testing.assert_allclose([s for _, s in got], np.sort(row)[::-1][:4], atol=1e-5)


def test_dedup_cli_writes_pairs_and_groups_and_resumes_from_shards(tiny_encoder, tmp_path, capsys):
    model_dir = SiameseModel(tiny_encoder, threshold=Threshold(score="cosine", threshold=0.9999)).save(
        tmp_path / "m"
    )
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in CORPUS))
    out = tmp_path / "dups.csv"
    args = ["dedup", "--model", str(model_dir), "--input", str(corpus), "--output", str(out), "-q"]
    assert main([*args, "--embeddings", str(tmp_path / "emb")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["texts"], summary["pairs"], summary["groups"], summary["texts_in_groups"]) == (9, 4, 2, 5)
    lines = out.read_text().splitlines()
    assert lines[0] == "i,j,score,text_i,text_j" and len(lines) == 5
    groups = [json.loads(line) for line in (tmp_path / "dups.groups.jsonl").read_text().splitlines()]
    assert [sorted(g["members"]) for g in groups] == [[0, 2, 6], [1, 4]]
    assert groups[0]["representative_text"] == CORPUS[groups[0]["representative"]]
    assert sorted((tmp_path / "emb").glob("shard_*.npy"))  # embeddings kept for a rerun
    # --threshold overrides the stored one
    assert main([*args, "--threshold", "-1", "--top-k", "8"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 9 * 8 // 2


def test_search_cli(tiny_encoder, tmp_path, capsys):
    model_dir = SiameseModel(tiny_encoder).save(tmp_path / "m")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    code = main(["search", "--model", str(model_dir), "--corpus", str(corpus), "--query", "learn python",
                 "--query", "boats", "--top-k", "3", "-q"])  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["query"] for r in rows] == ["learn python", "boats"]
    assert all([h["rank"] for h in r["results"]] == [1, 2, 3] for r in rows)
    assert all(h["text"] == CORPUS[h["index"]] for r in rows for h in r["results"])
    assert main(["search", "--model", str(model_dir), "--corpus", str(corpus)]) == 2
    assert "--query" in capsys.readouterr().err


def test_cached_embeddings_of_another_model_are_refused(tiny_encoder, tmp_path):
    import torch

    model = SiameseModel(tiny_encoder)
    find_duplicates(model, CORPUS, threshold=0.99, embeddings_dir=tmp_path / "emb")
    find_duplicates(model, CORPUS, threshold=0.99, embeddings_dir=tmp_path / "emb")  # same model: reused
    with torch.no_grad():
        next(tiny_encoder.parameters())[0, 0] += 1e-3  # a retrained model with the same name
    with pytest.raises(ConfigError, match="other model"):
        find_duplicates(model, CORPUS, threshold=0.99, embeddings_dir=tmp_path / "emb")


def test_untied_models_need_an_explicit_dedup_threshold(tiny_encoder, tiny_bert_dir):
    from sbert_siamese import SiameseEncoder

    untied = SiameseModel(tiny_encoder, tower_b=SiameseEncoder.from_pretrained(tiny_bert_dir),
                          threshold=Threshold(score="cosine", threshold=0.5))  # fmt: skip
    with pytest.raises(ConfigError, match="tower a vs tower b"):
        find_duplicates(untied, CORPUS)
    assert find_duplicates(untied, CORPUS, threshold=0.9999).groups  # explicit: fine
