"""TrainConfig: one flat, validated dataclass; recipes are YAML files of its fields.

``load_recipe`` reads a YAML recipe, applies ``key=value`` overrides and validates the result. Every
configuration error is raised here, before any data is read or model loaded: a value of the wrong type or
range, a loss's own checks (``Objective.params_from``: a negative margin, contrastive with the dot
distance...), options that do not fit the loss (untied towers, the groups sampler) and each entry of
``tasks``. A ``ConfigError`` names the key and, for a recipe file, the file and line:
``recipes/x.yaml:12: margin must be >= 0, got -1`` (an override is named instead of a line).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .data.readers import DATA_FORMATS
from .distances import DISTANCES
from .errors import ConfigError
from .losses import OBJECTIVES, Objective, get_objective, invalid
from .models.pooling import POOLING_MODES

MIXED_PRECISION = ("no", "bf16", "fp16")
DERIVATIONS = ("none", "positives", "groups")
SPLITS = ("none", "question")
SAMPLERS = ("random", "length_grouped", "no_duplicates", "groups")
ON_BAD_ROWS = ("error", "skip")

# Keys a data source written as a mapping may set, on top of ``path`` (and ``name`` for test sets).
SOURCE_KEYS = (
    "data_format", "text_a_column", "text_b_column", "score_column", "score_min", "score_max", "label_column",
    "label_names", "text_columns", "key_columns",
)  # fmt: skip
# Keys an entry of ``tasks`` may set: its data, objective and batching; model, optimiser and evaluation stay
# the recipe's. A new loss's own parameters go in ``loss_params``, so this list does not grow with losses.
TASK_KEYS = SOURCE_KEYS + (
    "name", "train_data", "extra_train_data", "derive", "hard_negatives", "labelled_negatives", "loss",
    "margin", "distance", "scale", "symmetric", "additive_margin", "loss_params", "sampler",
    "samples_per_group", "batch_size",
)  # fmt: skip


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
    loss_params: dict | None = _opt(
        None, "{name: value} for the loss's parameters that have no recipe key of their own (listed by loss)"
    )
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
        if self.loss_params == {}:  # no parameters, written either way: one value, so resume sees no change
            self.loss_params = None
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError (with the key it is about, see ``invalid``) for anything that cannot work: the
        values, the loss's own checks, the options that depend on the loss, and ``tasks``."""
        _check_values(self)
        objective = get_objective(self.loss)
        objective.params_from(self)  # the loss family's checks: margin >= 0, contrastive + dot, ...
        if self.untied and objective.texts == (1,):
            raise invalid(
                "untied", f"untied towers need examples with two or more texts; loss {self.loss} has one"
            )
        _check_batching(self, objective)
        for index, spec in enumerate(self.tasks or [], start=1):
            _check_task(self, spec, index)

    def to_dict(self) -> dict:
        values = asdict(self)
        if values["loss_params"] is None:  # unset: recipe.yaml stays as versions before loss_params wrote it
            del values["loss_params"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


FIELDS = {f.name: f for f in fields(TrainConfig)}

# ------------------------------------------------------------------------------------------- the checks
_NUMBERS = ("learning_rate", "weight_decay", "max_grad_norm", "warmup_ratio", "score_min", "score_max",
            "margin", "scale", "additive_margin")  # fmt: skip
# OBJECTIVES itself, not a copy: an objective registered later (a plugin, a test) is a valid loss too.
_CHOICES = {"data_format": DATA_FORMATS, "loss": OBJECTIVES, "distance": DISTANCES, "derive": DERIVATIONS,
            "split": SPLITS, "sampler": SAMPLERS, "task_sampling": ("round_robin", "proportional"),
            "on_bad_rows": ON_BAD_ROWS, "mixed_precision": MIXED_PRECISION, "eval_task": ("sts", "pairs"),
            "pooling": POOLING_MODES}  # fmt: skip
_OPTIONAL = ("eval_task", "pooling")  # null means "the default"
_AT_LEAST = {"epochs": 1, "batch_size": 1, "gradient_accumulation_steps": 1, "eval_batch_size": 1,
             "num_labels": 1, "samples_per_group": 1, "head_only_steps": 0, "checkpoint_steps": 0,
             "checkpoint_limit": 1, "eval_steps": 0}  # fmt: skip


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_values(c: TrainConfig) -> None:
    """Each key on its own: type, choice, range."""
    for name in _NUMBERS:
        if not _is_number(getattr(c, name)):
            raise invalid(name, f"{name} must be a number, got {getattr(c, name)!r}")
    for name in ("margin", "scale", "additive_margin"):  # never valid below 0, whichever loss reads them
        if getattr(c, name) < 0:
            raise invalid(name, f"{name} must be >= 0, got {getattr(c, name)!r}")
    for name, valid in _CHOICES.items():
        value = getattr(c, name)
        # tuple(valid): a list or mapping given as a value is not valid, rather than unhashable
        if value not in tuple(valid) and not (value is None and name in _OPTIONAL):
            raise invalid(name, f"{name}={value!r} is not valid; choose one of {', '.join(map(str, valid))}")
    for name, low in _AT_LEAST.items():
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise invalid(name, f"{name} must be an integer >= {low}, got {value!r}")
    if c.split == "question":
        fr = list(c.split_fractions)
        if len(fr) != 3 or any(not _is_number(x) or x < 0 for x in fr) or abs(sum(fr) - 1) > 1e-6:
            raise invalid(
                "split_fractions",
                f"split_fractions must be three shares (train, dev, test) summing to 1, got {fr}",
            )
    if c.max_steps is not None and (
        isinstance(c.max_steps, bool) or not isinstance(c.max_steps, int) or c.max_steps < 1
    ):
        raise invalid("max_steps", f"max_steps must be an integer >= 1 or null, got {c.max_steps!r}")
    if not 0.0 <= float(c.warmup_ratio) < 1.0:
        raise invalid("warmup_ratio", f"warmup_ratio must be in [0, 1), got {c.warmup_ratio}")
    for name in ("learning_rate", "weight_decay", "max_grad_norm"):
        if float(getattr(c, name)) < 0:
            raise invalid(name, f"{name} must be >= 0, got {getattr(c, name)}")
    hlr = c.head_learning_rate
    if hlr is not None and (not _is_number(hlr) or hlr < 0):
        raise invalid("head_learning_rate", f"head_learning_rate must be a number >= 0 or null, got {hlr!r}")
    if not float(c.score_max) > float(c.score_min):
        raise invalid(
            "score_max", f"score_max ({c.score_max}) must be greater than score_min ({c.score_min})"
        )
    if c.loss_params is not None and not isinstance(c.loss_params, dict):
        raise invalid(
            "loss_params",
            f"loss_params must be a mapping of parameter names to values, got {c.loss_params!r}",
        )
    if isinstance(c.train_data, list) and not c.train_data:
        raise invalid("train_data", "train_data is an empty list")
    if c.tasks and not isinstance(c.tasks, list):  # null, [] and {} all mean: no extra tasks
        raise invalid("tasks", f"tasks must be a list of {{loss, train_data, ...}} entries, got {c.tasks!r}")


def _check_batching(c: TrainConfig, objective: Objective) -> None:
    """``sampler: groups`` makes P x K batches of the examples' group ids (their targets): the loss needs
    targets, and the batch P >= 2 groups of K >= 2 (checked again by ``GroupBatchSampler``)."""
    if c.sampler != "groups":
        return
    if objective.target == "none":
        raise invalid(
            "sampler",
            f"sampler: groups batches examples by their target; loss {c.loss} has none (its columns say what "
            f"is positive): use one of {', '.join(s for s in SAMPLERS if s != 'groups')}",
        )
    k, size = c.samples_per_group, c.batch_size
    if k < 2:
        raise invalid(
            "samples_per_group", f"samples_per_group must be >= 2 (a group needs a positive), got {k}"
        )
    if size % k:
        raise invalid("batch_size", f"batch_size {size} must be a multiple of samples_per_group {k}")
    if size // k < 2:
        raise invalid(
            "batch_size",
            f"batch_size {size} holds only {size // k} group of {k}; a batch needs >= 2 groups for "
            f"negatives: use batch_size >= {2 * k}",
        )


def task_config(config: TrainConfig, spec: dict) -> TrainConfig:
    """The TrainConfig of one entry of ``tasks`` (validated by ``config`` already). A task inherits the
    recipe's column names, formats and batching unless it sets them, but not the main task's data shaping
    (``extra_train_data``, ``derive``), evaluation data or ``loss_params``. Towers are the model's, which the
    main task decides: a task's examples may have one text with untied towers (tower a embeds them)."""
    values = {"extra_train_data": None, "derive": "none", "loss_params": None}
    values.update({k: v for k, v in spec.items() if k != "name"})
    return dataclasses.replace(
        config, **_as_floats(values), split="none", dev_data=None, test_data=None, extra_test_data=None,
        tasks=None, untied=False,
    )  # fmt: skip


def _check_task(config: TrainConfig, spec, index: int) -> None:
    where = f"tasks[{index}]"
    if not isinstance(spec, dict) or "train_data" not in spec or "loss" not in spec:
        raise invalid(where, f"{where} needs at least 'loss' and 'train_data': {spec}")
    unknown = [k for k in spec if k not in TASK_KEYS]
    if unknown:
        raise invalid(
            f"{where}.{unknown[0]}",
            f"{where}: unknown key(s) {sorted(unknown)}; valid: {', '.join(TASK_KEYS)}",
        )
    if spec["loss"] in tuple(OBJECTIVES) and get_objective(spec["loss"]).head is not None:
        raise invalid(f"{where}.loss", f"{where}: loss {spec['loss']} trains a head; only the main task may")
    for key in ("hard_negatives", "labelled_negatives"):
        if spec.get(key):
            raise invalid(f"{where}.{key}", f"{where}: {key} applies to the main task only")
    try:
        task_config(config, spec)
    except ConfigError as exc:
        key = getattr(exc, "key", None)
        top = _top(key) if key else None
        if top in spec:
            raise invalid(f"{where}.{key}", f"{where}: {exc}") from None
        # A value the task inherits from the recipe, valid there but not for the task's loss.
        inherits = f" inherits {top} from the recipe" if top else ""
        raise invalid(where, f"{where} (loss {spec['loss']}){inherits}: {exc}") from None


# ------------------------------------------------------------------------------------------- recipes
def describe_fields() -> str:
    """One line per recipe key with its default and help, for ``--help`` and the README; under
    ``loss_params``, each loss's parameters that have no key of their own."""
    lines = []
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else "required"
        lines.append(f"  {f.name} (default {default!r}): {f.metadata.get('help', '')}")
        if f.name == "loss_params":
            for objective in OBJECTIVES.values():
                for p in fields(objective.params):
                    if p.name not in FIELDS:
                        help = p.metadata.get("help", "")
                        lines.append(f"    {objective.name}: {p.name} (default {p.default!r}): {help}")
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


def make_config(
    values: dict, source: str = "recipe", lines: dict[str, int] | None = None, overridden=()
) -> TrainConfig:
    """A validated TrainConfig from recipe values. An error reads ``source:line: problem`` where ``lines``
    (key -> line, see ``_key_lines``) knows the key, ``source (override key): problem`` for a key in
    ``overridden``, else ``source: problem``."""
    try:
        unknown = [k for k in values if k not in FIELDS]
        if unknown:
            listed = sorted(unknown, key=str)
            raise invalid(str(unknown[0]), f"unknown key(s) {listed}; valid keys: {', '.join(FIELDS)}")
        return TrainConfig(**_as_floats(values))
    except ConfigError as exc:
        raise _located(exc, source, lines or {}, overridden) from None


def _as_floats(values: dict) -> dict:
    """YAML 1.1 reads 2e-5 as a string: numbers for the float fields (in place)."""
    for key, value in list(values.items()):
        float_field = key in FIELDS and FIELDS[key].type in ("float", "float | None")
        if float_field and isinstance(value, str | int) and value is not True:
            try:
                values[key] = float(value)
            except ValueError:
                raise invalid(key, f"{key} must be a number, got {value!r}") from None
    return values


def _top(key: str) -> str:
    """The recipe key a key path starts with: tasks[1].margin -> tasks."""
    return re.match(r"[^.\[]*", key).group()


def _located(exc: ConfigError, source: str, lines: dict[str, int], overridden) -> ConfigError:
    key = getattr(exc, "key", None)
    if key and _top(key) in overridden:
        where = f"{source} (override {_top(key)})"
    else:
        while key and key not in lines:  # tasks[1].margin -> tasks[1] -> tasks -> ""
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key)
            key = parent if parent != key else ""
        where = f"{source}:{lines[key]}" if key else source
    return invalid(getattr(exc, "key", None), f"{where}: {exc}")


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    """Key path -> 1-based line in the recipe file, from YAML nodes: ``margin``, ``loss_params.temperature``,
    ``tasks[1]`` (the entry), ``tasks[1].margin``; list entries count from 1, as messages do."""
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[name] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value, start=1):
            lines[f"{prefix}[{index}]"] = item.start_mark.line + 1
            lines.update(_key_lines(item, f"{prefix}[{index}]"))
    return lines


def load_recipe(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML recipe, apply overrides, validate. Errors name the file and the line of the key (or the
    override) they are about."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    text = path.read_text(encoding="utf-8")
    try:
        values = yaml.safe_load(text) or {}
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of recipe keys, found {type(values).__name__}")
    overrides = dict(overrides or {})
    values.update(overrides)
    return make_config(values, str(path), _key_lines(node), set(overrides))
