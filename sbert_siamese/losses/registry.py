"""The objective registry: the mechanism only. Each family module (``regression``, ``contrastive``,
``triplet``, ``in_batch``, ``softmax``, ``verification``) defines its losses, their parameters and their
checks, and ``register``s its objectives here when ``sbert_siamese.losses`` is imported.

A training batch holds ``k`` texts per example (2 for pairs, 3 for triplets, 1 for labelled texts), encoded
together into embeddings of shape (B, k, D), plus one target per example. An ``Objective`` says how many
texts it takes, what its target is, whether it needs the whole (global) batch, which trainable head it owns,
which parameters it reads from the recipe, and turns (embeddings, targets, head, parameters) into a scalar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from ..errors import ConfigError

# What the target of an example is.
TARGETS = {
    "score": "a similarity score, scaled to [0, 1]",
    "binary": "1 = same / duplicate, 0 = different",
    "class": "a class index (e.g. NLI: 0 entailment, 1 neutral, 2 contradiction)",
    "group": "a group (class) id: texts with the same id are positives of each other",
    "none": "no target: the columns themselves say what is positive (anchor, positive[, negative])",
}

# What a value read from ``loss_params`` must be, by the annotation of its parameter.
_KINDS = {
    "float": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
}


def param(default: Any, help: str) -> Any:
    """A field of an objective's parameters: its default and a one-line help (shown by ``--help``)."""
    return field(default=default, metadata={"help": help})


def invalid(key: str, message: str) -> ConfigError:
    """A ``ConfigError`` about one recipe key. ``key`` ("margin", "loss_params.temperature",
    "tasks[1].margin") lets ``load_recipe`` put the recipe file and line in front of the message."""
    error = ConfigError(message)
    error.key = key
    return error


def non_negative(key: str, value: float) -> None:
    """The check most parameters share: margins and inverse temperatures below 0 invert the loss."""
    if value < 0:
        raise invalid(key, f"{key} must be >= 0, got {value}")


@dataclass(frozen=True)
class NoParams:
    """The parameters of an objective that has none."""


@dataclass(frozen=True)
class Objective:
    name: str
    texts: tuple[int, ...]  # allowed numbers of texts per example
    target: str  # a key of TARGETS
    batch_wide: bool  # the loss of one example depends on the others: gather the global batch
    head: str | None  # the kind of trainable head it owns ("softmax", "weighted_l1") or None
    # (embeddings (B, k, D), targets (B,), head or None, parameters) -> scalar loss
    loss: Callable[[torch.Tensor, torch.Tensor, torch.nn.Module | None, Any], torch.Tensor]
    description: str
    # A frozen dataclass of its hyper-parameters (``param`` fields); its __post_init__ raises
    # ``invalid(name, "<name> must ...")`` for a bad value, the message starting with the parameter's name.
    params: type = NoParams
    # (embedding dimension, parameters) -> a new head; set exactly when ``head`` is
    new_head: Callable[[int, Any], torch.nn.Module] | None = None

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"objective {self.name}: target {self.target!r} is not a key of TARGETS")
        if (self.head is None) != (self.new_head is None):
            raise ValueError(f"objective {self.name}: head and new_head go together")

    @property
    def evaluation(self) -> str:
        """Which evaluator suits data with this objective's targets: 'sts' or 'pairs'."""
        return "sts" if self.target == "score" else "pairs"

    def params_from(self, config: Any) -> Any:
        """This objective's parameters from a ``TrainConfig`` (or a ``dataclasses.replace`` of it): each
        from the recipe key of the same name where there is one (``margin``, ``distance``...), else from
        ``config.loss_params``, else its default. Builds ``self.params``, which runs the family's checks.

        Raises ConfigError naming the key: ``margin``, or ``loss_params.<name>`` for a value, an unknown
        name or a name that has a recipe key of its own."""
        top = {f.name for f in fields(config)}
        own = {f.name: f for f in fields(self.params)}
        extra = dict(getattr(config, "loss_params", None) or {})
        settable = [name for name in own if name not in top]
        for key in extra:
            if key in own and key in top:
                message = f"loss_params.{key}: {key} is a recipe key of its own; set it there"
                raise invalid(f"loss_params.{key}", message)
            if key not in own:
                raise invalid(
                    f"loss_params.{key}",
                    f"loss_params.{key} is not a parameter of loss {self.name}; "
                    f"valid: {', '.join(settable) or 'none'}",
                )
        values = {name: getattr(config, name) for name in own if name in top}
        for name, value in extra.items():
            values[name] = _typed(own[name].type, value, f"loss_params.{name}")
        try:
            return self.params(**values)
        except ConfigError as exc:
            key = getattr(exc, "key", None)
            if key in extra:  # the family names its parameter; the recipe spells it loss_params.<name>
                raise invalid(f"loss_params.{key}", f"loss_params.{exc}") from None
            raise


def _typed(kind: Any, value: Any, key: str) -> Any:
    kind = getattr(kind, "__name__", kind)  # a class, or its name (``from __future__ import annotations``)
    if kind == "float" and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    what, ok = _KINDS.get(kind, ("anything", lambda v: True))
    if not ok(value):
        raise invalid(key, f"{key} must be {what}, got {value!r}")
    return value


OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective, before: str | None = None) -> Objective:
    """Add ``objective`` to ``OBJECTIVES`` (at the end, or just before the objective named ``before`` when
    that one is registered: the order is the one recipes' help and error messages list)."""
    if objective.name in OBJECTIVES:
        raise ValueError(f"objective {objective.name!r} is already registered")
    entries = list(OBJECTIVES.items())
    at = [name for name, _ in entries].index(before) if before in OBJECTIVES else len(entries)
    entries.insert(at, (objective.name, objective))
    OBJECTIVES.clear()
    OBJECTIVES.update(entries)
    return objective


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown loss {name!r}; valid: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def make_head(objective: Objective, dimension: int, params: Any) -> torch.nn.Module | None:
    """A new head for ``objective`` (None when it trains none), sized for ``dimension``-wide embeddings."""
    return objective.new_head(dimension, params) if objective.new_head is not None else None
