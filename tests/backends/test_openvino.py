"""OpenVINO backends: fp32 gives the torch embeddings (1e-5) through both compiled forms (one batch, many
batches in flight), bf16 and static int8 stay close but are really reduced, the export round-trips in the
sentence-transformers layout with its calibration recorded, stale exports are not used, errors are clear."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from sbert_siamese import SiameseEncoder  # noqa: E402
from sbert_siamese.backends.openvino import (  # noqa: E402
    CALIBRATION_SAMPLE,
    EXPORT_INFO,
    FILES,
    OPENVINO_DIR,
    cpu_has_bf16,
    export_openvino,
    read_calibration_texts,
    read_export_info,
)
from sbert_siamese.cli import main  # noqa: E402
from sbert_siamese.errors import ConfigError, ModelFormatError  # noqa: E402
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
MANY = [f"{t} number {i}" for i in range(6) for t in TEXTS]  # 42 texts: several batches in flight


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def exported(tiny_bert_source, tmp_path_factory):
    """One exported copy of the tiny BERT (fp32 + int8 on the bundled sample) shared by the module."""
    folder = tmp_path_factory.mktemp("ov") / "tiny-bert"
    shutil.copytree(tiny_bert_source, folder)
    info = export_openvino(SiameseEncoder.from_pretrained(folder), folder)
    return folder, info


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_fp32_equals_torch_for_one_batch_and_many(exported, pooling):
    enc = SiameseEncoder.from_pretrained(exported[0], pooling=pooling)
    for texts, batch_size in ((TEXTS, 32), (MANY, 4)):  # one batch: LATENCY; 11 batches: THROUGHPUT queue
        expected = enc.encode(texts, batch_size=batch_size)
        got = enc.encode(texts, batch_size=batch_size, backend="openvino")
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert set(enc.runner("openvino")._compiled) == {"LATENCY", "THROUGHPUT"}


def test_fp32_keeps_dense_and_normalize(tiny_bert_dir):
    torch.manual_seed(0)
    base = SiameseEncoder.from_pretrained(tiny_bert_dir)
    enc = SiameseEncoder(base.transformer, base.tokenizer, "mean", dense=Dense(32, 8, "tanh"), normalize=True)
    expected = enc.encode(MANY, batch_size=5)
    got = enc.encode(MANY, batch_size=5, backend="openvino")  # no source folder: exported for the session
    assert got.shape == (len(MANY), 8)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_int8_is_quantised_close_and_order_independent(exported):
    enc = SiameseEncoder.from_pretrained(exported[0])
    expected = enc.encode(MANY)
    got = enc.encode(MANY, batch_size=4, backend="openvino-int8")
    assert np.abs(got - expected).max() > 1e-4  # really the int8 graph, not the fp32 one
    assert _cosines(got, expected).min() > 0.98
    # several batches in flight at once; every row still lands at its own index
    alone = np.stack([enc.encode(t, backend="openvino-int8") for t in MANY[:8]])
    np.testing.assert_allclose(got[:8], alone, atol=1e-4, rtol=0)


def test_bf16_is_reduced_or_refused(exported):
    enc = SiameseEncoder.from_pretrained(exported[0])
    if not cpu_has_bf16():
        with pytest.raises(ConfigError, match="needs a CPU with bf16 products"):
            enc.encode(TEXTS, backend="openvino-bf16")
        return
    expected = enc.encode(MANY)
    got = enc.encode(MANY, batch_size=4, backend="openvino-bf16")
    assert np.abs(got - expected).max() > 1e-5
    assert _cosines(got, expected).min() > 0.999


def test_export_layout_info_and_reuse(exported):
    folder, info = exported
    files = sorted(p.name for p in (folder / OPENVINO_DIR).iterdir())
    assert files == sorted(
        [EXPORT_INFO, FILES["openvino"], "openvino_model.bin", FILES["openvino-int8"],
         "openvino_model_qint8_quantized.bin"]
    )  # fmt: skip
    assert read_export_info(folder) == info
    sample = read_calibration_texts()
    assert info["calibration"]["source"] == "bundled sample" and info["calibration"]["texts"] == len(sample)
    assert info["files"]["openvino-bf16"] == FILES["openvino"]
    import openvino as ov

    model = ov.Core().read_model(str(folder / OPENVINO_DIR / FILES["openvino"]))
    assert sorted(i.get_any_name() for i in model.inputs) == ["attention_mask", "input_ids", "token_type_ids"]
    assert [o.get_any_name() for o in model.outputs] == ["last_hidden_state"]
    loaded = SiameseEncoder.from_pretrained(folder)
    for backend in ("openvino", "openvino-bf16", "openvino-int8"):
        if backend == "openvino-bf16" and not cpu_has_bf16():
            continue
        assert loaded.runner(backend).path == folder / OPENVINO_DIR / info["files"][backend]


def test_changed_weights_never_use_a_stale_export(exported, tmp_path, caplog):
    folder = tmp_path / "m"
    shutil.copytree(exported[0], folder)
    enc = SiameseEncoder.from_pretrained(folder)
    with torch.no_grad():
        enc.transformer.embeddings.word_embeddings.weight.mul_(1.5)
    runner = enc.runner("openvino")
    assert runner.path.parent != folder / OPENVINO_DIR
    assert "other weights" in caplog.text
    np.testing.assert_allclose(enc.encode(TEXTS, backend="openvino"), enc.encode(TEXTS), atol=1e-5, rtol=0)


def test_calibration_texts_are_read_spread_and_checked(tmp_path):
    lines = [f"text {i}" for i in range(1000)]
    path = tmp_path / "calib.txt"
    path.write_text("\n".join(["", *lines, "text 3", "  "]) + "\n", encoding="utf-8")
    texts = read_calibration_texts(path, limit=5)
    assert texts == ["text 0", "text 250", "text 500", "text 749", "text 999"]  # spread, distinct
    assert read_calibration_texts(path, limit=2000) == lines
    assert len(read_calibration_texts()) == 300
    assert len(CALIBRATION_SAMPLE.read_text(encoding="utf-8").splitlines()) == 760
    with pytest.raises(ConfigError, match="no such file"):
        read_calibration_texts(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no texts to calibrate on"):
        read_calibration_texts(tmp_path / "empty.txt")
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ConfigError, match="expected UTF-8"):
        read_calibration_texts(tmp_path / "bad.txt")


def test_corrupt_export_info_and_unsafe_names_are_refused(tiny_bert_dir):
    folder = tiny_bert_dir / OPENVINO_DIR
    folder.mkdir()
    (folder / EXPORT_INFO).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFormatError, match="expected the JSON that export_openvino writes"):
        read_export_info(tiny_bert_dir)
    (folder / EXPORT_INFO).write_text(json.dumps({"files": {"openvino": "../x.xml"}}), encoding="utf-8")
    with pytest.raises(ModelFormatError, match="cannot be used in a file name"):
        read_export_info(tiny_bert_dir)


def test_cli_export_with_own_calibration_then_encode(tiny_bert_dir, tmp_path, capsys):
    calib = tmp_path / "calib.txt"
    calib.write_text("\n".join(MANY) + "\n", encoding="utf-8")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    argv = ["export", "--model", str(tiny_bert_dir), "--format", "openvino", "--no-measure"]
    assert main([*argv, "--calibration-texts", str(calib)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["files"]) == {"openvino", "openvino-bf16", "openvino-int8"}
    info = read_export_info(tiny_bert_dir)
    assert info["calibration"]["source"] == str(calib) and info["calibration"]["texts"] == len(MANY)
    assert not (tiny_bert_dir / "onnx").exists() and not (tiny_bert_dir / "backends.json").exists()
    outputs = {}
    for backend in ("torch", "openvino", "openvino-int8"):
        out = tmp_path / f"{backend}.npy"
        encode = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), "-q"]
        assert main([*encode, "--backend", backend]) == 0
        outputs[backend] = np.load(out)
    np.testing.assert_allclose(outputs["openvino"], outputs["torch"], atol=1e-5, rtol=0)
    assert _cosines(outputs["openvino-int8"], outputs["torch"]).min() > 0.98
    assert main([*argv, "--calibration-texts", str(tmp_path / "nope.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_encode_places_batches_a_runner_returns_out_of_order(tiny_encoder):
    """A runner may return batches in any order (each carries its indices); encode puts rows back."""

    class Reversed:
        def stream(self, items):
            done = [(item, tiny_encoder.transformer(**item[1], return_dict=True)[0]) for item in items]
            yield from reversed(done)

    version = tuple((id(p), p._version) for p in tiny_encoder.transformer.parameters())
    tiny_encoder._runners["onnx"] = (version, Reversed())
    expected = tiny_encoder.encode(MANY, batch_size=4)
    got = tiny_encoder.encode(MANY, batch_size=4, backend="onnx")
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
