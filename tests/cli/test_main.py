"""The `sbert-siamese` command line end to end on fixture data with the tiny BERT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sbert_siamese import SiameseEncoder
from sbert_siamese.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "model: all-MiniLM-L6-v2\n"
        "data_format: tsv\n"
        "train_data: train.tsv\n"
        "dev_data: dev.tsv\n"
        "test_data: test.tsv\n"
        "batch_size: 8\n"
        "learning_rate: 1.0e-3\n"
        "eval_steps: 2\n"
    )
    return path


def test_train_evaluate_encode(tiny_bert_dir, recipe, tmp_path, capsys):
    out = tmp_path / "model"
    code = main(
        [
            "train",
            str(recipe),
            "--data-dir",
            str(DEMO),
            "--output-dir",
            str(out),
            "--model",
            str(tiny_bert_dir),
            "--max-steps",
            "3",
            "--seed",
            "5",
            "--set",
            "warmup_ratio=0.0",
            "-q",
        ]
    )
    assert code == 0
    headline = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert headline["sts-test_spearman_cosine"] == metrics["sts-test_spearman_cosine"]
    assert "initial/sts-test_spearman_cosine" in metrics and metrics["train/steps"] == 3
    saved_recipe = (out / "recipe.yaml").read_text()
    assert (
        "seed: 5" in saved_recipe
        and "warmup_ratio: 0.0" in saved_recipe
        and str(tiny_bert_dir) in saved_recipe
    )

    # evaluate prints the same test metrics as JSON
    code = main(
        [
            "evaluate",
            "--model",
            str(out),
            "--task",
            "sts",
            "--data-dir",
            str(DEMO),
            "--file",
            "test.tsv",
            "--data-format",
            "tsv",
            "-q",
        ]
    )
    assert code == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert set(evaluated) == {k for k in metrics if k.startswith("sts-test_")}
    for key, value in evaluated.items():
        assert value == pytest.approx(metrics[key], abs=1e-6)

    # encode from .txt, .csv and .jsonl gives encode()'s vectors in input order
    texts = ["a dog runs", "a man, with a guitar", "the rain"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "in.csv").write_text('id,text\n1,a dog runs\n2,"a man, with a guitar"\n3,the rain\n')
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    expected = SiameseEncoder.from_pretrained(out).encode(texts)
    for suffix in ("txt", "csv", "jsonl"):
        target = tmp_path / f"emb-{suffix}.npy"
        assert (
            main(
                [
                    "encode",
                    "--model",
                    str(out),
                    "--input",
                    str(tmp_path / f"in.{suffix}"),
                    "--output",
                    str(target),
                    "-q",
                ]
            )
            == 0
        )
        report = json.loads(capsys.readouterr().out)
        assert report["texts"] == 3 and report["truncated"] == 0
        np.testing.assert_allclose(np.load(target), expected, atol=1e-6)


def test_errors_are_one_line_with_exit_code_2(recipe, tmp_path, capsys):
    code = main(["train", str(recipe), "--set", "optimiser=sgd", "--output-dir", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['optimiser']" in err and "valid keys:" in err and "Traceback" not in err

    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence1\tsentence2\tscore\na\tb\t9\n")
    code = main(
        [
            "train",
            str(recipe),
            "--data-dir",
            str(tmp_path),
            "--set",
            "train_data=bad.tsv",
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "bad.tsv:2: score 9.0 is outside [0.0, 5.0]" in capsys.readouterr().err

    code = main(
        [
            "encode",
            "--model",
            str(tmp_path / "nowhere"),
            "--input",
            str(tmp_path / "missing.txt"),
            "--output",
            str(tmp_path / "x.npy"),
        ]
    )
    assert code == 2
    assert "missing.txt: file not found" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "sbert_siamese.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "recipe keys (also for --set)" in result.stdout and "learning_rate" in result.stdout


def test_demo_command_on_the_tiny_model(tiny_bert_dir, tmp_path, capsys):
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(
        f"model: {tiny_bert_dir}\ndata_format: tsv\ntrain_data: train.tsv\ndev_data: dev.tsv\n"
        "test_data: test.tsv\nbatch_size: 16\nmax_steps: 3\neval_steps: 2\n"
    )
    code = main(
        ["demo", "--recipe", str(recipe), "--data-dir", str(DEMO), "--output-dir", str(tmp_path / "d"), "-q"]
    )
    assert code == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert f"before fine-tuning: {100 * metrics['initial/sts-test_spearman_cosine']:.2f}" in out
    assert f"after fine-tuning:  {100 * metrics['sts-test_spearman_cosine']:.2f}" in out
    assert str(DEMO / "test.tsv") in out and "3/3 cosine similarity" in out
    assert out.count(" -> ") >= 5  # the example pairs, before -> after


def test_encode_checks_the_output_name_before_loading_anything(tmp_path, capsys):
    (tmp_path / "in.txt").write_text("a\n")
    code = main(
        [
            "encode",
            "--model",
            str(tmp_path / "nowhere"),
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(tmp_path / "x.txt"),
        ]
    )
    assert code == 2
    assert "expected a .npy file name" in capsys.readouterr().err


def test_encode_checks_precision_against_a_sharded_output_before_reading_anything(tmp_path, capsys):
    args = ["encode", "--model", str(tmp_path / "nowhere"), "--input", str(tmp_path / "missing.txt")]
    assert main([*args, "--output", str(tmp_path / "shards"), "--precision", "bf16"]) == 2
    assert "--precision applies to .npy output" in capsys.readouterr().err


def test_evaluate_pairs_and_predict_with_a_head(tiny_bert_dir, tmp_path, capsys):
    rows = "".join(
        f"{a}\t{b}\t{y}\n"
        for a, b, y in [
            ("how do i cook", "how to cook", 1),
            ("how do i cook", "fix my car", 0),
            ("best phone", "which phone to buy", 1),
            ("best phone", "learn guitar", 0),
        ]
    )
    (tmp_path / "pairs.tsv").write_text("q1\tq2\tlabel\n" + rows)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {tiny_bert_dir}\ndata_format: tsv\ntrain_data: pairs.tsv\n"
        "dev_data: null\ntest_data: pairs.tsv\n"
        "text_a_column: q1\ntext_b_column: q2\nloss: verification\nlabel_names: [different, duplicate]\n"
        "batch_size: 4\nmax_steps: 2\neval_name: qqp\n"
    )
    out = tmp_path / "m"
    assert main(["train", str(recipe), "--data-dir", str(tmp_path), "--output-dir", str(out), "-q"]) == 0
    trained = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(out),
                "--task",
                "pairs",
                "--data-dir",
                str(tmp_path),
                "--file",
                "pairs.tsv",
                "--data-format",
                "tsv",
                "--text-a-column",
                "q1",
                "--text-b-column",
                "q2",
                "--name",
                "qqp-test",
                "-q",
            ]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    for key in ("qqp-test_ap_cosine", "qqp-test_ap_head", "qqp-test_f1_threshold_euclidean"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-6), key

    assert (
        main(
            [
                "predict",
                "--model",
                str(out),
                "--input",
                str(tmp_path / "pairs.tsv"),
                "--text-a-column",
                "q1",
                "--text-b-column",
                "q2",
                "--output",
                str(tmp_path / "p.jsonl"),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["label"] for r in rows} <= {"different", "duplicate"}
    for r in rows:
        assert r["p_different"] + r["p_duplicate"] == pytest.approx(1.0, abs=1e-5)
        assert r["label"] == ("duplicate" if r["p_duplicate"] > r["p_different"] else "different")


def test_evaluate_sts_suite_with_missing_sets_and_pairs_mining_and_plots(tiny_bert_dir, tmp_path, capsys):
    from sbert_siamese.models.siamese import SiameseModel

    model_dir = SiameseModel(SiameseEncoder.from_pretrained(tiny_bert_dir)).save(tmp_path / "m")
    sts = tmp_path / "data" / "stsbenchmark"
    sts.mkdir(parents=True)
    rows = [
        ("a cat sits", "a cat is sitting", 4.5),
        ("a dog runs", "stocks fell", 0.5),
        ("rain", "it rains", 3.0),
    ]
    sts.joinpath("sts-test.csv").write_text(
        "".join(f"g\tf\ty\t{i:04d}\t{s}\t{a}\t{b}\n" for i, (a, b, s) in enumerate(rows))
    )
    out = tmp_path / "suite"
    args = ["evaluate", "--model", str(model_dir), "--suite", "sts", "--data-dir", str(tmp_path / "data")]
    assert main([*args, "--output-dir", str(out), "-q"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| Model | STS12") and "| m |" in table and "–" in table
    saved = json.loads((out / "sts_suite.json").read_text())
    assert set(saved["spearman_x100"]) == {"STSb", "avg"} and "STS12" in saved["missing"]
    assert (out / "sts_suite.md").read_text().strip() == table.strip()

    pairs = tmp_path / "pairs.jsonl"
    labelled = [("a cat sits", "a cat is sitting", 1), ("a cat sits", "a kitten sits", 1),
                ("a dog runs", "stocks fell", 0), ("rain falls", "it rains", 1)]  # fmt: skip
    pairs.write_text(
        "\n".join(json.dumps({"sentence1": a, "sentence2": b, "label": y}) for a, b, y in labelled)
    )
    base = ["evaluate", "--model", str(model_dir), "--file", str(pairs), "--data-format", "jsonl", "-q"]
    assert main([*base, "--task", "mining", "--name", "dups"]) == 0
    mining = json.loads(capsys.readouterr().out)
    assert set(mining) == {"dups_ap", "dups_f1", "dups_precision", "dups_recall", "dups_threshold"}
    assert main([*base, "--task", "pairs", "--name", "qqp", "--output-dir", str(tmp_path / "ev")]) == 0
    assert "qqp_ap_cosine" in json.loads(capsys.readouterr().out)
    written = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert written == ["qqp_cosine_pr_curve.png", "qqp_cosine_similarity.png", "qqp_metrics.json"]
