"""Every objective trains end to end on the tiny BERT; the data pipeline (split, extra data, derivations)
does what recipes rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sbert_siamese import ConfigError
from sbert_siamese.config import TrainConfig
from sbert_siamese.data.examples import Example, normalise
from sbert_siamese.data.prepare import prepare_data
from sbert_siamese.losses import OBJECTIVES, get_objective
from sbert_siamese.models.siamese import SiameseModel
from sbert_siamese.training.trainer import train

QUESTIONS = [
    ("how do i learn to cook", "what is the best way to learn cooking", 1),
    ("how do i learn to cook", "how do i fix my laptop fan", 0),
    ("what is the best phone to buy", "which phone should i buy", 1),
    ("what is the best phone to buy", "how do i learn guitar", 0),
    ("how can i run faster", "what should i do to run faster", 1),
    ("how can i run faster", "is it good to eat fish every day", 0),
    ("who will win the world cup", "which team will win the world cup", 1),
    ("who will win the world cup", "what is the capital of france", 0),
]


def labelled() -> list[Example]:
    return [Example((a, b), y) for a, b, y in QUESTIONS]


def data_for(loss: str) -> list[Example]:
    target = get_objective(loss).target
    if target == "score":
        return [Example((a, b), 0.9 if y else 0.1) for a, b, y in QUESTIONS]
    if target in ("binary", "class"):
        return labelled()
    if target == "group":
        from sbert_siamese.data.examples import duplicate_groups

        return duplicate_groups(labelled())
    if loss == "triplet":
        return [
            Example((a, b, QUESTIONS[(i + 3) % 8][1]), None) for i, (a, b, y) in enumerate(QUESTIONS) if y
        ]
    return [Example((a, b), None) for a, b, y in QUESTIONS if y]


def config(tmp_path, model, **overrides) -> TrainConfig:
    values = dict(
        model=str(model),
        batch_size=8,
        learning_rate=2e-3,
        head_learning_rate=1e-2,
        warmup_ratio=0.0,
        eval_steps=0,
        output_dir=str(tmp_path / "out"),
        dev_data=None,
        test_data=None,
        margin=0.5,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.parametrize("loss", list(OBJECTIVES))
def test_every_objective_reduces_its_loss(tiny_bert_dir, tmp_path, loss):
    examples = data_for(loss)
    extra = {"sampler": "groups", "samples_per_group": 2} if get_objective(loss).target == "group" else {}
    batch_size = min(8, len(examples)) // 2 * 2
    cfg = config(tmp_path, tiny_bert_dir, loss=loss, max_steps=25, batch_size=batch_size, **extra)
    result = train(cfg, datasets={"train": examples, "dev": None, "test": None}, save=False)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < first, (loss, result.losses)


def test_head_objectives_save_the_head_and_evaluate_it(tiny_bert_dir, tmp_path):
    cfg = config(
        tmp_path,
        tiny_bert_dir,
        loss="softmax",
        num_labels=2,
        max_steps=6,
        eval_name="qqp",
        label_names=["different", "duplicate"],
    )
    data = {"train": labelled(), "dev": labelled(), "test": labelled()}
    result = train(cfg, datasets=data)
    metrics = json.loads((Path(cfg.output_dir) / "metrics.json").read_text())
    assert "qqp-test_ap_head" in metrics and "qqp-test_ap_cosine" in metrics
    assert "best/qqp-dev_ap_head" in metrics
    loaded = SiameseModel.load(cfg.output_dir)
    assert loaded.label_names == ["different", "duplicate"]
    a, b = [q[0] for q in QUESTIONS], [q[1] for q in QUESTIONS]
    before = result.model.predict(a, b)
    after = loaded.predict(a, b)
    # the evaluator scores the head from the embeddings it already has: the same as predict()
    from sbert_siamese.evaluation.pair_classification import best_threshold_metrics

    labels = [q[2] for q in QUESTIONS]
    assert metrics["qqp-test_ap_head"] == pytest.approx(
        best_threshold_metrics(before["probabilities"][:, 1], labels)["ap"], abs=1e-6
    )
    assert after["labels"] == before["labels"]
    torch.testing.assert_close(torch.tensor(after["probabilities"]), torch.tensor(before["probabilities"]))


def test_untied_towers_train_separately(tiny_bert_dir, tmp_path):
    cfg = config(
        tmp_path, tiny_bert_dir, loss="in_batch_negatives", untied=True, max_steps=4, learning_rate=5e-3
    )
    result = train(cfg, datasets={"train": data_for("in_batch_negatives"), "dev": None, "test": None})
    model = result.model
    assert model.untied
    a = dict(model.encoder.transformer.named_parameters())
    b = dict(model.tower_b.transformer.named_parameters())
    name = "encoder.layer.0.attention.self.query.weight"
    assert a[name].data_ptr() != b[name].data_ptr() and not torch.equal(a[name], b[name])
    loaded = SiameseModel.load(cfg.output_dir)
    assert loaded.untied
    texts = ["how do i learn to cook"]
    torch.testing.assert_close(
        torch.tensor(loaded.encode(texts, side="b")),
        torch.tensor(model.encode(texts, side="b")),
        atol=1e-6,
        rtol=0,
    )
    assert not torch.allclose(
        torch.tensor(loaded.encode(texts, side="a")), torch.tensor(loaded.encode(texts, side="b"))
    )


def test_untied_refuses_single_text_objectives(tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match="untied towers need examples with two or more texts"):
        train(config(tmp_path, tiny_bert_dir, loss="batch_hard_triplet", untied=True), datasets={"train": []})


def test_wrong_shape_for_the_loss_is_explained(tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match="loss triplet takes 3 text"):
        train(config(tmp_path, tiny_bert_dir, loss="triplet"), datasets={"train": labelled()}, save=False)


# ------------------------------------------------------------------------------------- data pipeline
HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"


def write_qqp(path: Path, rows) -> Path:
    path.write_text(HEADER + "".join(f"{i}\t{i}\t{i}\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(rows)))
    return path


def qqp_config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        data_format="tsv_quoted",
        data_dir=str(tmp_path),
        train_data="qqp.tsv",
        dev_data=None,
        test_data=None,
        text_a_column="question1",
        text_b_column="question2",
        label_column="is_duplicate",
        split="question",
        split_fractions=[0.5, 0.25, 0.25],
        loss="contrastive",
    )
    values.update(overrides)
    return TrainConfig(**values)


def many_questions(n=200):
    return [
        (f"question number {i} about topic {i % 7}", f"another question {i} on {i % 5}", i % 2)
        for i in range(n)
    ]


def test_question_split_keeps_every_question_in_one_split(tmp_path):
    rows = many_questions() + [("question number 0 about topic 0", "shared hub question", 1)]
    write_qqp(tmp_path / "qqp.tsv", rows)
    data = prepare_data(qqp_config(tmp_path), get_objective("contrastive"))
    seen = {}
    for name, part in (("train", data.train), ("dev", data.dev), ("test", data.test)):
        for e in part:
            for t in e.texts:
                seen.setdefault(normalise(t), set()).add(name)
    assert all(len(s) == 1 for s in seen.values())
    assert len(data.train) + len(data.dev) + len(data.test) == len(rows)
    assert data.stats["data/dev_pairs"] == len(data.dev) > 0


def test_extra_train_data_drops_pairs_that_share_a_held_out_question(tmp_path):
    rows = many_questions()
    write_qqp(tmp_path / "qqp.tsv", rows)
    data = prepare_data(qqp_config(tmp_path), get_objective("contrastive"))
    held = {normalise(t) for part in (data.dev, data.test) for e in part for t in e.texts}
    some_held = sorted(held)[0]
    write_qqp(tmp_path / "pos.tsv", [(some_held, "a brand new question", 1), ("fresh one", "fresh two", 1)])
    data = prepare_data(qqp_config(tmp_path, extra_train_data=["pos.tsv"]), get_objective("contrastive"))
    assert data.stats["data/extra_dropped_shared_question/pos.tsv"] == 1
    assert Example(("fresh one", "fresh two"), 1, f"{tmp_path / 'pos.tsv'}:3") in data.train


def test_derivations_and_their_errors(tmp_path):
    write_qqp(tmp_path / "qqp.tsv", many_questions())
    pos = prepare_data(
        qqp_config(tmp_path, loss="in_batch_negatives", derive="positives"),
        get_objective("in_batch_negatives"),
    )
    assert all(e.target is None and len(e.texts) == 2 for e in pos.train)
    assert pos.eval_target == "binary" and all(e.target in (0, 1) for e in pos.dev)
    groups = prepare_data(
        qqp_config(tmp_path, loss="batch_hard_triplet", derive="groups"), get_objective("batch_hard_triplet")
    )
    assert all(len(e.texts) == 1 for e in groups.train) and groups.stats["data/groups"] > 0
    with pytest.raises(ConfigError, match="set derive: groups"):
        prepare_data(qqp_config(tmp_path, loss="batch_hard_triplet"), get_objective("batch_hard_triplet"))
    with pytest.raises(ConfigError, match="derive: groups fits the batch_"):
        prepare_data(
            qqp_config(tmp_path, loss="in_batch_negatives", derive="groups"),
            get_objective("in_batch_negatives"),
        )
    with pytest.raises(ConfigError, match="set dev_data and test_data to null"):
        prepare_data(qqp_config(tmp_path, dev_data="x.tsv"), get_objective("contrastive"))


# ------------------------------------------------------------------------------------- several tasks


def test_two_tasks_in_one_run(tiny_bert_dir, tmp_path):
    write_qqp(tmp_path / "qqp.tsv", many_questions(80))
    write_qqp(
        tmp_path / "more.tsv", [(f"extra question {i}", f"same extra question {i}", 1) for i in range(40)]
    )
    cfg = qqp_config(
        tmp_path,
        model=str(tiny_bert_dir),
        batch_size=8,
        max_steps=6,
        eval_steps=0,
        learning_rate=1e-3,
        output_dir=str(tmp_path / "out"),
        eval_name="qqp",
        tasks=[
            {
                "name": "positives",
                "loss": "in_batch_negatives",
                "train_data": "more.tsv",
                "derive": "positives",
                "sampler": "no_duplicates",
            }
        ],
    )
    result = train(cfg)
    assert len(result.losses) == 6 and all(torch.isfinite(torch.tensor(result.losses)))
    assert "qqp-test_ap_cosine" in result.metrics


def test_task_errors(tiny_bert_dir, tmp_path):
    write_qqp(tmp_path / "qqp.tsv", many_questions(40))
    base = dict(model=str(tiny_bert_dir), output_dir=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match=r"tasks\[1\] needs at least 'loss' and 'train_data'"):
        train(qqp_config(tmp_path, **base, tasks=[{"loss": "contrastive"}]))
    with pytest.raises(ConfigError, match=r"tasks\[1\]: unknown key\(s\) \['learning_rate'\]"):
        train(
            qqp_config(
                tmp_path,
                **base,
                tasks=[{"loss": "contrastive", "train_data": "qqp.tsv", "learning_rate": 1.0}],
            )
        )
    with pytest.raises(ConfigError, match="only the main task may"):
        train(qqp_config(tmp_path, **base, tasks=[{"loss": "softmax", "train_data": "qqp.tsv"}]))


# ------------------------------------------------------------------------------------- NLI-style data
def write_senteval(folder: Path, split: str, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, column in (("s1", 0), ("s2", 1), ("labels", 2)):
        (folder / f"{name}.{split}").write_text("".join(f"{r[column]}\n" for r in rows))


def test_senteval_reader_and_its_errors(tmp_path):
    from sbert_siamese import DataError
    from sbert_siamese.data.examples import read_examples

    names = ["entailment", "neutral", "contradiction"]
    write_senteval(
        tmp_path / "nli",
        "train",
        [
            ("A man eats .", "A person eats .", "entailment"),
            ("A dog runs .", "A cat sleeps .", "contradiction"),
        ],
    )
    examples, keys = read_examples(tmp_path / "nli" / "train", "senteval", [], "class", None, None, names, 3)
    assert [(e.texts, e.target) for e in examples] == [
        (("A man eats .", "A person eats ."), 0),
        (("A dog runs .", "A cat sleeps ."), 2),
    ]
    assert examples[1].source.endswith("s1.train:2") and keys[0] == ("a man eats .", "a person eats .")
    (tmp_path / "nli" / "labels.train").write_text("entailment\nmaybe\n")
    with pytest.raises(DataError, match=r"labels\.train:2: label 'maybe' is not one of"):
        read_examples(tmp_path / "nli" / "train", "senteval", [], "class", None, None, names, 3)
    (tmp_path / "nli" / "labels.train").write_text("entailment\n")
    with pytest.raises(DataError, match=r"differ in length: \[2, 2, 1\]"):
        read_examples(tmp_path / "nli" / "train", "senteval", [], "class", None, None, names, 3)


def test_mixed_sources_extra_test_sets_and_test_overlap(tmp_path, tiny_bert_dir):
    write_senteval(
        tmp_path / "snli",
        "train",
        [
            ("A man eats .", "A person eats .", "entailment"),
            ("A dog runs .", "A cat sleeps .", "contradiction"),
            ("Kids play .", "Children are outside .", "neutral"),
        ],
    )
    (tmp_path / "sick.txt").write_text(
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
        "1\tA woman sings\tA lady is singing\t4.8\tENTAILMENT\n"
        "2\tA dog runs .\tNobody is running\t2.0\tCONTRADICTION\n"
    )
    (tmp_path / "sts.tsv").write_text(
        "sentence1\tsentence2\tscore\nA woman sings\tA man sings\t2.5\nx\ty\t0.0\n"
    )
    cfg = TrainConfig(
        model=str(tiny_bert_dir),
        data_dir=str(tmp_path),
        data_format="senteval",
        loss="softmax",
        num_labels=3,
        label_names=["entailment", "neutral", "contradiction"],
        eval_task="sts",
        train_data=[
            "snli/train",
            {
                "path": "sick.txt",
                "data_format": "tsv",
                "text_a_column": "sentence_A",
                "text_b_column": "sentence_B",
                "label_column": "entailment_judgment",
            },
        ],
        dev_data=None,
        test_data={"path": "sts.tsv", "data_format": "tsv"},
        extra_test_data=[
            {
                "name": "sick-r-test",
                "path": "sick.txt",
                "data_format": "tsv",
                "text_a_column": "sentence_A",
                "text_b_column": "sentence_B",
                "score_column": "relatedness_score",
                "score_min": 1.0,
                "score_max": 5.0,
            }
        ],
        drop_test_overlap=True,
    )
    data = prepare_data(cfg, get_objective("softmax"))
    # "A woman sings" (STS test) and the SICK pairs (an extra test set) leave training; "A dog runs ." is in
    # the SICK test pair 2, so the SNLI pair with it goes too.
    assert [e.texts[0] for e in data.train] == ["A man eats .", "Kids play ."]
    assert data.stats["data/dropped_test_overlap"] == 3
    assert data.eval_target == "score" and [e.target for e in data.extra_tests["sick-r-test"]] == [0.95, 0.25]
    with pytest.raises(ConfigError, match="needs 'path'"):
        prepare_data(
            TrainConfig(data_format="senteval", loss="softmax", train_data=[{"file": "x"}]),
            get_objective("softmax"),
        )


def test_nli_recipe_loads():
    from sbert_siamese.config import load_recipe

    from ..conftest import REPO

    cfg = load_recipe(REPO / "recipes" / "nli_softmax.yaml")
    assert cfg.loss == "softmax" and cfg.num_labels == 3 and cfg.drop_test_overlap
    assert [t["name"] for t in cfg.extra_test_data] == ["sick-r-test"]


def test_weighted_l1_head_starts_as_standardised_l1_distance():
    from sbert_siamese.models.heads import WeightedL1Head

    torch.manual_seed(0)
    u, v = torch.randn(64, 8), torch.randn(64, 8)
    head = WeightedL1Head(8)
    head.init_from(u, v)
    logits = head(u, v)
    l1 = (u - v).abs().sum(-1)
    torch.testing.assert_close(logits, (l1.mean() - l1) / l1.std(), atol=1e-5, rtol=1e-5)
    assert logits.mean().abs() < 1e-5 and (logits.std() - 1).abs() < 1e-5


def test_mine_hard_negatives_skips_known_positives_and_near_duplicates():
    import numpy as np

    from sbert_siamese.search import mine_hard_negatives

    vectors = {
        "anchor": [1.0, 0.0, 0.0],
        "positive": [0.9, 0.1, 0.0],
        "cluster mate": [0.99, 0.01, 0.0],  # closest, but a known duplicate of the anchor
        "unlabelled duplicate": [0.95, 0.05, 0.0],  # closer than 0.95 x cos(anchor, positive): skipped
        "hard negative": [0.6, 0.4, 0.0],
        "easy negative": [0.0, 0.0, 1.0],
    }

    class Fake:
        def encode(self, texts, normalize=False, **_):
            out = torch.tensor(np.array([vectors[t] for t in texts]), dtype=torch.float32)
            return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    pairs = [Example(("anchor", "positive"), None, "x:1")]
    same = {"anchor": {"anchor", "positive", "cluster mate"}}
    triplets, report = mine_hard_negatives(Fake(), pairs, list(vectors), same)
    assert triplets == [Example(("anchor", "positive", "hard negative"), None, "x:1")]
    assert report == {"mined/triplets": 1, "mined/pairs_without_negative": 0, "mined/candidates_too_close": 1}
    _, report = mine_hard_negatives(Fake(), pairs, ["anchor", "positive", "cluster mate"], same)
    assert report["mined/pairs_without_negative"] == 1


def test_hard_group_batches_take_nearest_groups_first():
    import numpy as np

    from sbert_siamese.data.samplers import GroupBatchSampler
    from sbert_siamese.search import group_neighbours

    # 8 groups of 2 texts; groups 2i and 2i+1 sit next to each other on the circle, the pairs far apart
    angles = {g: (g // 2) * 1.5 + (g % 2) * 0.05 for g in range(8)}
    examples = [Example((f"text {g}-{j}",), g) for g in range(8) for j in range(2)]

    class Fake:
        def encode(self, texts, normalize=False, **_):
            rows = [
                [
                    np.cos(angles[int(t.split()[1].split("-")[0])]),
                    np.sin(angles[int(t.split()[1].split("-")[0])]),
                ]
                for t in texts
            ]
            return torch.tensor(np.array(rows), dtype=torch.float32)

    near = group_neighbours(Fake(), examples, neighbours=3)
    assert all(near[g][0] == g ^ 1 for g in range(8))  # the nearest group is the twin
    sampler = GroupBatchSampler([e.target for e in examples], 4, 2, seed=0, neighbours=near)
    for _ in range(3):
        batches = list(sampler)
        assert len(batches) == 4
        for batch in batches:
            groups = sorted({examples[i].target for i in batch})
            assert groups[1] == groups[0] ^ 1 and len(batch) == 4  # each batch holds twin groups
        assert sorted(i for b in batches for i in b) == list(range(16))


def test_labelled_negative_rows_use_a_known_duplicate_or_the_anchor_itself():
    from sbert_siamese.data.prepare import labelled_negative_rows

    pairs = [
        Example(("how do i cook rice", "best way to cook rice"), 1),
        Example(("how do i cook rice", "how do i cook pasta"), 0),  # anchor has a duplicate
        Example(("what is python", "How do I  cook rice"), 0),  # the b side (normalised) has one: swap
        Example(("is the moon made of cheese", "how far is the moon"), 0),  # nobody has a duplicate
        Example(("best way to cook rice", "how to boil rice"), 1),
        Example(("how to boil rice", "how do i cook rice"), 0),  # contradicts the labels above: skipped
        Example(("same text", "Same  text"), 0),  # a text is not its own negative: skipped
    ]
    rows = labelled_negative_rows(pairs)
    assert [r.texts for r in rows] == [
        ("how do i cook rice", "best way to cook rice", "how do i cook pasta"),
        ("How do I  cook rice", "best way to cook rice", "what is python"),
        ("is the moon made of cheese", "is the moon made of cheese", "how far is the moon"),
    ]
    assert all(r.target is None for r in rows)


def test_labelled_negatives_come_from_the_train_split_only(tmp_path):
    write_qqp(tmp_path / "qqp.tsv", many_questions())
    plain = prepare_data(qqp_config(tmp_path), get_objective("contrastive"))
    options = dict(loss="in_batch_negatives", derive="positives", hard_negatives=True)
    data = prepare_data(
        qqp_config(tmp_path, labelled_negatives=True, **options), get_objective("in_batch_negatives")
    )
    negatives = [e for e in plain.train if e.target == 0]
    assert data.stats["data/labelled_negative_rows"] == len(negatives) == len(data.negative_rows) > 0
    assert {r.texts[2] for r in data.negative_rows} <= {t for e in negatives for t in e.texts}
    with pytest.raises(ConfigError, match="set hard_negatives: true"):
        prepare_data(
            qqp_config(tmp_path, loss="in_batch_negatives", derive="positives", labelled_negatives=True),
            get_objective("in_batch_negatives"),
        )


def test_groups_with_labelled_negatives_link_both_sides_in_one_batch():
    from sbert_siamese.data.prepare import groups_with_labelled_negatives
    from sbert_siamese.data.samplers import GroupBatchSampler

    pairs = [
        Example(("how do i cook rice", "best way to cook rice"), 1),
        Example(("how do i cook rice", "how do i cook pasta"), 0),  # cluster 0 <-> new self-group
        Example(("is the moon made of cheese", "how far is the moon"), 0),  # two self-groups
        Example(("what is python", "what is python?"), 1),
    ]
    examples, neighbours = groups_with_labelled_negatives(pairs)
    group = {e.texts[0]: e.target for e in examples}
    assert group["how do i cook rice"] == group["best way to cook rice"] == 0
    assert group["what is python"] == group["what is python?"] == 1
    pasta, cheese, far = (
        group["how do i cook pasta"],
        group["is the moon made of cheese"],
        group["how far is the moon"],
    )
    assert len({0, 1, pasta, cheese, far}) == 5
    # a self-group lists its text twice, so a K = 2 sampler can use it (dropout makes the two passes differ)
    assert [e.texts[0] for e in examples].count("how far is the moon") == 2
    assert neighbours == {0: [pasta], pasta: [0], cheese: [far], far: [cheese]}
    # P = 2 groups per batch: a batch seeded by a linked group takes its partner. Random pairs of the 5
    # groups would be a linked pair 2 times in 10; here most batches are.
    linked = together = 0
    for seed in range(20):
        for batch in GroupBatchSampler([e.target for e in examples], 4, 2, seed=seed, neighbours=neighbours):
            ids = {examples[i].target for i in batch}
            together += 1
            linked += ids in ({0, pasta}, {cheese, far})
    assert linked / together > 0.6, (linked, together)
