"""Every command's ``--help``: it works, it shows the options' real defaults (never "None" or "False"), and
train's lists the recipe keys."""

from __future__ import annotations

import argparse

import pytest

from sbert_siamese.cli import main
from sbert_siamese.cli.main import COMMANDS, build_parser
from sbert_siamese.config import describe_fields

COMMAND_NAMES = ["train", "evaluate", "encode", "export", "calibrate", "predict", "dedup", "search", "mine",
                 "archive", "serve", "demo"]  # fmt: skip


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def help_of(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_the_commands_in_their_order_each_running_its_module():
    commands = subparsers(build_parser())
    assert list(commands) == COMMAND_NAMES
    for module, (name, parser) in zip(COMMANDS, commands.items(), strict=True):
        assert parser.get_default("func") is module.run, name


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "{" + ",".join(COMMAND_NAMES) + "}" in out and "--verbose" in out


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_help_exits_0_and_shows_real_defaults_only(command, capsys):
    out = help_of(command, capsys)
    assert out.startswith(f"usage: sbert-siamese {command} ")
    for hidden in ("(default: None)", "(default: False)", "==SUPPRESS=="):
        assert hidden not in out
    # every option with a real default names it, whether or not it has a help text of its own
    flat = " ".join(out.split())  # help lines wrap
    for action in subparsers(build_parser())[command]._actions:
        default = action.default
        if action.option_strings and default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {default})" in flat, (command, action.option_strings)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("evaluate", ["--batch-size BATCH_SIZE", "(default: 64)", "(default: sts-test)", "(default: 0.0)"]),
        ("encode", ["(default: 32)", "(default: 10000)", "(default: fp32)", "(default: torch)"]),
        ("predict", ["(default: 32)", "(default: sentence1)", "(default: error)"]),
        ("dedup", ["(default: 64)", "(default: auto)", "(default: 10)"]),
        ("mine", ["(default: 0.95)", "(default: 30)"]),
        ("demo", ["(default: runs/demo)"]),
    ],
)
def test_known_defaults(command, expected, capsys):
    flat = " ".join(help_of(command, capsys).split())
    for text in expected:
        assert text in flat, text


def test_train_options_show_no_defaults_of_their_own(capsys):
    # every train option defaults to the recipe's value; only --on-bad-rows says so, in words
    options = " ".join(help_of("train", capsys).split("recipe keys (also for --set)")[0].split())
    assert options.count("(default:") == 1 and "error (default: stop, naming file and line)" in options


def test_train_help_lists_the_recipe_keys_line_by_line(capsys):
    out = help_of("train", capsys)
    assert "recipe keys (also for --set):" in out
    for line in describe_fields().splitlines():  # the epilog keeps its lines (not re-wrapped)
        assert line in out.splitlines(), line


def test_predict_and_dedup_epilogs_keep_their_lines(capsys):
    assert "probabilities; a model\nwithout one" in help_of("predict", capsys)
    assert "to --groups (default: OUTPUT's name + .groups.jsonl)" in help_of("dedup", capsys)


def test_demo_finds_its_bundled_recipe_and_data():
    from sbert_siamese.cli.demo import DEFAULT_DATA_DIR, DEFAULT_RECIPE

    assert DEFAULT_RECIPE.is_file() and (DEFAULT_DATA_DIR / "train.tsv").is_file()
