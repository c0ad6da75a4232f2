"""The robustness options on the command line: --on-bad-rows, --resume, --overwrite, --allow-pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sbert_siamese import SiameseEncoder
from sbert_siamese.cli import main

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def bad_train_file(folder: Path) -> Path:
    """The demo training pairs with three broken rows (lines 3, 5 and 8)."""
    lines = (DEMO / "train.tsv").read_text(encoding="utf-8").splitlines()
    lines[2] = "only one field"
    lines[4] = lines[4].rsplit("\t", 1)[0] + "\tmany"
    lines[7] = lines[7].rsplit("\t", 1)[0] + "\t7.5"
    path = folder / "train.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_train_on_bad_rows_error_then_skip(tiny_bert_dir, tmp_path, capsys):
    bad_train_file(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"data_format: tsv\ntrain_data: {tmp_path / 'train.tsv'}\ndev_data: null\n"
        f"test_data: {DEMO / 'test.tsv'}\nbatch_size: 8\nmax_steps: 2\nplots: false\n"
    )
    base = ["train", str(recipe), "--model", str(tiny_bert_dir), "--output-dir", str(tmp_path / "out"), "-q"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'train.tsv'}:3: expected 3 fields" in err
    assert err.count("\n") == 1  # one line, no traceback

    assert main([*base, "--on-bad-rows", "skip"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["data/skipped_rows"] == 3
    assert metrics["data/skipped_rows/wrong_field_count"] == 1
    assert metrics["data/skipped_rows/bad_score"] == 1
    assert metrics["data/skipped_rows/score_out_of_range"] == 1
    assert metrics["data/train_examples"] == 240 - 3


def test_encode_skip_writes_which_line_each_row_is(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"first text\n\nthird text\nbad \xff byte\nfifth text\n")
    out = tmp_path / "emb.npy"
    args = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), "-q"]
    assert main(args) == 2
    assert f"{texts}:4: invalid UTF-8 byte 0xff" in capsys.readouterr().err  # bytes are checked first
    assert main([*args, "--on-bad-rows", "skip"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["texts"] == 3 and report["skipped_rows"] == 2
    assert (tmp_path / "emb.lines.txt").read_text().split() == ["1", "3", "5"]
    expected = SiameseEncoder.from_pretrained(tiny_bert_dir).encode(
        ["first text", "third text", "fifth text"]
    )
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)


def test_train_resume_and_overwrite_flags(tiny_bert_dir, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "data_format: tsv\ntrain_data: train.tsv\ndev_data: null\ntest_data: null\nbatch_size: 8\n"
        "max_steps: 6\ncheckpoint_steps: 2\nplots: false\n"
    )
    out = tmp_path / "out"
    base = [
        "train",
        str(recipe),
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(DEMO),
        "--output-dir",
        str(out),
    ]
    assert main([*base, "-q"]) == 0
    assert main([*base, "-q"]) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert main([*base, "-q", "--resume"]) == 2  # the completed run kept no checkpoint
    assert "nothing to resume" in capsys.readouterr().err
    assert main([*base, "-q", "--overwrite"]) == 0


def test_allow_pickle_flag_on_encode(tiny_bert_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    weights = tiny_bert_dir / "model.safetensors"
    torch.save(load_file(weights), tiny_bert_dir / "pytorch_model.bin")
    weights.unlink()
    texts = tmp_path / "texts.txt"
    texts.write_text("one\ntwo\n")
    args = [
        "encode",
        "--model",
        str(tiny_bert_dir),
        "--input",
        str(texts),
        "--output",
        str(tmp_path / "e.npy"),
    ]
    assert main([*args, "-q"]) == 2
    err = capsys.readouterr().err
    assert "pytorch_model.bin" in err and "--allow-pickle" in err
    with pytest.warns(UserWarning, match="pickle"):
        assert main([*args, "-q", "--allow-pickle"]) == 0


def test_an_unwritable_output_is_one_line(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("one\ntwo\n")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "emb.npy"  # a path under a file cannot be created
    args = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sbert-siamese encode: error: ") and err.count("\n") == 1
    assert str(blocker) in err


def test_dedup_with_skipped_rows_gives_input_lines(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"a cat sits\n\nbad \xff\na cat sits\nsomething else\n")
    out = tmp_path / "pairs.jsonl"
    args = ["dedup", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out)]
    assert main([*args, "--threshold", "0.99", "-q", "--on-bad-rows", "skip"]) == 0
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(p["i"], p["j"], p["line_i"], p["line_j"]) for p in pairs] == [(0, 1, 1, 4)]
    groups = [json.loads(line) for line in (tmp_path / "pairs.groups.jsonl").read_text().splitlines()]
    assert groups[0]["member_lines"] == [1, 4]
