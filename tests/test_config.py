"""TrainConfig validation, YAML recipes, --set overrides, save/load round trip and the shipped recipes."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from sbert_siamese.config import (
    FIELDS,
    TrainConfig,
    describe_fields,
    load_recipe,
    make_config,
    parse_overrides,
)
from sbert_siamese.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- validation
def test_defaults_are_valid():
    config = TrainConfig()
    config.validate()
    assert (config.model, config.loss, config.data_format) == ("all-MiniLM-L6-v2", "cosine", "stsb")
    assert (config.epochs, config.batch_size, config.learning_rate, config.warmup_ratio) == (1, 16, 2e-5, 0.1)
    assert (config.score_min, config.score_max, config.seed) == (0.0, 5.0, 0)
    assert config.to_dict() == {f.name: getattr(config, f.name) for f in fields(TrainConfig)}


def test_every_field_has_help():
    described = describe_fields()
    for name, f in FIELDS.items():
        assert f.metadata.get("help"), name
        assert f"  {name} (default " in described


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"loss": "mse"}, ["loss='mse'", "cosine", "cosent"]),
        (
            {"data_format": "xlsx"},
            ["data_format='xlsx'", "stsb, csv, tsv, tsv_quoted, jsonl, parquet, senteval, hf"],
        ),
        ({"pooling": "sum"}, ["pooling='sum'", "mean, cls, max"]),
        ({"mixed_precision": "fp8"}, ["mixed_precision='fp8'", "no, bf16, fp16"]),
        ({"batch_size": 0}, ["batch_size must be an integer >= 1, got 0"]),
        ({"epochs": 2.5}, ["epochs must be an integer >= 1, got 2.5"]),
        ({"gradient_accumulation_steps": -1}, ["gradient_accumulation_steps", ">= 1"]),
        ({"eval_batch_size": 0}, ["eval_batch_size", ">= 1"]),
        ({"max_steps": 0}, ["max_steps must be an integer >= 1 or null"]),
        ({"eval_steps": -1}, ["eval_steps must be an integer >= 0"]),
        ({"learning_rate": -1e-5}, ["learning_rate must be >= 0"]),
        ({"weight_decay": -0.1}, ["weight_decay must be >= 0"]),
        ({"max_grad_norm": -1.0}, ["max_grad_norm must be >= 0"]),
        ({"warmup_ratio": 1.0}, ["warmup_ratio must be in [0, 1), got 1.0"]),
        ({"warmup_ratio": -0.1}, ["warmup_ratio must be in [0, 1)"]),
        ({"score_max": 0.0}, ["score_max (0.0) must be greater than score_min (0.0)"]),
        ({"score_min": 1.0, "score_max": 0.5}, ["score_max (0.5) must be greater than score_min (1.0)"]),
    ],
)
def test_invalid_values_raise_config_error(values, expected):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**values)
    for part in expected:
        assert part in str(info.value)
    # make_config adds the source in front.
    with pytest.raises(ConfigError) as info:
        make_config(dict(values), "my.yaml")
    assert str(info.value).startswith("my.yaml: ")


@pytest.mark.parametrize("key", ["learning_rate", "warmup_ratio", "score_max"])
def test_null_for_a_number_is_a_config_error(key):
    # `learning_rate:` left blank in a recipe, or `--set learning_rate=null`, reads as None; it must be a
    # ConfigError naming the key, not a TypeError from float(None) inside validate().
    with pytest.raises(ConfigError) as info:
        make_config({key: None}, "r.yaml")
    assert key in str(info.value)


def test_valid_non_defaults_are_accepted():
    config = TrainConfig(
        loss="cosent", pooling="cls", mixed_precision="bf16", data_format="hf", max_steps=5, eval_steps=0
    )
    assert (config.loss, config.pooling, config.mixed_precision, config.max_steps) == (
        "cosent",
        "cls",
        "bf16",
        5,
    )


# ---------------------------------------------------------------------------------------------- recipes
def test_load_recipe_applies_values(tmp_path):
    path = write(
        tmp_path / "r.yaml",
        "# a comment\n"
        "model: /models/tiny\n"
        "data_format: tsv\n"
        "epochs: 3\n"
        "learning_rate: 2e-5\n"  # YAML 1.1 reads this as a string
        "weight_decay: 2.0e-5\n"  # and this as a float
        "score_max: 1\n"
        "dev_data: null\n"
        "pooling: max\n"
        "keep_best: false\n",
    )
    config = load_recipe(path)
    assert config.model == "/models/tiny"
    assert config.data_format == "tsv"
    assert config.epochs == 3 and isinstance(config.epochs, int)
    assert config.learning_rate == 2e-5 and type(config.learning_rate) is float
    assert config.weight_decay == 2e-5 and type(config.weight_decay) is float
    assert config.score_max == 1.0 and type(config.score_max) is float
    assert config.dev_data is None
    assert config.pooling == "max"
    assert config.keep_best is False
    # Keys not in the file keep their defaults.
    assert config.batch_size == 16 and config.test_data == "sts-test.csv"


def test_load_recipe_overrides_win(tmp_path):
    path = write(tmp_path / "r.yaml", "epochs: 3\nseed: 7\n")
    config = load_recipe(path, {"epochs": 5, "learning_rate": "1e-4"})
    assert (config.epochs, config.seed, config.learning_rate) == (5, 7, 1e-4)


def test_load_recipe_empty_file_gives_defaults(tmp_path):
    assert load_recipe(write(tmp_path / "r.yaml", "# nothing yet\n")) == TrainConfig()


def test_load_recipe_unknown_key(tmp_path):
    path = write(tmp_path / "r.yaml", "epochs: 2\nlr: 0.1\nbatchsize: 8\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "unknown key(s) ['batchsize', 'lr']" in message
    assert "valid keys: " in message
    for name in ("learning_rate", "batch_size", "epochs", "output_dir"):
        assert name in message


def test_load_recipe_bad_value_names_the_file(tmp_path):
    path = write(tmp_path / "r.yaml", "loss: quadruplet\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "loss='quadruplet'" in str(info.value) and "cosine, cosent, contrastive" in str(info.value)
    path = write(tmp_path / "r2.yaml", "learning_rate: fast\n")
    with pytest.raises(ConfigError, match=r"learning_rate must be a number, got 'fast'"):
        load_recipe(path)


@pytest.mark.parametrize(
    "text, line",
    [
        ("model: a\nepochs: 2\nloss: cosine\n  seed: 1\n", 4),
        ('model: a\nepochs: 2\noutput_dir: "runs/x\n', 4),
        ("model: a\nloss: [cosine\n", 3),
    ],
)
def test_load_recipe_yaml_syntax_error_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path / "broken.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:{line}: invalid YAML")


@pytest.mark.parametrize(
    "text, kind", [("- epochs\n- 2\n", "list"), ("just a string\n", "str"), ("3\n", "int")]
)
def test_load_recipe_not_a_mapping(tmp_path, text, kind):
    path = write(tmp_path / "r.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}: expected a mapping of recipe keys, found {kind}"


def test_load_recipe_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_recipe(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: recipe file not found"
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path)  # a directory is not a recipe


# ---------------------------------------------------------------------------------------------- overrides
def test_parse_overrides_reads_values_as_yaml():
    values = parse_overrides(
        [
            "epochs=3",
            "dev_data=null",
            "learning_rate=1e-4",
            "keep_best=false",
            "model=a=b",
            " seed = 4",
            "data_dir=",
        ]
    )
    assert values == {
        "epochs": 3,
        "dev_data": None,
        "learning_rate": "1e-4",  # a string to YAML; make_config turns it into a float
        "keep_best": False,
        "model": "a=b",
        "seed": 4,
        "data_dir": None,
    }
    config = make_config(values, "--set")
    assert config.learning_rate == 1e-4 and type(config.learning_rate) is float
    assert (config.epochs, config.dev_data, config.keep_best, config.model, config.seed) == (
        3,
        None,
        False,
        "a=b",
        4,
    )


def test_parse_overrides_needs_equals():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["epochs=2", "epochs3"])
    assert "'epochs3'" in str(info.value) and "key=value" in str(info.value)


def test_override_with_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\]"):
        make_config(parse_overrides(["epoch=2"]), "--set")


# ---------------------------------------------------------------------------------------------- round trip
def test_save_then_load_round_trip(tmp_path):
    config = TrainConfig(
        model="/some/model dir",
        pooling="cls",
        normalize=True,
        max_seq_length=128,
        data_format="jsonl",
        dev_data=None,
        text_a_column="q1",
        score_min=1.0,
        score_max=5.0,
        loss="cosent",
        epochs=3,
        max_steps=50,
        learning_rate=3e-5,
        warmup_ratio=0.0,
        mixed_precision="no",
        seed=42,
        output_dir="runs/x: y",
        overwrite=True,
    )
    path = tmp_path / "recipe.yaml"
    config.save(path)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == config.to_dict()
    loaded = load_recipe(path)
    assert loaded == config
    assert type(loaded.learning_rate) is float
    # Defaults survive too (mixed_precision "no" must not come back as False).
    TrainConfig().save(path)
    assert load_recipe(path) == TrainConfig()


# ------------------------------------------------------------------------------------------- shipped recipes
def test_stsb_recipe_has_the_promised_settings():
    config = load_recipe(REPO / "recipes" / "stsb_cosine.yaml")
    assert config.model == "all-MiniLM-L6-v2"
    assert config.data_format == "stsb"
    assert (config.train_data, config.dev_data, config.test_data) == (
        "sts-train.csv",
        "sts-dev.csv",
        "sts-test.csv",
    )
    assert (config.score_min, config.score_max) == (0.0, 5.0)
    assert config.loss == "cosine"
    assert config.epochs == 1
    assert config.batch_size == 16
    assert config.learning_rate == 2e-5
    assert config.warmup_ratio == 0.1
    assert config.seed == 0


def test_demo_recipe_loads_and_its_data_is_in_the_repo():
    from sbert_siamese.data.readers import load_pairs

    config = load_recipe(REPO / "recipes" / "demo.yaml")
    assert config.model == "all-MiniLM-L6-v2"
    assert (config.data_format, config.loss, config.learning_rate, config.seed) == ("tsv", "cosine", 2e-5, 0)
    data_dir = REPO / config.data_dir
    for name in (config.train_data, config.dev_data, config.test_data):
        pairs = load_pairs(name, config.data_format, data_dir)
        assert pairs and all(0.0 <= p.score <= 1.0 for p in pairs)
