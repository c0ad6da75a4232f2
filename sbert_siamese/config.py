"""TrainConfig: one flat, validated dataclass; recipes are YAML files of its fields.

``load_recipe`` reads a YAML recipe, applies ``key=value`` overrides and validates the result; unknown
keys and bad values raise ``ConfigError`` naming the file and listing the valid choices.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .data.readers import DATA_FORMATS
from .distances import DISTANCES
from .errors import ConfigError
from .losses import OBJECTIVES
from .models.pooling import POOLING_MODES

MIXED_PRECISION = ("no", "bf16", "fp16")
DERIVATIONS = ("none", "positives", "groups")
SPLITS = ("none", "question")
SAMPLERS = ("random", "length_grouped", "no_duplicates", "groups")
ON_BAD_ROWS = ("error", "skip")


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    # model
    model: str = _opt("all-MiniLM-L6-v2", "local directory, known offline name, or hub id (online)")
    pooling: str | None = _opt(None, f"override the model's pooling: {', '.join(POOLING_MODES)}")
    normalize: bool | None = _opt(None, "override whether embeddings are L2-normalised")
    max_seq_length: int | None = _opt(None, "truncate inputs to this many tokens (default: the model's)")
    # data
    data_format: str = _opt("stsb", f"one of {', '.join(DATA_FORMATS)}")
    data_dir: str | None = _opt(None, "folder that relative data paths are read from")
    train_data: str | list = _opt(
        "sts-train.csv", "training data: a path or {path, data_format, ...}, or a list"
    )
    dev_data: str | dict | None = _opt("sts-dev.csv", "dev pairs, evaluated every eval_steps (null: none)")
    test_data: str | dict | None = _opt("sts-test.csv", "test pairs, evaluated before and after (null: none)")
    extra_test_data: list[dict] | None = _opt(None, "more test sets: [{name, path, data_format, ...}]")
    drop_test_overlap: bool = _opt(False, "drop training pairs that share a text with a test set")
    text_a_column: str = _opt("sentence1", "column of the first text (csv/tsv/jsonl/parquet/hf)")
    text_b_column: str = _opt("sentence2", "column of the second text")
    score_column: str = _opt("score", "column of the gold score")
    score_min: float = _opt(0.0, "lowest gold score; scores are scaled to [0, 1]")
    score_max: float = _opt(5.0, "highest gold score")
    label_column: str = _opt("label", "column of the label (0/1, a class index, or a name in label_names)")
    label_names: list[str] | None = _opt(None, "class names, in index order (e.g. NLI's three labels)")
    text_columns: list[str] | None = _opt(None, "all text columns, e.g. [anchor, positive, negative]")
    key_columns: list[str] | None = _opt(None, "per-text identity columns for the split (e.g. [qid1, qid2])")
    derive: str = _opt("none", f"turn labelled pairs into the loss's input: {', '.join(DERIVATIONS)}")
    hard_negatives: bool = _opt(False, "mine one hard negative per (anchor, positive) with the start model")
    labelled_negatives: bool = _opt(
        False,
        "train on the labelled non-duplicates too: in-batch negatives get a row (a, p, n) per pair (a, n), "
        "p a known duplicate of a, else a itself (needs hard_negatives); groups: batch them together",
    )
    extra_train_data: list[str] | None = _opt(None, "more labelled pairs for training only (after the split)")
    split: str = _opt("none", f"{', '.join(SPLITS)}: split train_data into train/dev/test by question")
    split_fractions: list[float] = _opt((0.8, 0.1, 0.1), "train, dev, test shares for split: question")
    split_seed: int = _opt(0, "seed of the split")
    sampler: str = _opt("random", f"batch sampler: {', '.join(SAMPLERS)}")
    samples_per_group: int = _opt(2, "K of a P x K batch (sampler: groups)")
    hard_batches: bool = _opt(
        False, "sampler groups: fill each batch with nearby groups (start-model embeddings)"
    )
    # objective
    loss: str = _opt("cosine", f"one of {', '.join(OBJECTIVES)}")
    margin: float = _opt(0.5, "margin of the contrastive and triplet losses (in units of the distance)")
    distance: str = _opt(
        "cosine", f"distance of the contrastive/triplet/in-batch losses: {', '.join(DISTANCES)}"
    )
    scale: float = _opt(20.0, "inverse temperature of CoSENT and in-batch negatives")
    additive_margin: float = _opt(
        0.0,
        "in-batch negatives: subtract this from each positive's similarity (AM-softmax, Yang et al. 2019)",
    )
    symmetric: bool = _opt(False, "in-batch negatives in both directions")
    num_labels: int = _opt(2, "classes of the softmax head")
    use_product: bool = _opt(False, "softmax head also sees u * v")
    tasks: list[dict] | None = _opt(None, "more training tasks, each {name, loss, train_data, ...}: one run")
    task_sampling: str = _opt("round_robin", "how steps are shared among tasks: round_robin or proportional")
    untied: bool = _opt(False, "two towers with separate weights (pseudo-Siamese); column 0 uses tower a")
    model_b: str | None = _opt(None, "starting model of tower b when untied (default: same as model)")
    # optimisation
    epochs: int = _opt(1, "passes over the training data")
    max_steps: int | None = _opt(None, "train exactly this many optimizer steps (overrides epochs)")
    batch_size: int = _opt(16, "pairs per step over all processes (the same on 1 or N processes)")
    gradient_accumulation_steps: int = _opt(1, "micro-batches per optimizer step")
    learning_rate: float = _opt(2e-5, "peak AdamW learning rate")
    head_learning_rate: float | None = _opt(None, "learning rate of a new head (default: learning_rate)")
    head_only_steps: int = _opt(0, "train only a new head (softmax / verification) for this many first steps")
    weight_decay: float = _opt(0.01, "AdamW weight decay (not applied to biases and LayerNorm)")
    warmup_ratio: float = _opt(0.1, "fraction of steps with linear warmup; then linear decay to 0")
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0: off)")
    mixed_precision: str = _opt("no", f"one of {', '.join(MIXED_PRECISION)} (fp16 needs a GPU)")
    compile: bool = _opt(
        False,
        "torch.compile the transformer(s) for training: about 1.2x faster steps on CPU after about a "
        "minute of compiling (pays off on long runs and on GPUs); the saved model is the same either way",
    )
    pin_memory: bool = _opt(True, "page-locked batches for faster host-to-GPU copies (only used on a GPU)")
    seed: int = _opt(0, "seed for shuffling, dropout and initialisation")
    cpu: bool = _opt(False, "train on the CPU even when a GPU is present")
    # evaluation and output
    eval_name: str | None = _opt(
        None, "metric key prefix, e.g. qqp -> qqp-test_ap_cosine (default sts/pairs)"
    )
    eval_task: str | None = _opt(
        None, "sts (scored pairs) or pairs (0/1 labels); default: what the loss trains"
    )
    eval_steps: int = _opt(100, "evaluate on dev every N optimizer steps (0: only at the end)")
    eval_batch_size: int = _opt(64, "texts per forward pass when evaluating")
    keep_best: bool = _opt(True, "keep the weights with the best dev metric, not the last ones")
    mining_eval: bool = _opt(
        True,
        "labelled test pairs: also report duplicate mining (AP/F1 over all their texts) before and after",
    )
    plots: bool = _opt(
        True, "write PNG plots (training curve; score histograms, PR curve) to output_dir/plots"
    )
    output_dir: str = _opt("runs/model", "where the trained model, metrics.json and recipe.yaml go")
    overwrite: bool = _opt(
        False,
        "replace a non-empty output_dir (the old content is removed only once the new model is complete)",
    )
    checkpoint_steps: int = _opt(
        500,
        "write a checkpoint (model, optimizer, schedule, data order and RNG state) to "
        "output_dir/checkpoints every N optimizer steps (0: none)",
    )
    checkpoint_limit: int = _opt(2, "keep this many newest checkpoints (older ones are deleted)")
    keep_checkpoints: bool = _opt(False, "keep output_dir/checkpoints after a run that completed")
    resume: bool = _opt(False, "continue from the newest complete checkpoint in output_dir/checkpoints")
    # robustness and safety
    on_bad_rows: str = _opt(
        "error",
        "a malformed data row: error (stop with file:line) or skip (count it by reason in the log and "
        "metrics.json)",
    )
    allow_pickle: bool = _opt(
        False, "load pickle weights (.bin/.pt) when a model has no safetensors (runs code from the file)"
    )

    def __post_init__(self):
        # YAML gives lists, defaults are tuples: one type, so a saved recipe loads back equal.
        self.split_fractions = [float(x) for x in self.split_fractions]
        self.validate()

    def validate(self) -> None:
        def choice(name, valid):
            value = getattr(self, name)
            if value not in valid:
                raise ConfigError(
                    f"{name}={value!r} is not valid; choose one of {', '.join(map(str, valid))}"
                )

        for name in (
            "learning_rate",
            "weight_decay",
            "max_grad_norm",
            "warmup_ratio",
            "score_min",
            "score_max",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
        choice("data_format", DATA_FORMATS)
        choice("loss", tuple(OBJECTIVES))
        choice("distance", DISTANCES)
        choice("derive", DERIVATIONS)
        choice("split", SPLITS)
        choice("sampler", SAMPLERS)
        choice("task_sampling", ("round_robin", "proportional"))
        choice("on_bad_rows", ON_BAD_ROWS)
        if self.eval_task is not None:
            choice("eval_task", ("sts", "pairs"))
        for name in ("margin", "scale", "additive_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if self.split == "question":
            fr = list(self.split_fractions)
            if (
                len(fr) != 3
                or any(not isinstance(x, int | float) or x < 0 for x in fr)
                or abs(sum(fr) - 1) > 1e-6
            ):
                raise ConfigError(
                    f"split_fractions must be three shares (train, dev, test) summing to 1, got {fr}"
                )
        if isinstance(self.train_data, list) and not self.train_data:
            raise ConfigError("train_data is an empty list")
        choice("mixed_precision", MIXED_PRECISION)
        if self.pooling is not None:
            choice("pooling", POOLING_MODES)
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "eval_batch_size", "num_labels",
                     "samples_per_group"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("head_only_steps", "checkpoint_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        value = self.checkpoint_limit
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"checkpoint_limit must be an integer >= 1, got {value!r}")
        bad_int = isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
        if self.max_steps is not None and (bad_int or self.max_steps < 1):
            raise ConfigError(f"max_steps must be an integer >= 1 or null, got {self.max_steps!r}")
        if isinstance(self.eval_steps, bool) or not isinstance(self.eval_steps, int) or self.eval_steps < 0:
            raise ConfigError(f"eval_steps must be an integer >= 0, got {self.eval_steps!r}")
        if not 0.0 <= float(self.warmup_ratio) < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("learning_rate", "weight_decay", "max_grad_norm"):
            if float(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        hlr = self.head_learning_rate
        if hlr is not None and (isinstance(hlr, bool) or not isinstance(hlr, int | float) or hlr < 0):
            raise ConfigError(f"head_learning_rate must be a number >= 0 or null, got {hlr!r}")
        if not float(self.score_max) > float(self.score_min):
            raise ConfigError(
                f"score_max ({self.score_max}) must be greater than score_min ({self.score_min})"
            )

    def to_dict(self) -> dict:
        values = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


FIELDS = {f.name: f for f in fields(TrainConfig)}


def describe_fields() -> str:
    """One line per recipe key with its default and help, for ``--help`` and the README."""
    lines = []
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else "required"
        lines.append(f"  {f.name} (default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)


def parse_overrides(pairs: list[str]) -> dict:
    """``["epochs=2", "dev_data=null"]`` -> ``{"epochs": 2, "dev_data": None}`` (values read as YAML)."""
    result = {}
    for item in pairs:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        result[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return result


def make_config(values: dict, source: str = "recipe") -> TrainConfig:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; valid keys: {', '.join(FIELDS)}")
    # YAML reads 2e-5 as a string: convert numbers for float fields.
    for key, value in list(values.items()):
        if (
            FIELDS[key].type in ("float", "float | None")
            and isinstance(value, str | int)
            and value is not True
        ):
            try:
                values[key] = float(value)
            except ValueError:
                raise ConfigError(f"{source}: {key} must be a number, got {value!r}") from None
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_recipe(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML recipe, apply overrides, validate. Errors name the file (and line for YAML syntax)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of recipe keys, found {type(values).__name__}")
    values.update(overrides or {})
    return make_config(values, str(path))
