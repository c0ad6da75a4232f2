"""SiameseModel: the tied default really shares one encoder, untied towers really have separate weights and
each side goes through its own tower, heads predict what a hand computation says, and every variant
survives save -> load (and SentenceTransformer still loads tower a)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbert_siamese import ConfigError, ModelFormatError, SiameseEncoder
from sbert_siamese.models.heads import SoftmaxHead, WeightedL1Head
from sbert_siamese.models.siamese import SiameseModel
from tests.conftest import build_tiny_bert

TEXTS_A = [
    "a man is playing the guitar",
    "the dog runs in the park",
    "two children play football in the rain",
    "a woman eats",
    "the new government said it will vote on the bill today",
    "red car",
]
TEXTS_B = [
    "someone plays music",
    "a cat sleeps on the bed",
    "children play soccer",
    "a woman is eating food",
    "the council voted on the law",
    "blue bus",
]
NLI = ["entailment", "neutral", "contradiction"]


def perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)


def softmax_head(num_labels: int = 3, use_product: bool = True, seed: int = 0) -> SoftmaxHead:
    head = SoftmaxHead(32, num_labels, use_product)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.classifier.weight.copy_(torch.randn(head.classifier.weight.shape, generator=generator))
        head.classifier.bias.copy_(torch.randn(num_labels, generator=generator))
    return head


def verification_head(seed: int = 0) -> WeightedL1Head:
    head = WeightedL1Head(32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.alpha.copy_(torch.randn(32, generator=generator))
        head.bias.fill_(0.3)
    return head


@pytest.fixture
def tower_b(tmp_path):
    """A different base model of the same width (1 layer instead of 2), with its own weights."""
    encoder = SiameseEncoder.from_pretrained(build_tiny_bert(tmp_path / "tower-b", num_hidden_layers=1))
    perturb(encoder, seed=99)
    return encoder


def features(encoder: SiameseEncoder, columns: list[list[str]]) -> dict[str, torch.Tensor]:
    """(B, k, T) features of k columns of texts, tokenized together."""
    k, size = len(columns), len(columns[0])
    flat = encoder.tokenize([t for column in columns for t in column])  # (k*B, T)
    return {name: t.reshape(k, size, -1).transpose(0, 1).contiguous() for name, t in flat.items()}


def column(feats: dict[str, torch.Tensor], j: int) -> dict[str, torch.Tensor]:
    return {name: t[:, j] for name, t in feats.items()}


def readout(embeddings: torch.Tensor) -> torch.Tensor:
    """A scalar that depends on every embedding dimension (a plain sum would not: the last LayerNorm of a
    fresh BERT makes the sum over hidden units a constant)."""
    weights = torch.randn(embeddings.shape[-1], generator=torch.Generator().manual_seed(0))
    return (embeddings * weights).sum()


def data_ptrs(module: torch.nn.Module) -> set[int]:
    return {p.data_ptr() for p in module.parameters()}


# ------------------------------------------------------------------------------------------ tied / untied
def test_tied_default_shares_one_encoder(tiny_encoder):
    model = SiameseModel(tiny_encoder).eval()
    assert not model.untied
    assert model.tower("a") is model.tower("b") is model.encoder is tiny_encoder
    assert data_ptrs(model) == data_ptrs(tiny_encoder)
    assert sum(1 for m in model.modules() if m.__class__.__name__ == "BertModel") == 1
    feats = features(tiny_encoder, [TEXTS_A[:4], TEXTS_B[:4]])  # (4, 2, T)
    with torch.no_grad():
        out = model(**feats)  # (4, 2, 32)
        for j in range(2):
            torch.testing.assert_close(out[:, j], tiny_encoder(**column(feats, j)), atol=1e-6, rtol=0)
    assert not torch.allclose(out[:, 0], out[:, 1])
    np.testing.assert_array_equal(model.encode(TEXTS_B, side="b"), model.encode(TEXTS_B, side="a"))


def test_tied_gradient_from_column_one_reaches_the_shared_weights(tiny_encoder):
    model = SiameseModel(tiny_encoder)
    feats = features(tiny_encoder, [["a man"], ["red car"]])
    readout(model(**feats)[:, 1]).backward()
    weight = tiny_encoder.transformer.embeddings.word_embeddings.weight
    red = tiny_encoder.tokenizer.convert_tokens_to_ids("red")
    man = tiny_encoder.tokenizer.convert_tokens_to_ids("man")
    assert weight.grad[red].abs().sum() > 0 and weight.grad[man].abs().sum() == 0


def test_untied_towers_have_separate_parameters(tiny_encoder, tower_b):
    model = SiameseModel(tiny_encoder, tower_b=tower_b).eval()
    assert model.untied and model.tower("b") is tower_b and model.tower("a") is tiny_encoder
    assert data_ptrs(tiny_encoder).isdisjoint(data_ptrs(tower_b))
    assert data_ptrs(model) == data_ptrs(tiny_encoder) | data_ptrs(tower_b)
    before_a, before_b = model.encode(TEXTS_A, side="a"), model.encode(TEXTS_A, side="b")
    perturb(tiny_encoder.transformer.embeddings.word_embeddings, seed=1, scale=0.5)
    np.testing.assert_array_equal(model.encode(TEXTS_A, side="b"), before_b)
    assert np.abs(model.encode(TEXTS_A, side="a") - before_a).max() > 1e-2
    perturb(tower_b.transformer.embeddings.word_embeddings, seed=2, scale=0.5)
    assert np.abs(model.encode(TEXTS_A, side="b") - before_b).max() > 1e-2


def test_untied_same_base_model_still_gets_separate_storage(tiny_bert_dir):
    # Two towers loaded from one directory start equal but must not alias each other's tensors.
    a, b = SiameseEncoder.from_pretrained(tiny_bert_dir), SiameseEncoder.from_pretrained(tiny_bert_dir)
    model = SiameseModel(a, tower_b=b)
    assert data_ptrs(a).isdisjoint(data_ptrs(b))
    np.testing.assert_array_equal(model.encode(TEXTS_A, side="a"), model.encode(TEXTS_A, side="b"))
    with torch.no_grad():
        b.transformer.encoder.layer[0].attention.self.query.weight.mul_(-1)
    assert not np.allclose(model.encode(TEXTS_A, side="a"), model.encode(TEXTS_A, side="b"))


@pytest.mark.parametrize("k", [2, 3])
def test_untied_forward_routes_column_zero_to_tower_a_and_the_rest_to_tower_b(tiny_encoder, tower_b, k):
    model = SiameseModel(tiny_encoder, tower_b=tower_b).eval()
    columns = [TEXTS_A[:4], TEXTS_B[:4], TEXTS_A[2:6]][:k]
    feats = features(tiny_encoder, columns)  # (4, k, T)
    with torch.no_grad():
        out = model(**feats)  # (4, k, 32)
        assert out.shape == (4, k, 32)
        torch.testing.assert_close(out[:, 0], tiny_encoder(**column(feats, 0)), atol=1e-6, rtol=0)
        for j in range(1, k):
            expected = tower_b(**column(feats, j))
            torch.testing.assert_close(out[:, j], expected, atol=1e-6, rtol=0)
            assert (out[:, j] - tiny_encoder(**column(feats, j))).abs().max() > 1e-3  # the towers differ


def test_untied_gradients_stay_in_their_tower(tiny_encoder, tower_b):
    model = SiameseModel(tiny_encoder, tower_b=tower_b)
    feats = features(tiny_encoder, [["a man"], ["red car"]])
    readout(model(**feats)[:, 0]).backward()
    weight = tiny_encoder.transformer.embeddings.word_embeddings.weight
    assert weight.grad[tiny_encoder.tokenizer.convert_tokens_to_ids("man")].abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in tower_b.parameters())


def test_untied_single_text_examples_use_tower_a(tiny_encoder, tower_b):
    model = SiameseModel(tiny_encoder, tower_b=tower_b).eval()
    feats = features(tiny_encoder, [TEXTS_A[:3]])  # (3, 1, T)
    with torch.no_grad():
        torch.testing.assert_close(model(**feats)[:, 0], tiny_encoder(**column(feats, 0)), atol=1e-6, rtol=0)


def test_encode_side_picks_the_tower(tiny_encoder, tower_b):
    model = SiameseModel(tiny_encoder, tower_b=tower_b)
    np.testing.assert_array_equal(model.encode(TEXTS_A, side="a"), tiny_encoder.encode(TEXTS_A))
    np.testing.assert_array_equal(model.encode(TEXTS_A), tiny_encoder.encode(TEXTS_A))  # default: a
    np.testing.assert_array_equal(model.encode(TEXTS_A, side="b"), tower_b.encode(TEXTS_A))
    assert np.abs(model.encode(TEXTS_A, side="a") - model.encode(TEXTS_A, side="b")).max() > 1e-3
    for side in ("c", "A", "query"):
        with pytest.raises(ConfigError, match=r"side must be one of a, b"):
            model.encode(TEXTS_A, side=side)


def test_towers_of_different_widths_are_refused(tiny_encoder, tmp_path):
    wide = SiameseEncoder.from_pretrained(build_tiny_bert(tmp_path / "wide", hidden_size=48))
    with pytest.raises(ConfigError, match="32 vs 48"):
        SiameseModel(tiny_encoder, tower_b=wide)


# ----------------------------------------------------------------------------------------------- predict
def test_softmax_predict_equals_hand_computation(tiny_encoder, tower_b):
    head = softmax_head()
    model = SiameseModel(tiny_encoder, head=head, tower_b=tower_b, label_names=NLI)
    out = model.predict(TEXTS_A, TEXTS_B, batch_size=4)
    u = torch.from_numpy(tiny_encoder.encode(TEXTS_A))
    v = torch.from_numpy(tower_b.encode(TEXTS_B))
    x = torch.cat([u, v, (u - v).abs(), u * v], dim=1)  # (N, 4D)
    logits = x @ head.classifier.weight.detach().T + head.classifier.bias.detach()
    expected = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5, rtol=0)
    assert out["probabilities"].shape == (6, 3) and out["probabilities"].dtype == np.float32
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), np.ones(6), atol=1e-6)
    assert list(out["label_ids"]) == list(expected.argmax(axis=1))
    assert out["labels"] == [NLI[i] for i in expected.argmax(axis=1)]
    assert len(set(out["labels"])) >= 2  # the check above is not trivially one class
    assert out["label_names"] == NLI


def test_softmax_predict_without_product_and_without_label_names(tiny_encoder):
    head = softmax_head(num_labels=2, use_product=False, seed=3)
    out = SiameseModel(tiny_encoder, head=head).predict(TEXTS_A, TEXTS_B)
    u, v = (torch.from_numpy(tiny_encoder.encode(t)) for t in (TEXTS_A, TEXTS_B))
    logits = head.classifier(torch.cat([u, v, (u - v).abs()], dim=1)).detach()
    np.testing.assert_allclose(out["probabilities"], torch.softmax(logits, 1).numpy(), atol=1e-5, rtol=0)
    assert out["label_names"] == ["0", "1"]
    assert out["labels"] == [str(i) for i in logits.argmax(1).tolist()]


@pytest.mark.parametrize("label_names", [None, ["different", "same"]])
def test_verification_predict_is_sigmoid_of_weighted_l1(tiny_encoder, label_names):
    head = verification_head()
    model = SiameseModel(tiny_encoder, head=head, label_names=label_names)
    out = model.predict(TEXTS_A, TEXTS_B)
    u, v = tiny_encoder.encode(TEXTS_A), tiny_encoder.encode(TEXTS_B)
    alpha, bias = head.alpha.detach().numpy(), head.bias.item()
    p = 1 / (1 + np.exp(-((np.abs(u - v) * alpha).sum(axis=1) + bias)))
    np.testing.assert_allclose(out["probabilities"], np.stack([1 - p, p], axis=1), atol=1e-5, rtol=0)
    names = label_names or ["0", "1"]
    assert out["labels"] == [names[int(q > 0.5)] for q in p]
    assert len(set(out["labels"])) == 2
    assert out["label_names"] == names


def test_predict_keeps_training_mode_and_weights(tiny_encoder):
    model = SiameseModel(tiny_encoder, head=softmax_head()).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.predict(TEXTS_A[:2], TEXTS_B[:2])
    assert model.training and model.head.training and model.encoder.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_predict_errors(tiny_encoder):
    with pytest.raises(ConfigError, match="no classification head"):
        SiameseModel(tiny_encoder).predict(TEXTS_A, TEXTS_B)
    with pytest.raises(ConfigError, match="6 vs 5"):
        SiameseModel(tiny_encoder, head=softmax_head()).predict(TEXTS_A, TEXTS_B[:5])


# ------------------------------------------------------------------------------------------- save / load
VARIANTS = ["tied", "tied-softmax", "tied-verification", "untied-softmax"]


def build(variant: str, encoder: SiameseEncoder, tower_b: SiameseEncoder) -> SiameseModel:
    if variant == "tied":
        return SiameseModel(encoder)
    if variant == "tied-softmax":
        return SiameseModel(encoder, head=softmax_head(), label_names=NLI)
    if variant == "tied-verification":
        return SiameseModel(encoder, head=verification_head(), label_names=["different", "same"])
    return SiameseModel(encoder, head=softmax_head(num_labels=2, seed=5), tower_b=tower_b)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip(tiny_encoder, tower_b, tmp_path, variant):
    model = build(variant, tiny_encoder, tower_b)
    path = model.save(tmp_path / "saved")
    loaded = SiameseModel.load(path)

    assert loaded.untied == model.untied
    assert type(loaded.head) is type(model.head)
    assert loaded.label_names == model.label_names
    if model.untied:  # the loaded towers are separate too
        assert data_ptrs(loaded.encoder).isdisjoint(data_ptrs(loaded.tower_b))
    else:
        assert loaded.tower("b") is loaded.encoder
    for side in ("a", "b"):
        np.testing.assert_allclose(
            loaded.encode(TEXTS_A, side=side), model.encode(TEXTS_A, side=side), atol=1e-6, rtol=0
        )
    if model.untied:
        assert np.abs(loaded.encode(TEXTS_A, side="a") - loaded.encode(TEXTS_A, side="b")).max() > 1e-3
    if model.head is None:
        assert not (path / "head").exists()
        with pytest.raises(ConfigError):
            loaded.predict(TEXTS_A, TEXTS_B)
        return
    for name, value in model.head.state_dict().items():
        assert torch.equal(loaded.head.state_dict()[name], value), name
    before, after = model.predict(TEXTS_A, TEXTS_B), loaded.predict(TEXTS_A, TEXTS_B)
    assert after["labels"] == before["labels"]
    assert after["label_names"] == before["label_names"]
    np.testing.assert_allclose(after["probabilities"], before["probabilities"], atol=1e-6, rtol=0)


def test_saved_json_files(tiny_encoder, tower_b, tmp_path):
    path = SiameseModel(tiny_encoder, head=softmax_head(), label_names=NLI).save(tmp_path / "softmax")
    assert json.loads((path / "head" / "config.json").read_text()) == {
        "type": "softmax",
        "dimension": 32,
        "num_labels": 3,
        "use_product": True,
        "label_names": NLI,
    }
    meta = json.loads((path / "sbert_siamese.json").read_text())
    assert (meta["towers"], meta["head"]) == ("tied", "softmax")
    assert not (path / "tower_b").exists()

    path = SiameseModel(tiny_encoder, head=verification_head(), tower_b=tower_b).save(tmp_path / "untied")
    assert json.loads((path / "head" / "config.json").read_text()) == {
        "type": "weighted_l1",
        "dimension": 32,
        "label_names": None,
    }
    meta = json.loads((path / "sbert_siamese.json").read_text())
    assert (meta["towers"], meta["head"]) == ("untied", "weighted_l1")
    assert (path / "tower_b" / "modules.json").is_file()


def test_sentence_transformers_loads_tower_a(tiny_encoder, tower_b, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    for variant in VARIANTS:
        model = build(variant, tiny_encoder, tower_b)
        path = model.save(tmp_path / variant)
        theirs = st.SentenceTransformer(str(path), device="cpu").encode(TEXTS_A, convert_to_numpy=True)
        assert np.abs(theirs - model.encode(TEXTS_A, side="a")).max() <= 1e-5, variant


def test_resaving_a_simpler_model_does_not_leave_the_old_head_or_tower(tiny_encoder, tower_b, tmp_path):
    # Overwriting a checkpoint directory must give back what was saved last, not a mix of two models.
    path = tmp_path / "checkpoint"
    SiameseModel(tiny_encoder, head=softmax_head(), tower_b=tower_b, label_names=NLI).save(path)
    SiameseModel(tiny_encoder).save(path)
    loaded = SiameseModel.load(path)
    assert loaded.head is None, "the previous model's head came back"
    assert not loaded.untied, "the previous model's tower b came back"


# ---------------------------------------------------------------------------------------- corrupt heads
CORRUPT_CONFIGS = {
    "invalid-json": "{not json",
    "not-an-object": "[1, 2]",
    "unknown-type": json.dumps({"type": "cosine_head", "dimension": 32}),
    "no-type": json.dumps({"dimension": 32}),
    "no-dimension": json.dumps({"type": "softmax", "num_labels": 3}),
    "wrong-dimension": json.dumps({"type": "softmax", "dimension": 16, "num_labels": 3, "use_product": True}),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_CONFIGS))
def test_corrupt_head_config_is_a_model_format_error_naming_the_file(tiny_encoder, tmp_path, case):
    path = SiameseModel(tiny_encoder, head=softmax_head(), label_names=NLI).save(tmp_path / "m")
    config_file = path / "head" / "config.json"
    config_file.write_text(CORRUPT_CONFIGS[case], encoding="utf-8")
    with pytest.raises(ModelFormatError) as info:
        SiameseModel.load(path)
    assert str(config_file) in str(info.value) or str(path / "head") in str(info.value)
    if case in ("unknown-type", "no-type"):
        assert "expected softmax or weighted_l1" in str(info.value)


def test_missing_head_weights_is_a_model_format_error(tiny_encoder, tmp_path):
    path = SiameseModel(tiny_encoder, head=verification_head()).save(tmp_path / "m")
    (path / "head" / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError, match="model.safetensors") as info:
        SiameseModel.load(path)
    assert str(path / "head") in str(info.value)
