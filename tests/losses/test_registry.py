"""The registry mechanism: the 11 objectives in their order with their table entries; each objective's loss
is exactly (the same floats) its family function with the recipe's parameters; ``params_from`` reads
top-level keys and ``loss_params``; ``make_head``; ``register``; a toy objective with a parameter of its own,
registered by a test, validates and trains with nothing edited in config.py or the trainer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import pytest
import torch

from sbert_siamese.config import TrainConfig, describe_fields
from sbert_siamese.data.examples import Example
from sbert_siamese.errors import ConfigError
from sbert_siamese.losses import (
    OBJECTIVES,
    TARGETS,
    InBatchParams,
    Objective,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
    contrastive_loss,
    cosent_loss,
    cosine_similarity_loss,
    get_objective,
    in_batch_negatives_loss,
    invalid,
    make_head,
    online_contrastive_loss,
    param,
    register,
    softmax_loss,
    triplet_loss,
    verification_loss,
)
from sbert_siamese.models.heads import SoftmaxHead, WeightedL1Head

from .helpers import rand

# name: (texts, target, batch_wide, head, parameters), as the table in objectives.py had them
TABLE = {
    "cosine": ((2,), "score", False, None, ("scale",)),
    "cosent": ((2,), "score", True, None, ("scale",)),
    "contrastive": ((2,), "binary", False, None, ("margin", "distance")),
    "online_contrastive": ((2,), "binary", True, None, ("margin", "distance")),
    "softmax": ((2,), "class", False, "softmax", ("num_labels", "use_product")),
    "verification": ((2,), "binary", False, "weighted_l1", ()),
    "triplet": ((3,), "none", False, None, ("margin", "distance")),
    "in_batch_negatives": ((2, 3), "none", True, None, ("scale", "distance", "symmetric", "additive_margin")),
    "batch_hard_triplet": ((1,), "group", True, None, ("margin", "distance")),
    "batch_semi_hard_triplet": ((1,), "group", True, None, ("margin", "distance")),
    "batch_all_triplet": ((1,), "group", True, None, ("margin", "distance")),
}


def test_the_eleven_objectives_in_their_order():
    assert list(OBJECTIVES) == list(TABLE)


@pytest.mark.parametrize("name", list(TABLE))
def test_table_entry_and_the_parameters_each_family_holds(name):
    objective = get_objective(name)
    texts, target, batch_wide, head, params = TABLE[name]
    assert (objective.name, objective.texts, objective.target) == (name, texts, target)
    assert (objective.batch_wide, objective.head) == (batch_wide, head)
    assert objective.target in TARGETS and objective.description
    assert objective.evaluation == ("sts" if target == "score" else "pairs")
    assert tuple(f.name for f in fields(objective.params)) == params
    assert dataclasses.is_dataclass(objective.params) and objective.params.__dataclass_params__.frozen
    defaults = TrainConfig()
    for f in fields(objective.params):
        assert f.metadata.get("help"), (name, f.name)
        assert f.default == getattr(defaults, f.name)  # the family's default is the recipe's


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown loss 'mse'; valid: cosine, cosent, contrastive"):
        get_objective("mse")


# ------------------------------------------------------------------------------- the same floats as before
CONFIG = dict(margin=0.7, distance="euclidean", scale=7.0, symmetric=True, num_labels=3, use_product=True,
              additive_margin=0.2)  # fmt: skip


def direct(name: str, e: torch.Tensor, t: torch.Tensor, head, c: dict) -> torch.Tensor:
    """The loss as objectives.py computed it before the split, written out per objective."""
    u, v = e[:, 0], e[:, 1] if e.shape[1] > 1 else None
    mined = {"batch_hard_triplet": batch_hard_triplet_loss, "batch_all_triplet": batch_all_triplet_loss,
             "batch_semi_hard_triplet": batch_semi_hard_triplet_loss}  # fmt: skip
    if name in mined:
        return mined[name](u, t.long(), c["margin"], c["distance"])
    return {
        "cosine": lambda: cosine_similarity_loss(u, v, t),
        "cosent": lambda: cosent_loss(u, v, t, c["scale"]),
        "contrastive": lambda: contrastive_loss(u, v, t, c["margin"], c["distance"]),
        "online_contrastive": lambda: online_contrastive_loss(u, v, t, c["margin"], c["distance"]),
        "softmax": lambda: softmax_loss(head(u, v), t),
        "verification": lambda: verification_loss(head(u, v), t),
        "triplet": lambda: triplet_loss(u, v, e[:, 2], c["margin"], c["distance"]),
        "in_batch_negatives": lambda: in_batch_negatives_loss(
            u,
            v,
            e[:, 2] if e.shape[1] > 2 else None,
            c["scale"],
            c["distance"],
            c["symmetric"],
            t.long(),
            c["additive_margin"],
        ),  # fmt: skip
    }[name]()


def targets_for(target: str, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return {
        "score": torch.rand(batch, generator=g),
        "binary": torch.tensor([1, 0] * (batch // 2)),
        "class": torch.tensor([0, 1, 2, 0, 1, 2][:batch]),
        "group": torch.tensor([0, 0, 1, 1, 2, 2][:batch]),
        "none": torch.tensor([11, 12, 11, 14, 15, 16][:batch]),  # text ids: positives 0 and 2 are one text
    }[target]


@pytest.mark.parametrize("name, k", [(name, k) for name, entry in TABLE.items() for k in entry[0]])
def test_objective_loss_is_its_family_function_with_the_recipe_parameters(name, k):
    objective = get_objective(name)
    config = TrainConfig(loss=name, distance="dot" if name == "in_batch_negatives" else "euclidean",
                         **{key: value for key, value in CONFIG.items() if key != "distance"})  # fmt: skip
    values = {**CONFIG, "distance": config.distance}
    params = objective.params_from(config)
    assert {f.name: getattr(params, f.name) for f in fields(params)} == {
        f.name: values[f.name] for f in fields(params)
    }
    torch.manual_seed(0)
    head = make_head(objective, 4, params)
    embeddings = rand(6, k, 4, seed=1, dtype=torch.float32)
    targets = targets_for(objective.target, 6)
    got = objective.loss(embeddings, targets, head, params)
    assert torch.isfinite(got)
    assert torch.equal(got, direct(name, embeddings, targets, head, values))


def test_in_batch_float_targets_carry_no_text_ids():
    # scores or an empty target are not ids: nothing is masked (as before the split)
    objective = get_objective("in_batch_negatives")
    params = InBatchParams()
    e = rand(4, 2, 3, seed=2, dtype=torch.float32)
    plain = in_batch_negatives_loss(e[:, 0], e[:, 1])
    assert torch.equal(objective.loss(e, torch.zeros(4), None, params), plain)
    assert torch.equal(objective.loss(e, torch.zeros(0, dtype=torch.long), None, params), plain)


def test_make_head_builds_the_objectives_head_from_its_parameters():
    softmax = get_objective("softmax")
    head = make_head(
        softmax, 8, softmax.params_from(TrainConfig(loss="softmax", num_labels=3, use_product=True))
    )
    assert isinstance(head, SoftmaxHead) and head.config() == {
        "type": "softmax", "dimension": 8, "num_labels": 3, "use_product": True
    }  # fmt: skip
    verification = get_objective("verification")
    head = make_head(verification, 8, verification.params_from(TrainConfig(loss="verification")))
    assert isinstance(head, WeightedL1Head) and head.dimension == 8
    for name in TABLE:
        if TABLE[name][3] is None:
            objective = get_objective(name)
            assert make_head(objective, 8, objective.params_from(TrainConfig(loss=name))) is None


# ------------------------------------------------------------------------------- params_from and loss_params
def test_loss_params_may_not_hold_an_unknown_or_a_top_level_parameter():
    with pytest.raises(ConfigError) as info:
        TrainConfig(loss="contrastive", loss_params={"temperature": 0.1})
    assert str(info.value) == "loss_params.temperature is not a parameter of loss contrastive; valid: none"
    assert info.value.key == "loss_params.temperature"
    with pytest.raises(ConfigError, match=r"loss_params\.margin: margin is a recipe key of its own"):
        TrainConfig(loss="contrastive", loss_params={"margin": 0.1})
    with pytest.raises(ConfigError, match="loss_params must be a mapping"):
        TrainConfig(loss="contrastive", loss_params=[0.1])


def test_objective_checks_target_and_head():
    with pytest.raises(ValueError, match="target"):
        Objective("x", (2,), "scores", False, None, lambda *a: None, "x")
    with pytest.raises(ValueError, match="head and new_head"):
        Objective("x", (2,), "score", False, "softmax", lambda *a: None, "x")


# ------------------------------------------------------------------------------- a new objective, in a test
@dataclass(frozen=True)
class ToyParams:
    temperature: float = param(0.05, "softmax temperature of the toy loss")

    def __post_init__(self):
        if not self.temperature > 0:
            raise invalid("temperature", f"temperature must be > 0, got {self.temperature}")


seen: list = []


def _toy_loss(embeddings, targets, head, params: ToyParams) -> torch.Tensor:
    seen.append(params)
    return in_batch_negatives_loss(embeddings[:, 0], embeddings[:, 1], scale=1.0 / params.temperature)


@pytest.fixture
def toy():
    objective = register(
        Objective("toy", (2,), "none", True, None, _toy_loss, "in-batch negatives with a temperature",
                  params=ToyParams),
        before="cosent",
    )  # fmt: skip
    seen.clear()
    yield objective
    del OBJECTIVES["toy"]


def test_register_places_and_refuses_duplicates(toy):
    assert list(OBJECTIVES)[:3] == ["cosine", "toy", "cosent"]
    with pytest.raises(ValueError, match="already registered"):
        register(toy)
    assert "  loss_params (default None)" in describe_fields()
    assert "    toy: temperature (default 0.05): softmax temperature of the toy loss" in describe_fields()


def test_the_toy_registry_entry_is_gone_after_its_test():
    assert "toy" not in OBJECTIVES and list(OBJECTIVES) == list(TABLE)
    with pytest.raises(ConfigError, match="loss='toy' is not valid"):
        TrainConfig(loss="toy")


def test_toy_parameter_comes_from_loss_params(toy):
    assert toy.params_from(TrainConfig(loss="toy")) == ToyParams(0.05)
    # YAML 1.1 reads 1e-2 as a string: converted like the recipe's own float keys
    assert toy.params_from(TrainConfig(loss="toy", loss_params={"temperature": "1e-2"})) == ToyParams(0.01)
    for value, message in [
        (-1, "loss_params.temperature must be > 0, got -1"),
        ("warm", "loss_params.temperature must be a number, got 'warm'"),
        (True, "loss_params.temperature must be a number, got True"),
    ]:
        with pytest.raises(ConfigError) as info:
            TrainConfig(loss="toy", loss_params={"temperature": value})
        assert str(info.value) == message and info.value.key == "loss_params.temperature"
    with pytest.raises(
        ConfigError, match=r"loss_params\.tau is not a parameter of loss toy; valid: temperature"
    ):
        TrainConfig(loss="toy", loss_params={"tau": 1})
    # a task sets its own loss_params (and does not inherit the main loss's)
    spec = {"loss": "toy", "train_data": "x.tsv", "loss_params": {"temperature": 0}}
    with pytest.raises(ConfigError, match=r"^tasks\[1\]: loss_params.temperature must be > 0, got 0$"):
        TrainConfig(loss="contrastive", tasks=[spec])
    TrainConfig(
        loss="toy", loss_params={"temperature": 0.5}, tasks=[{"loss": "contrastive", "train_data": "x"}]
    )


def test_toy_objective_trains_through_params_from(toy, tiny_bert_dir, tmp_path):
    from sbert_siamese.training import train

    pairs = [Example((f"question {i} about cooking", f"how to cook dish {i}"), None) for i in range(8)]
    config = TrainConfig(
        model=str(tiny_bert_dir), loss="toy", loss_params={"temperature": 0.1}, batch_size=4, max_steps=3,
        learning_rate=1e-3, warmup_ratio=0.0, eval_steps=0, dev_data=None, test_data=None,
        output_dir=str(tmp_path / "out"),
    )  # fmt: skip
    result = train(config, datasets={"train": pairs, "dev": None, "test": None}, save=False)
    assert len(result.losses) == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    assert seen and all(p == ToyParams(0.1) for p in seen)
