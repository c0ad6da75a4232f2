"""Save/load in the sentence-transformers layout, and interop with SentenceTransformer both ways."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbert_siamese import ModelFormatError, SiameseEncoder
from sbert_siamese.models.dense import Dense

TEXTS = ["a man is playing the guitar", "the dog runs in the park", "two children play football", "hi"]


def st_model(path):
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(path), device="cpu")


def test_save_writes_the_st_layout_and_safetensors_only(tiny_bert_dir, tmp_path):
    enc = SiameseEncoder(
        *_parts(tiny_bert_dir), pooling="max", dense=Dense(32, 8, activation="tanh"), normalize=True
    )
    out = enc.save(tmp_path / "model")
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Dense", "3_Normalize"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_max_tokens"] is True
    assert json.loads((out / "2_Dense" / "config.json").read_text()) == {
        "in_features": 32,
        "out_features": 8,
        "bias": True,
        "activation_function": "torch.nn.modules.activation.Tanh",
    }
    assert json.loads((out / "sentence_bert_config.json").read_text()) == {
        "max_seq_length": 64,
        "do_lower_case": False,
    }
    files = {p.name for p in out.rglob("*") if p.is_file()}
    assert "model.safetensors" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)


def _parts(path):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("with_dense", [False, True])
def test_round_trip_and_sentence_transformers_loads_ours(tiny_bert_dir, tmp_path, pooling, with_dense):
    torch.manual_seed(0)
    dense = Dense(32, 16, activation="tanh") if with_dense else None
    enc = SiameseEncoder(*_parts(tiny_bert_dir), pooling=pooling, dense=dense, normalize=with_dense)
    ours = enc.encode(TEXTS)
    path = enc.save(tmp_path / "model")

    again = SiameseEncoder.from_pretrained(path).encode(TEXTS)
    np.testing.assert_array_equal(again, ours)

    theirs = st_model(path).encode(TEXTS, convert_to_numpy=True)
    assert np.abs(theirs - ours).max() <= 1e-5


def test_we_load_a_model_saved_by_sentence_transformers(tiny_bert_dir, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers import models

    transformer = models.Transformer(str(tiny_bert_dir), max_seq_length=40)
    torch.manual_seed(0)
    modules = [
        transformer,
        models.Pooling(32, pooling_mode="cls"),
        models.Dense(32, 12, activation_function=torch.nn.Tanh()),
        models.Normalize(),
    ]
    model = st.SentenceTransformer(modules=modules, device="cpu")
    model.save(str(tmp_path / "st"))
    theirs = model.encode(TEXTS + [" ".join(["dog"] * 80)], convert_to_numpy=True)

    enc = SiameseEncoder.from_pretrained(tmp_path / "st")
    assert enc.pooling.mode == "cls" and enc.normalize and enc.dense.out_features == 12
    assert enc.max_seq_length == 40
    ours = enc.encode(TEXTS + [" ".join(["dog"] * 80)])
    assert np.abs(theirs - ours).max() <= 1e-5
    assert enc.last_truncated == [4]


def test_packaged_minilm_matches_sentence_transformers_both_ways(packaged_minilm, tmp_path):
    texts = TEXTS + ["A plane is taking off.", "An air plane is taking off.", "word " * 300]
    theirs = st_model(packaged_minilm).encode(texts, convert_to_numpy=True)
    enc = SiameseEncoder.from_pretrained(packaged_minilm)
    assert enc.max_seq_length == 256 and enc.normalize and enc.pooling.mode == "mean"
    ours = enc.encode(texts)
    assert np.abs(theirs - ours).max() <= 1e-5
    saved = enc.save(tmp_path / "minilm")
    assert np.abs(st_model(saved).encode(texts, convert_to_numpy=True) - ours).max() <= 1e-5


def test_pickle_only_directory_is_refused(tiny_bert_dir, tmp_path):
    from transformers import AutoModel

    target = tmp_path / "pkl"
    target.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (target / name).write_bytes((tiny_bert_dir / name).read_bytes())
    torch.save(AutoModel.from_pretrained(tiny_bert_dir).state_dict(), target / "pytorch_model.bin")
    with pytest.raises(ModelFormatError, match=r"pytorch_model\.bin.*Only safetensors"):
        SiameseEncoder.from_pretrained(target)


def test_bad_modules_json_names_the_file(tiny_encoder, tmp_path):
    path = tiny_encoder.save(tmp_path / "m")
    (path / "modules.json").write_text(
        '[{"idx": 0, "path": "", "type": "x.Transformer"}, {"type": "x.Weird"}]'
    )
    with pytest.raises(ModelFormatError, match=r"modules\.json.*'x\.Weird'.*Transformer, Pooling"):
        SiameseEncoder.from_pretrained(path)
    (path / "modules.json").write_text("[{")
    with pytest.raises(ModelFormatError, match=r"modules\.json:1: invalid JSON"):
        SiameseEncoder.from_pretrained(path)
