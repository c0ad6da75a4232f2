"""SiameseEncoder: shared weights, padding/batch invariance, order, truncation counting, outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbert_siamese import ConfigError, SiameseEncoder

TEXTS = [
    "a man is playing the guitar",
    "the dog runs in the park",
    "two children play football in the rain",
    "a woman eats",
    "the new government said it will vote on the bill today",
]


def test_both_sides_go_through_one_module(tiny_encoder):
    # One transformer object, and pair encoding equals encoding each side with that same module.
    features = tiny_encoder.tokenize(TEXTS[:2] + TEXTS[2:4])  # (4, T)
    paired = {k: v.reshape(2, 2, -1).transpose(0, 1) for k, v in features.items()}  # (B=2, 2, T)
    tiny_encoder.eval()
    with torch.no_grad():
        u, v = tiny_encoder.forward_pairs(paired)
        direct = tiny_encoder(**features)
    torch.testing.assert_close(u, direct[:2])
    torch.testing.assert_close(v, direct[2:])
    transformers = [m for m in tiny_encoder.modules() if m.__class__.__name__ == "BertModel"]
    assert len(transformers) == 1


def test_gradient_from_either_side_reaches_the_same_parameters(tiny_encoder):
    features = tiny_encoder.tokenize(TEXTS[:2])
    paired = {k: v.unsqueeze(0) for k, v in features.items()}  # (1, 2, T): one pair
    weight = tiny_encoder.transformer.embeddings.word_embeddings.weight
    grads = []
    for side in (0, 1):
        tiny_encoder.zero_grad()
        u, v = tiny_encoder.forward_pairs(paired)
        (u if side == 0 else v).sum().backward()
        grads.append(weight.grad.clone())
    a_ids, b_ids = features["input_ids"][0], features["input_ids"][1]
    only_a = sorted(set(a_ids.tolist()) - set(b_ids.tolist()))
    only_b = sorted(set(b_ids.tolist()) - set(a_ids.tolist()))
    # Side a's loss updates the rows of a's tokens in the one shared embedding table, side b's of b's.
    assert grads[0][only_a].abs().sum() > 0 and grads[0][only_b].abs().sum() == 0
    assert grads[1][only_b].abs().sum() > 0 and grads[1][only_a].abs().sum() == 0


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_single_text_equals_same_text_in_padded_batch(tiny_bert_dir, pooling):
    enc = SiameseEncoder.from_pretrained(tiny_bert_dir, pooling=pooling)
    batch = enc.encode(TEXTS, batch_size=len(TEXTS))
    for i, text in enumerate(TEXTS):
        alone = enc.encode([text])
        np.testing.assert_allclose(alone[0], batch[i], atol=1e-5, rtol=0)


def test_order_restored_and_batch_size_invariant(tiny_encoder):
    reference = np.stack([tiny_encoder.encode(t) for t in TEXTS])
    for batch_size in (1, 2, 3, 64):
        out = tiny_encoder.encode(TEXTS, batch_size=batch_size)
        np.testing.assert_allclose(out, reference, atol=1e-5, rtol=0)


def test_output_types_and_single_string(tiny_encoder):
    as_numpy = tiny_encoder.encode(TEXTS)
    as_torch = tiny_encoder.encode(TEXTS, convert_to="torch")
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32 and as_numpy.shape == (5, 32)
    assert isinstance(as_torch, torch.Tensor) and as_torch.device.type == "cpu"
    np.testing.assert_allclose(as_torch.numpy(), as_numpy)
    single = tiny_encoder.encode(TEXTS[0])
    assert single.shape == (32,)
    np.testing.assert_allclose(single, as_numpy[0], atol=1e-5)
    assert tiny_encoder.encode([]).shape == (0, 32)
    with pytest.raises(ConfigError, match="numpy, torch"):
        tiny_encoder.encode(TEXTS, convert_to="list")


def test_normalize_gives_unit_vectors(tiny_encoder):
    out = tiny_encoder.encode(TEXTS, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    raw = tiny_encoder.encode(TEXTS)
    np.testing.assert_allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)


def test_truncation_is_counted_not_hidden(tiny_encoder, caplog):
    long_text = " ".join(["guitar"] * 100)  # 100 word tokens + 2 specials > 64
    exact = " ".join(["guitar"] * 62)  # 62 + 2 == 64: fits exactly, not truncated
    with caplog.at_level("WARNING"):
        out = tiny_encoder.encode(["a dog", long_text, exact])
    assert tiny_encoder.last_truncated == [1]
    assert "1 of 3 inputs" in caplog.text and "max_seq_length=64" in caplog.text
    # The truncated embedding equals the embedding of its first 62 word tokens.
    np.testing.assert_allclose(out[1], tiny_encoder.encode(exact), atol=1e-5)
    tiny_encoder.encode(["a dog"])
    assert tiny_encoder.last_truncated == []


def test_texts_are_stripped_like_sentence_transformers(tiny_encoder):
    np.testing.assert_allclose(tiny_encoder.encode("  a dog \n"), tiny_encoder.encode("a dog"), atol=1e-6)


def test_encode_restores_training_mode(tiny_encoder):
    tiny_encoder.train()
    tiny_encoder.encode(TEXTS)
    assert tiny_encoder.training


def test_progress_bar_when_asked(tiny_encoder, capsys):
    tiny_encoder.encode(TEXTS, show_progress_bar=True)
    assert "Encoding" in capsys.readouterr().err
    tiny_encoder.encode(TEXTS)
    assert capsys.readouterr().err == ""


def test_invalid_options(tiny_bert_dir):
    with pytest.raises(ConfigError, match="mean, cls, max"):
        SiameseEncoder.from_pretrained(tiny_bert_dir, pooling="avg")
    with pytest.raises(ConfigError, match="max_seq_length"):
        SiameseEncoder.from_pretrained(tiny_bert_dir, max_seq_length=1000)
