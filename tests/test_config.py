"""TrainConfig validation, YAML recipes, --set overrides, save/load round trip and the shipped recipes."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from sbert_siamese.config import (
    FIELDS,
    SOURCE_KEYS,
    TASK_KEYS,
    TrainConfig,
    describe_fields,
    load_recipe,
    make_config,
    parse_overrides,
    task_config,
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
    every = {f.name: getattr(config, f.name) for f in fields(TrainConfig)}
    assert config.to_dict() == {k: v for k, v in every.items() if k != "loss_params"}  # unset: not written


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
    assert message.startswith(f"{path}:2: ")  # the line of the first unknown key
    assert "unknown key(s) ['batchsize', 'lr']" in message
    assert "valid keys: " in message
    for name in ("learning_rate", "batch_size", "epochs", "output_dir"):
        assert name in message


def test_load_recipe_bad_value_names_the_file(tmp_path):
    path = write(tmp_path / "r.yaml", "loss: quadruplet\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:1: ")
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


# ------------------------------------------------------------------- checks that need the loss, before data
# The data files do not exist: a configuration error must come first, with the recipe file and line.
NO_DATA = "train_data: does/not/exist.tsv\ndev_data: null\ntest_data: null\n"


def recipe_error(tmp_path, text: str, overrides: dict | None = None) -> tuple[Path, str]:
    path = write(tmp_path / "r.yaml", NO_DATA + text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path, overrides)
    return path, str(info.value)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("loss: contrastive\ndistance: dot\n", 5,
         "contrastive losses need a distance that is >= 0 and 0 at u == v; got 'dot', valid: cosine, "),
        ("loss: online_contrastive\nmargin: -1\n", 5, "margin must be >= 0, got -1.0"),
        ("loss: triplet\ndistance: euclidean\nmargin: -0.5\n", 6, "margin must be >= 0, got -0.5"),
        ("loss: cosent\nscale: -2\n", 5, "scale must be >= 0, got -2.0"),
        ("loss: in_batch_negatives\nadditive_margin: -0.1\n", 5, "additive_margin must be >= 0, got -0.1"),
        ("loss: softmax\nnum_labels: 1\n", 5, "num_labels must be >= 2 (the softmax head needs two classes)"),
        ("loss: batch_hard_triplet\nuntied: true\n", 5,
         "untied towers need examples with two or more texts; loss batch_hard_triplet has one"),
        ("loss: in_batch_negatives\nsampler: groups\n", 5,
         "sampler: groups batches examples by their target; loss in_batch_negatives has none"),
        ("loss: batch_hard_triplet\nsampler: groups\nsamples_per_group: 1\n", 6,
         "samples_per_group must be >= 2 (a group needs a positive), got 1"),
        ("sampler: groups\nbatch_size: 7\n", 5, "batch_size 7 must be a multiple of samples_per_group 2"),
        ("batch_size: 2\nsampler: groups\n", 4,
         "batch_size 2 holds only 1 group of 2; a batch needs >= 2 groups for negatives: use batch_size >= "),
        ("loss: contrastive\nloss_params:\n  temperature: 0.1\n", 6,
         "loss_params.temperature is not a parameter of loss contrastive; valid: none"),
        ("loss_params: [1]\n", 4, "loss_params must be a mapping"),
    ],
)  # fmt: skip
def test_loss_dependent_checks_name_the_file_and_line(tmp_path, text, line, message):
    path, error = recipe_error(tmp_path, text)
    assert error.startswith(f"{path}:{line}: {message}"), error


def test_an_override_is_named_instead_of_a_line(tmp_path):
    path, error = recipe_error(tmp_path, "loss: contrastive\nmargin: 0.5\n", {"margin": -1})
    assert error == f"{path} (override margin): margin must be >= 0, got -1.0"
    with pytest.raises(ConfigError, match=r"^--set: margin must be >= 0"):
        make_config(parse_overrides(["loss=triplet", "margin=-1"]), "--set")


TASKS = "loss: in_batch_negatives\ndistance: {distance}\ntasks:\n  - name: pairs\n    train_data: pairs.tsv\n"


@pytest.mark.parametrize(
    "entry, line, message",
    [
        # the entry's own keys: the line of the key
        ("    loss: contrastive\n    margin: -1\n", 10, "tasks[1]: margin must be >= 0, got -1"),
        ("    loss: contrastive\n    learning_rate: 1.0\n", 10,
         "tasks[1]: unknown key(s) ['learning_rate']; valid: "),
        ("    loss: softmax\n", 9, "tasks[1]: loss softmax trains a head; only the main task may"),
        ("    loss: in_batch_negatives\n    hard_negatives: true\n", 10,
         "tasks[1]: hard_negatives applies to the main task only"),
        ("    loss: quadruplet\n", 9, "tasks[1]: loss='quadruplet' is not valid; choose one of cosine, "),
        ("    loss: in_batch_negatives\n    sampler: groups\n", 10,
         "tasks[1]: sampler: groups batches examples by their target; loss in_batch_negatives has none"),
        ("    loss: contrastive\n    loss_params: {tau: 1}\n", 10,
         "tasks[1]: loss_params.tau is not a parameter of loss contrastive; valid: none"),
        # a value inherited from the recipe that the task's loss cannot take: the line of the entry
        ("    loss: contrastive\n    distance: dot\n", 10, "tasks[1]: contrastive losses need a distance"),
        ("    loss: contrastive\n", 7,
         "tasks[1] (loss contrastive) inherits distance from the recipe: contrastive losses need a distance"),
    ],
)  # fmt: skip
def test_task_entries_are_checked_with_the_recipe(tmp_path, entry, line, message):
    distance = "cosine" if "distance from the recipe" not in message else "dot"
    path, error = recipe_error(tmp_path, TASKS.format(distance=distance) + entry)
    assert error.startswith(f"{path}:{line}: {message}"), error


def test_task_entries_that_are_not_entries(tmp_path):
    path, error = recipe_error(tmp_path, "tasks:\n  - loss: contrastive\n")
    assert error.startswith(f"{path}:5: tasks[1] needs at least 'loss' and 'train_data'")
    path, error = recipe_error(tmp_path, "tasks:\n  loss: contrastive\n")
    assert error.startswith(f"{path}:4: tasks must be a list")


@pytest.mark.parametrize(
    "values",
    [
        # the groups sampler batches any targets: labels, classes (it refuses only target-less losses)
        dict(loss="contrastive", sampler="groups", batch_size=4),
        dict(loss="softmax", num_labels=3, sampler="groups", batch_size=6, samples_per_group=2),
        dict(loss="batch_hard_triplet", derive="groups", sampler="random"),
        # untied towers with a one-text task: tower a embeds its texts (only the main loss needs two)
        dict(loss="in_batch_negatives", untied=True, tasks=[
            {"loss": "batch_hard_triplet", "train_data": "x.tsv", "derive": "groups", "sampler": "groups"}]),
        # a task inherits the recipe's distance where its loss takes it
        dict(loss="in_batch_negatives", distance="dot", tasks=[{"loss": "triplet", "train_data": "x.tsv"}]),
        # samples_per_group matters only to the groups sampler
        dict(samples_per_group=1, batch_size=3),
    ],
)  # fmt: skip
def test_configurations_that_train_today_stay_valid(values):
    TrainConfig(**values)


def test_task_config_inherits_the_recipe_but_not_the_main_tasks_shaping():
    config = TrainConfig(
        loss="in_batch_negatives", derive="positives", extra_train_data=["more.tsv"], text_a_column="q1",
        untied=True, split="none", batch_size=32, loss_params=None,
    )  # fmt: skip
    task = task_config(config, {"name": "pairs", "loss": "contrastive", "train_data": "p.tsv", "margin": 0.3})
    assert (task.loss, task.train_data, task.margin, task.text_a_column, task.batch_size) == (
        "contrastive", "p.tsv", 0.3, "q1", 32
    )  # fmt: skip
    assert (task.derive, task.extra_train_data, task.loss_params, task.tasks) == ("none", None, None, None)
    assert (task.dev_data, task.test_data, task.untied) == (None, None, False)
    # as in the recipe itself, YAML 1.1's 2e-1 (a string) is a number
    assert task_config(config, {"loss": "triplet", "train_data": "t.tsv", "margin": "2e-1"}).margin == 0.2


def test_task_and_source_keys():
    assert set(SOURCE_KEYS) <= set(TASK_KEYS) <= set(FIELDS) | {"name"}
    assert "loss_params" in TASK_KEYS and "learning_rate" not in TASK_KEYS


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_is_valid(recipe):
    load_recipe(recipe)


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


@pytest.mark.parametrize("text", ["loss: [cosine]\n", "loss: {cosine: 1}\n", "pooling: [mean]\n"])
def test_a_list_or_mapping_where_a_name_belongs_is_a_config_error(tmp_path, text):
    path, error = recipe_error(tmp_path, text)
    assert error.startswith(f"{path}:4: ") and "is not valid; choose one of" in error


def test_a_task_whose_loss_is_a_list_is_a_config_error(tmp_path):
    path, error = recipe_error(tmp_path, "tasks:\n  - loss: [cosine]\n    train_data: t.tsv\n")
    assert "tasks[1]" in error and "loss" in error


@pytest.mark.parametrize("tasks", ["[]", "{}", "null"])
def test_empty_tasks_mean_no_extra_tasks(tmp_path, tasks):
    config = load_recipe(write(tmp_path / "r.yaml", NO_DATA + f"tasks: {tasks}\n"))
    assert not config.tasks


def test_unset_loss_params_leave_the_saved_recipe_as_before(tmp_path):
    """recipe.yaml gains a loss_params line only when a recipe sets some: a recipe saved by this version
    loads in versions that predate the key, and {} and null are one value (resume sees no change)."""
    config = load_recipe(write(tmp_path / "r.yaml", NO_DATA + "loss_params: {}\n"))
    assert config.loss_params is None and "loss_params" not in config.to_dict()
    config.save(tmp_path / "saved.yaml")
    assert "loss_params" not in (tmp_path / "saved.yaml").read_text()
    assert load_recipe(tmp_path / "saved.yaml") == config
