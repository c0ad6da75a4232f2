"""ONNX Runtime backends: the fp32 graph gives the torch embeddings (1e-5), int8 stays close, the export
round-trips through a model directory, stale exports are not used, and the CLI exposes all of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from sbert_siamese import SiameseEncoder  # noqa: E402
from sbert_siamese.backends.onnx import EXPORT_INFO, FILES, ONNX_DIR, export_onnx, read_export_info  # noqa: E402
from sbert_siamese.cli import main  # noqa: E402
from sbert_siamese.errors import ConfigError  # noqa: E402
from sbert_siamese.models.dense import Dense  # noqa: E402

TEXTS = [
    "a man is playing the guitar",
    "the cat sat",
    "two dogs run in the park near the old house today",
    "x",
    "what is the best way to learn cooking at home",
    "rain",
    "a woman is eating food in the kitchen with her children",
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_onnx_fp32_equals_torch(tiny_bert_dir, pooling):
    enc = SiameseEncoder.from_pretrained(tiny_bert_dir, pooling=pooling)
    expected = enc.encode(TEXTS, batch_size=3)
    got = enc.encode(TEXTS, batch_size=3, backend="onnx")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_onnx_keeps_dense_and_normalize(tiny_bert_dir):
    torch.manual_seed(0)
    base = SiameseEncoder.from_pretrained(tiny_bert_dir)
    enc = SiameseEncoder(base.transformer, base.tokenizer, "mean", dense=Dense(32, 8, "tanh"), normalize=True)
    expected = enc.encode(TEXTS, batch_size=2)
    got = enc.encode(TEXTS, batch_size=2, backend="onnx")
    assert got.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_onnx_int8_is_quantised_and_close(tiny_encoder):
    expected = tiny_encoder.encode(TEXTS)
    got = tiny_encoder.encode(TEXTS, backend="onnx-int8")
    difference = np.abs(got - expected).max()
    assert difference > 1e-6  # really the int8 graph, not the fp32 one
    assert _cosines(got, expected).min() > 0.99


def test_export_round_trips_through_the_model_directory(tiny_bert_dir):
    enc = SiameseEncoder.from_pretrained(tiny_bert_dir)
    info = export_onnx(enc, tiny_bert_dir)
    folder = tiny_bert_dir / ONNX_DIR
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES.values(), EXPORT_INFO])
    assert read_export_info(tiny_bert_dir) == info
    assert not [p for p in tiny_bert_dir.iterdir() if p.name.startswith(".onnx.")]  # no staging left

    loaded = SiameseEncoder.from_pretrained(tiny_bert_dir)
    for backend in ("onnx", "onnx-int8"):
        assert loaded.runner(backend).path == folder / FILES[backend]  # the saved file, no re-export
    np.testing.assert_allclose(loaded.encode(TEXTS, backend="onnx"), enc.encode(TEXTS), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(
        loaded.encode(TEXTS, backend="onnx-int8"), enc.encode(TEXTS, backend="onnx-int8")
    )


def test_changed_weights_never_use_a_stale_export(tiny_bert_dir, caplog):
    enc = SiameseEncoder.from_pretrained(tiny_bert_dir)
    export_onnx(enc, tiny_bert_dir, int8=False)
    first = enc.encode(TEXTS, backend="onnx")
    with torch.no_grad():  # what an optimizer step does: change a weight in place
        enc.transformer.embeddings.word_embeddings.weight.mul_(1.5)
    runner = enc.runner("onnx")
    assert runner.path != tiny_bert_dir / ONNX_DIR / FILES["onnx"]
    assert "other weights" in caplog.text
    after = enc.encode(TEXTS, backend="onnx")
    assert np.abs(after - first).max() > 1e-3
    np.testing.assert_allclose(after, enc.encode(TEXTS), atol=1e-5, rtol=0)

    reloaded = SiameseEncoder.from_pretrained(tiny_bert_dir)  # files on disk hold the original weights
    assert reloaded.runner("onnx").path == tiny_bert_dir / ONNX_DIR / FILES["onnx"]
    # an export without the int8 file: asking for int8 exports it for the session instead
    assert reloaded.runner("onnx-int8").path.name == FILES["onnx-int8"]
    assert reloaded.runner("onnx-int8").path.parent != tiny_bert_dir / ONNX_DIR


def test_reexport_replaces_the_folder(tiny_bert_dir):
    enc = SiameseEncoder.from_pretrained(tiny_bert_dir)
    export_onnx(enc, tiny_bert_dir)
    export_onnx(enc, tiny_bert_dir, int8=False)
    assert sorted(p.name for p in (tiny_bert_dir / ONNX_DIR).iterdir()) == sorted(
        [FILES["onnx"], EXPORT_INFO]
    )


def test_bad_backend_and_precision(tiny_encoder):
    with pytest.raises(ConfigError, match="backend must be one of torch, onnx, onnx-int8, openvino"):
        tiny_encoder.encode(TEXTS, backend="tensorrt")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16"):
        tiny_encoder.encode(TEXTS, precision="int4")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        tiny_encoder.encode(TEXTS, precision="fp16")
    with pytest.raises(ConfigError, match="for the torch backend"):
        tiny_encoder.encode(TEXTS, backend="onnx", precision="bf16")


def test_bf16_autocast_runs_on_cpu_and_stays_close(tiny_encoder):
    expected = tiny_encoder.encode(TEXTS)
    got = tiny_encoder.encode(TEXTS, precision="bf16")
    assert got.dtype == np.float32
    assert _cosines(got, expected).min() > 0.99


def test_cli_export_then_encode_with_each_backend(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["export", "--model", str(tiny_bert_dir), "--format", "onnx", "--no-measure"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["files"]) == {"onnx", "onnx-int8"}
    assert not (tiny_bert_dir / "openvino").exists()
    outputs = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        out = tmp_path / f"{backend}.npy"
        argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), "-q"]
        assert main([*argv, "--backend", backend]) == 0
        outputs[backend] = np.load(out)
    np.testing.assert_allclose(outputs["onnx"], outputs["torch"], atol=1e-5, rtol=0)
    assert _cosines(outputs["onnx-int8"], outputs["torch"]).min() > 0.99


def test_cli_export_to_another_directory(tiny_bert_dir, tmp_path, capsys):
    target = tmp_path / "exported"
    argv = ["export", "--model", str(tiny_bert_dir), "--output", str(target), "--no-int8", "--no-measure"]
    assert main([*argv, "--format", "onnx"]) == 0
    assert (target / "modules.json").exists()
    assert sorted(p.name for p in (target / ONNX_DIR).iterdir()) == sorted([FILES["onnx"], EXPORT_INFO])
    assert not (tiny_bert_dir / ONNX_DIR).exists()


def test_sharded_folder_refuses_another_backend(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "shards"
    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), "-q"]
    assert main([*argv, "--shard-size", "3"]) == 0
    assert main([*argv, "--shard-size", "3", "--backend", "onnx-int8"]) == 2
    assert "other backend" in capsys.readouterr().err
