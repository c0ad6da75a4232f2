"""Offline hard-negative mining with a model, through the ``mine`` command on the tiny BERT. The unit tests of
``mine_hard_negatives`` and ``group_neighbours`` on hand-made embeddings are in
``tests/training/test_objective_training.py``, next to the training runs that use them."""

from __future__ import annotations

import json

from sbert_siamese.cli import main
from sbert_siamese.models.siamese import SiameseModel


def test_mine_cli_never_returns_a_known_positive(tiny_encoder, tmp_path, capsys):
    model_dir = SiameseModel(tiny_encoder).save(tmp_path / "m")
    rows = [
        ("how do i learn python", "best way to learn python", 1),
        ("best way to learn python", "python for beginners", 1),
        ("what is the capital of france", "which city is france's capital", 1),
        ("how do i learn python", "how do i learn java", 0),
        ("the weather is nice today", "is it sunny today", 0),
        ("which phone should i buy", "what phone is best to buy", 1),
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"sentence1": a, "sentence2": b, "label": y}) for a, b, y in rows))
    out = tmp_path / "triplets.jsonl"
    code = main(["mine", "--model", str(model_dir), "--pairs", str(pairs), "--label-column", "label",
                 "--output", str(out), "--max-relative-similarity", "10", "-q"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    triplets = [json.loads(line) for line in out.read_text().splitlines()]
    assert report["mined/triplets"] == len(triplets) == 4  # one per positive pair
    python = {"how do i learn python", "best way to learn python", "python for beginners"}
    for t in triplets:
        assert t["negative"] not in (t["anchor"], t["positive"])
        if t["anchor"] in python:
            assert t["negative"] not in python  # the whole duplicate cluster is excluded
