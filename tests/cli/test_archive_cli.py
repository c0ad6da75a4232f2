"""``sbert-siamese archive ...`` end to end through ``main``: create, add (twice), query, remove, compact,
info, and the errors a user meets."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from sbert_siamese.cli import main
from sbert_siamese.cli.main import build_parser
from sbert_siamese.models.siamese import SiameseModel
from tests.archive.conftest import QUESTIONS


def run(capsys, *argv) -> tuple[int, list[dict], str]:
    status = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines() if line], captured.err


@pytest.fixture
def model_dir(tiny_bert_dir):
    return tiny_bert_dir


def test_create_add_query_remove_compact_info(model_dir, tmp_path, capsys):
    archive = tmp_path / "qa"
    questions = tmp_path / "q.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n", encoding="utf-8")
    status, (info,), _ = run(capsys, "archive", "create", archive, "--model", model_dir, "--threshold", 0.9)
    assert status == 0 and info["questions"] == 0 and info["threshold"]["threshold"] == 0.9
    status, (report,), _ = run(capsys, "archive", "add", archive, "--input", questions, "-q")
    assert status == 0 and (report["added"], report["first_id"], report["last_id"]) == (12, 0, 11)
    status, (report,), _ = run(capsys, "archive", "add", archive, "--input", questions, "-q")
    assert (report["added"], report["questions"]) == (0, 12)  # the same file again: nothing new

    status, rows, _ = run(capsys, "archive", "query", archive, "--text", "learn python", "--text",
                          "a horse", "--top-k", 3)  # fmt: skip
    assert status == 0 and [r["text"] for r in rows] == ["learn python", "a horse"]
    model = SiameseModel.load(model_dir)
    q = model.encode(["learn python"])
    c = model.encode(QUESTIONS)
    scores = (c @ q[0]) / (np.linalg.norm(c, axis=1) * np.linalg.norm(q[0]))
    assert [m["id"] for m in rows[0]["matches"]] == np.argsort(-scores)[:3].tolist()
    assert rows[0]["matches"][0]["score"] == pytest.approx(scores.max(), abs=1e-5)

    status, (removed,), _ = run(capsys, "archive", "remove", archive, "--ids", 0, 1, 99)
    assert status == 1 and removed == {"removed": [0, 1], "not_found": [99], "questions": 10}
    status, (compacted,), _ = run(capsys, "archive", "compact", archive)
    assert status == 0 and compacted["vectors_freed"] == 2
    status, (info,), _ = run(capsys, "archive", "info", archive)
    assert (info["questions"], info["removed"], info["largest_id"]) == (
        10,
        2,
        12,
    )  # 12: the file's reservation


def test_add_with_an_id_column_and_errors_name_the_line(model_dir, tmp_path, capsys):
    archive = tmp_path / "qa"
    run(capsys, "archive", "create", archive, "--model", model_dir)
    table = tmp_path / "q.csv"
    table.write_text("qid,question\n10,how to cook rice\nten,why is the sky blue\n", encoding="utf-8")
    status, _, err = run(capsys, "archive", "add", archive, "--input", table, "--column", "question",
                         "--id-column", "qid", "-q")  # fmt: skip
    assert status == 2 and f"{table}:3:" in err and "an integer in 0" in err
    status, (report,), _ = run(capsys, "archive", "add", archive, "--input", table, "--column", "question",
                               "--id-column", "qid", "--on-bad-rows", "skip", "-q")  # fmt: skip
    assert status == 0 and (report["added"], report["bad_rows"], report["first_id"]) == (1, 1, 10)


def test_user_errors_exit_2_with_one_line(model_dir, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    status, _, err = run(capsys, "archive", "create", tmp_path / "full", "--model", model_dir)
    assert status == 2 and "not an empty folder" in err
    status, _, err = run(capsys, "archive", "info", tmp_path / "nothing")
    assert status == 2 and "not an archive" in err
    run(capsys, "archive", "create", tmp_path / "qa", "--model", model_dir)
    status, _, err = run(capsys, "archive", "query", tmp_path / "qa")
    assert status == 2 and "--text" in err


@pytest.mark.parametrize("action", ["create", "add", "query", "remove", "compact", "info"])
def test_every_action_help_shows_its_real_defaults(action, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["archive", action, "--help"])
    assert exit_info.value.code == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in flat and "(default: False)" not in flat
    archive = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "archive"
    ]
    sub = next(a for a in archive._actions if isinstance(a, argparse._SubParsersAction)).choices[action]
    for option in sub._actions:
        if option.option_strings and option.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {option.default})" in flat, option.option_strings
