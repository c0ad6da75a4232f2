"""Safety of loading and saving: pickle weights only on request, no custom code, no paths out of a model
directory, atomic saves, and clear messages for a full disk or a missing permission."""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sbert_siamese import ModelFormatError, SiameseEncoder
from sbert_siamese.errors import OutputError
from sbert_siamese.models.dense import Dense
from sbert_siamese.models.heads import WeightedL1Head
from sbert_siamese.models.siamese import SiameseModel

TEXTS = ["a man is playing the guitar", "the dog runs in the park", "two children play football"]


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def no_permission(*args, **kwargs):
    raise OSError(errno.EACCES, "Permission denied")


def leftovers(parent: Path) -> list[str]:
    """Hidden staging / old folders a save may leave beside its target."""
    return sorted(p.name for p in parent.iterdir() if ".incomplete-" in p.name or ".old-" in p.name)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def dense_encoder(tiny_bert_dir) -> SiameseEncoder:
    torch.manual_seed(3)
    encoder = SiameseEncoder.from_pretrained(tiny_bert_dir)
    encoder.dense = Dense(32, 8, activation="tanh")
    return encoder


def to_pickle_only(folder: Path, parts=("", "2_Dense", "head")) -> None:
    """Replace every model.safetensors under ``folder`` (in ``parts``) by a pytorch_model.bin (torch.save)."""
    from safetensors.torch import load_file

    for part in parts:
        weights = folder / part / "model.safetensors"
        if weights.exists():
            torch.save(load_file(weights), folder / part / "pytorch_model.bin")
            weights.unlink()


# ------------------------------------------------------------------------------------------ pickle weights
def test_a_pickle_only_model_directory_is_refused_and_loads_with_the_flag(dense_encoder, tmp_path):
    expected = dense_encoder.encode(TEXTS)
    path = dense_encoder.save(tmp_path / "pickled")
    to_pickle_only(path)
    assert not list(path.rglob("*.safetensors"))

    with pytest.raises(ModelFormatError) as info:
        SiameseEncoder.from_pretrained(path)
    message = str(info.value)
    for part in (str(path), "pytorch_model.bin", "allow_pickle=True", "--allow-pickle"):
        assert part in message

    with pytest.warns(UserWarning, match="pickle weights") as caught:
        loaded = SiameseEncoder.from_pretrained(path, allow_pickle=True)
    warned = " ".join(str(w.message) for w in caught)
    assert str(path / "pytorch_model.bin") in warned and str(path / "2_Dense" / "pytorch_model.bin") in warned
    np.testing.assert_allclose(loaded.encode(TEXTS), expected, atol=1e-6, rtol=0)


def test_a_pickle_only_dense_module_is_refused_by_name(dense_encoder, tmp_path):
    path = dense_encoder.save(tmp_path / "m")
    to_pickle_only(path, parts=("2_Dense",))
    with pytest.raises(ModelFormatError, match=r"2_Dense.*pytorch_model\.bin.*allow_pickle=True"):
        SiameseEncoder.from_pretrained(path)


def test_siamese_model_with_head_pickle_only_needs_the_flag(tiny_encoder, tmp_path):
    torch.manual_seed(1)
    model = SiameseModel(tiny_encoder, head=WeightedL1Head(32))
    path = model.save(tmp_path / "m")
    to_pickle_only(path, parts=("head",))  # the encoder keeps its safetensors
    with pytest.raises(ModelFormatError, match=r"head.*pytorch_model\.bin.*allow_pickle=True"):
        SiameseModel.load(path)
    to_pickle_only(path)
    with pytest.raises(ModelFormatError, match=r"pytorch_model\.bin.*allow_pickle=True"):
        SiameseModel.load(path)
    with pytest.warns(UserWarning, match="pickle weights"):
        loaded = SiameseModel.load(path, allow_pickle=True)
    for name, value in model.head.state_dict().items():
        assert torch.equal(loaded.head.state_dict()[name], value), name
    np.testing.assert_allclose(loaded.encode(TEXTS), model.encode(TEXTS), atol=1e-6, rtol=0)


def test_safetensors_are_preferred_over_pickle_files(dense_encoder, tmp_path):
    expected = dense_encoder.encode(TEXTS)
    path = dense_encoder.save(tmp_path / "m")
    # Pickle files beside the safetensors, with other weights: never read, with or without the flag.
    other = {k: torch.zeros_like(v) for k, v in dense_encoder.dense.state_dict().items()}
    torch.save(other, path / "2_Dense" / "pytorch_model.bin")
    state = {k: torch.zeros_like(v) for k, v in dense_encoder.transformer.state_dict().items()}
    torch.save(state, path / "pytorch_model.bin")
    for allow in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no "loaded pickle weights" warning
            loaded = SiameseEncoder.from_pretrained(path, allow_pickle=allow)
        np.testing.assert_allclose(loaded.encode(TEXTS), expected, atol=1e-6, rtol=0)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_runs_code_is_refused_even_with_the_flag(dense_encoder, tmp_path):
    path = dense_encoder.save(tmp_path / "m")
    marker = tmp_path / "code-ran"
    (path / "2_Dense" / "model.safetensors").unlink()
    torch.save({"linear.weight": _RunsCode(marker)}, path / "2_Dense" / "pytorch_model.bin")
    with pytest.raises(ModelFormatError, match=r"2_Dense.*pytorch_model\.bin"):
        SiameseEncoder.from_pretrained(path, allow_pickle=True)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ custom code
def _write_custom_module(folder: Path, marker: Path) -> None:
    (folder / "modeling_custom.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom transformers import BertModel as CustomModel\n"
    )


@pytest.mark.parametrize("layout", ["plain", "sentence-transformers"])
@pytest.mark.parametrize("change", ["auto_map", "unknown_model_type", "tokenizer_auto_map"])
def test_a_model_that_needs_custom_code_is_refused(tiny_bert_dir, tmp_path, layout, change):
    folder = tiny_bert_dir
    if layout == "sentence-transformers":
        folder = SiameseEncoder.from_pretrained(tiny_bert_dir).save(tmp_path / "st")
    marker = tmp_path / "code-ran"
    _write_custom_module(folder, marker)
    name = "tokenizer_config.json" if change == "tokenizer_auto_map" else "config.json"
    config = json.loads((folder / name).read_text())
    if change == "unknown_model_type":
        config["model_type"] = "custom-bert-xyz"
    else:
        config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / name).write_text(json.dumps(config))
    for allow_pickle in (False, True):
        with pytest.raises(ModelFormatError) as info:
            SiameseEncoder.from_pretrained(folder, allow_pickle=allow_pickle)
        assert str(folder / name) in str(info.value)
        assert "custom code" in str(info.value) and "never run" in str(info.value)
    assert not marker.exists()


def test_no_from_pretrained_call_turns_trust_remote_code_on():
    package = Path(__file__).resolve().parent.parent / "sbert_siamese"
    for file in package.glob("*.py"):
        text = file.read_text()
        assert "trust_remote_code=True" not in text, file
        for line in text.splitlines():
            if "AutoModel.from_pretrained(" in line or "AutoTokenizer.from_pretrained(" in line:
                assert "trust_remote_code=False" in line, f"{file}: {line.strip()}"


# ------------------------------------------------------------------------------------------ paths
def _set_pooling_path(model_dir: Path, value: str) -> None:
    modules = json.loads((model_dir / "modules.json").read_text())
    modules[1]["path"] = value
    (model_dir / "modules.json").write_text(json.dumps(modules))


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_module_paths_cannot_leave_the_model_directory(tiny_encoder, tmp_path, kind):
    path = tiny_encoder.save(tmp_path / "m")
    outside = tmp_path / "outside"
    shutil.copytree(path / "1_Pooling", outside)
    if kind == "absolute":
        _set_pooling_path(path, str(outside))
    elif kind == "dotdot":
        _set_pooling_path(path, "../outside")
    else:
        shutil.rmtree(path / "1_Pooling")
        (path / "1_Pooling").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelFormatError) as info:
        SiameseEncoder.from_pretrained(path)
    assert str(path / "modules.json") in str(info.value)
    assert "outside" in str(info.value) or "absolute" in str(info.value)


def test_a_symlink_inside_the_model_directory_is_fine(tiny_encoder, tmp_path):
    path = tiny_encoder.save(tmp_path / "m")
    (path / "1_Pooling").rename(path / "pooling_files")
    (path / "1_Pooling").symlink_to(path / "pooling_files", target_is_directory=True)
    assert SiameseEncoder.from_pretrained(path).pooling.mode == "mean"


def test_a_head_symlinked_out_of_the_model_is_refused(tiny_encoder, tmp_path):
    path = SiameseModel(tiny_encoder, head=WeightedL1Head(32)).save(tmp_path / "m")
    (path / "head").rename(tmp_path / "elsewhere")
    (path / "head").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ModelFormatError, match="leads outside"):
        SiameseModel.load(path)


def test_shard_index_and_onnx_file_names_stay_inside(tiny_encoder, tmp_path):
    from sbert_siamese.backends.onnx import read_export_info

    path = tiny_encoder.save(tmp_path / "m")
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "../../etc/passwd"}}))
    with pytest.raises(ModelFormatError, match=r"model\.safetensors\.index\.json.*not a file inside"):
        SiameseEncoder.from_pretrained(path)
    (path / "onnx").mkdir()
    (path / "onnx" / "export.json").write_text(
        json.dumps({"weights": "x", "files": {"onnx": "../../x.onnx"}})
    )
    with pytest.raises(ModelFormatError, match=r"export\.json"):
        read_export_info(path)


# ------------------------------------------------------------------------------------------ atomic saves
@pytest.mark.parametrize("fail", ["tokenizer", "dense-safetensors"])
def test_a_save_that_fails_midway_leaves_the_previous_model_intact(
    dense_encoder, tmp_path, monkeypatch, fail
):
    import sbert_siamese.models.st_format as st_format

    target = tmp_path / "model"
    first = SiameseEncoder.from_pretrained(dense_encoder.save(target))
    expected, before = first.encode(TEXTS), snapshot(target)

    torch.manual_seed(9)
    dense_encoder.dense = Dense(32, 8, activation="relu")  # a different model, so a mix would show
    if fail == "tokenizer":
        monkeypatch.setattr(dense_encoder.tokenizer, "save_pretrained", disk_full)
    else:  # safetensors reports I/O errors as a plain Exception naming the OS error

        def full(*args, **kwargs):
            raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr(st_format, "save_file", full)
    with pytest.raises(OutputError) as info:
        dense_encoder.save(target)
    assert "disk full" in str(info.value) and str(target) in str(info.value)
    assert ".incomplete-" not in str(info.value)

    assert snapshot(target) == before
    assert leftovers(tmp_path) == []
    np.testing.assert_array_equal(SiameseEncoder.from_pretrained(target).encode(TEXTS), expected)


def test_a_failed_first_save_leaves_nothing_under_the_final_name(tiny_encoder, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(tiny_encoder.tokenizer, "save_pretrained", no_permission)
    with pytest.raises(OutputError, match="permission denied") as info:
        SiameseModel(tiny_encoder).save(runs / "new")
    assert str(runs / "new") in str(info.value)
    assert sorted(p.name for p in runs.iterdir()) == []


def test_siamese_model_save_is_staged_as_a_whole(tiny_encoder, tmp_path, monkeypatch):
    import sbert_siamese.models.siamese as model_module

    torch.manual_seed(2)
    model = SiameseModel(tiny_encoder, head=WeightedL1Head(32), tower_b=SiameseEncoder.from_pretrained(
        tiny_encoder.source_path))  # fmt: skip
    target = model.save(tmp_path / "m")
    before = snapshot(target)
    monkeypatch.setattr(model_module, "save_file", disk_full)  # the head: written after both towers
    with pytest.raises(OutputError, match="disk full"):
        SiameseModel(tiny_encoder, head=WeightedL1Head(32)).save(target)
    assert snapshot(target) == before
    assert leftovers(tmp_path) == []
    loaded = SiameseModel.load(target)
    assert loaded.untied and isinstance(loaded.head, WeightedL1Head)


def test_saving_replaces_an_earlier_model_as_a_whole(tiny_encoder, tmp_path):
    target = SiameseModel(tiny_encoder, head=WeightedL1Head(32)).save(tmp_path / "m")
    (target / "notes.txt").write_text("from an earlier run")
    SiameseModel(tiny_encoder).save(target)
    assert not (target / "head").exists() and not (target / "notes.txt").exists()
    assert leftovers(tmp_path) == []


def test_saving_into_a_folder_that_is_not_a_model_is_refused(tiny_encoder, tmp_path, monkeypatch):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    for save in (tiny_encoder.save, SiameseModel(tiny_encoder).save):
        with pytest.raises(OutputError, match=r"not empty and holds no model") as info:
            save(folder)
        assert str(folder) in str(info.value)
    assert snapshot(folder) == {"thesis.tex": b"years of work"}
    assert leftovers(tmp_path) == []

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        tiny_encoder.save(tmp_path / "file")
    project = tmp_path / "project"  # a config.json alone does not make a folder a model to replace
    project.mkdir()
    (project / "config.json").write_text("{}")
    (project / "main.py").write_text("print('hi')")
    with pytest.raises(OutputError, match=r"not empty and holds no model"):
        tiny_encoder.save(project)
    assert snapshot(project) == {"config.json": b"{}", "main.py": b"print('hi')"}
    monkeypatch.setenv("HOME", str(project))
    with pytest.raises(OutputError, match="home folder"):
        tiny_encoder.save(project)
    monkeypatch.chdir(folder)
    with pytest.raises(OutputError, match="current working directory"):
        SiameseModel(tiny_encoder).save(".")
    assert snapshot(folder) == {"thesis.tex": b"years of work"}


def test_saving_into_an_empty_folder_or_through_a_symlink(tiny_encoder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (tiny_encoder.save(empty) / "modules.json").is_file()

    real = tmp_path / "real"
    link = tmp_path / "link"
    tiny_encoder.save(real)
    link.symlink_to(real, target_is_directory=True)
    SiameseModel(tiny_encoder, head=WeightedL1Head(32)).save(link)
    assert link.is_symlink() and (real / "head" / "model.safetensors").is_file()
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------ other writers
class FakeEncoder:
    last_truncated: list[int] = []

    def encode(self, texts, **kwargs):
        return np.ones((len(texts), 4), dtype=np.float32)


def test_streaming_reports_a_full_disk_clearly(tmp_path, monkeypatch):
    from sbert_siamese.io.streaming import MANIFEST, encode_to_disk

    folder = tmp_path / "emb"
    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OutputError, match="disk full") as info:
        encode_to_disk(FakeEncoder(), TEXTS, folder, shard_size=2)
    assert str(folder / "shard_00000.npy") in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST]  # no .tmp left behind
    monkeypatch.undo()

    monkeypatch.setattr(os, "fsync", no_permission)  # the manifest is written (and flushed) first
    with pytest.raises(OutputError, match="permission denied") as info:
        encode_to_disk(FakeEncoder(), TEXTS, tmp_path / "emb2", shard_size=2)
    assert str(tmp_path / "emb2" / MANIFEST) in str(info.value)


def test_plots_report_write_errors_and_keep_recipe_names_inside(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from sbert_siamese.evaluation.plots import similarity_histogram, write_pair_plots

    scores, labels = [0.1, 0.9, 0.4, 0.8], [0, 1, 0, 1]
    out = tmp_path / "a" / "plots"
    paths = write_pair_plots(
        {"../../x": (scores, labels, 0.5), "/etc/y": (scores, labels, None)}, out, "../p"
    )
    assert len(paths) == 4
    for path in paths:
        assert path.parent == out and path.is_file() and not path.name.startswith(".")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(p.name for p in paths)

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OutputError, match="disk full") as info:
        similarity_histogram(scores, labels, out / "h.png")
    assert str(out / "h.png") in str(info.value)
    assert not list(out.glob("*.tmp"))


def test_save_threshold_reports_write_errors(tmp_path, monkeypatch):
    from sbert_siamese.evaluation.calibration import Threshold, load_threshold, save_threshold

    save_threshold(tmp_path, Threshold(score="cosine", threshold=0.5))
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OutputError, match="disk full") as info:
        save_threshold(tmp_path, Threshold(score="cosine", threshold=0.7))
    assert str(tmp_path / "threshold.json") in str(info.value)
    monkeypatch.undo()
    assert load_threshold(tmp_path).threshold == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["threshold.json"]


def test_onnx_export_failure_keeps_the_earlier_export(tiny_encoder, tmp_path, monkeypatch):
    import sbert_siamese.backends.onnx as onnx_backend

    pytest.importorskip("onnxruntime")
    folder = tmp_path / "m"
    (folder / "onnx").mkdir(parents=True)
    (folder / "onnx" / "export.json").write_text("{}")
    monkeypatch.setattr(onnx_backend, "_export_fp32", disk_full)
    with pytest.raises(OutputError, match="disk full") as info:
        onnx_backend.export_onnx(tiny_encoder, folder)
    assert str(folder / "onnx") in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == ["onnx"]
    assert (folder / "onnx" / "export.json").read_text() == "{}"
