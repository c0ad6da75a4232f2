"""``--backend auto``: the measured losses are the ones defined (exact backends 0, label-free loss against a
brute-force Spearman, dev-pair loss against the metric's own value), the choice is the fastest within the
budget, and ``auto`` resolves to it only for the weights it was measured on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from sbert_siamese import SiameseEncoder  # noqa: E402
from sbert_siamese.backends.choice import (  # noqa: E402
    CHOICE_FILE,
    FALLBACK,
    choose,
    measure_backends,
    read_choice,
    resolve,
    write_choice,
)
from sbert_siamese.backends.onnx import weights_fingerprint  # noqa: E402
from sbert_siamese.cli import main  # noqa: E402
from sbert_siamese.errors import ConfigError, ModelFormatError  # noqa: E402

TEXTS = [f"sentence {i} about {topic}" for i in range(8) for topic in ("cats", "the weather", "cooking")]

MEASURED = {
    "backends": {
        "torch": {"texts_per_s": 100.0, "loss": 0.0},
        "onnx": {"texts_per_s": 150.0, "loss": 0.0},
        "openvino-bf16": {"texts_per_s": 300.0, "loss": 0.0004},
        "openvino-int8": {"texts_per_s": 500.0, "loss": 0.004},
        "onnx-int8": {"texts_per_s": 600.0, "loss": 0.02},
        "openvino": {"skipped": "no such thing here"},
    }
}


def test_choose_takes_the_fastest_within_the_budget():
    assert choose(MEASURED) == "openvino-int8"
    assert choose(MEASURED, 0.001) == "openvino-bf16"
    assert choose(MEASURED, 0.0) == "onnx"
    tied = {"backends": {**MEASURED["backends"], "onnx-int8": {"texts_per_s": 600.0, "loss": 0.0}}}
    assert choose(tied, 0.0) == "onnx"  # budget 0: exact backends only, even if a reduced one ties
    assert choose(MEASURED, 1.0) == "onnx-int8"
    with pytest.raises(ConfigError, match="budget must be >= 0"):
        choose(MEASURED, -0.1)


def test_measured_losses_match_their_definitions(tiny_encoder):
    from scipy.stats import spearmanr

    measured = measure_backends(tiny_encoder, TEXTS, backends=("torch", "onnx", "onnx-int8"), rounds=1)
    rows = measured["backends"]
    assert rows["torch"]["loss"] == 0.0 and rows["onnx"]["loss"] == 0.0
    assert all(r["texts_per_s"] > 0 for r in rows.values())
    # the label-free loss, recomputed by brute force over every pair of texts the function drew
    rng = np.random.default_rng(0)
    left, right = rng.integers(0, len(TEXTS), 20_000), rng.integers(0, len(TEXTS), 20_000)
    keep = left != right
    left, right = left[keep], right[keep]

    def sims(e):
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        return (e[left] * e[right]).sum(1)

    fp32 = tiny_encoder.encode(TEXTS)
    int8 = tiny_encoder.encode(TEXTS, backend="onnx-int8")
    expected = 1 - spearmanr(sims(fp32), sims(int8)).correlation
    assert rows["onnx-int8"]["loss"] == pytest.approx(expected, abs=2e-6)
    assert rows["onnx-int8"]["loss"] > 0

    # with labelled pairs: |metric(fp32) - metric(int8)|, the metric being AP for 0/1 labels
    from sbert_siamese.evaluation.plots import average_precision

    a, b, labels = TEXTS[:12], TEXTS[12:], [1, 0] * 6
    measured = measure_backends(tiny_encoder, TEXTS, (a, b, labels), ("torch", "onnx-int8"), rounds=1)

    def ap(backend):
        ea, eb = tiny_encoder.encode(a, backend=backend), tiny_encoder.encode(b, backend=backend)
        cos = (ea * eb).sum(1) / np.linalg.norm(ea, axis=1) / np.linalg.norm(eb, axis=1)
        return average_precision(cos, np.array(labels, dtype=float))

    assert measured["quality"] == "dev pairs"
    assert measured["backends"]["torch"]["ap"] == pytest.approx(ap("torch"), abs=1e-6)
    assert measured["backends"]["onnx-int8"]["loss"] == pytest.approx(
        abs(ap("torch") - ap("onnx-int8")), abs=2e-6
    )


def test_auto_resolves_to_the_choice_for_these_weights_only(tiny_bert_dir, caplog):
    from sbert_siamese.backends.onnx import export_onnx
    from sbert_siamese.backends.openvino import cpu_has_bf16, export_openvino

    enc = SiameseEncoder.from_pretrained(tiny_bert_dir)
    assert resolve(enc, "auto") == FALLBACK  # nothing measured yet
    assert resolve(enc, "onnx-int8") == "onnx-int8"
    export_onnx(enc, tiny_bert_dir, int8=False)
    export_openvino(enc, tiny_bert_dir, int8=False)  # no int8 files: those measurements cannot be chosen
    record = write_choice(tiny_bert_dir, weights_fingerprint(enc), MEASURED, budget=0.001)
    assert record["choice"] == "openvino-bf16" and read_choice(tiny_bert_dir)["choice"] == "openvino-bf16"
    assert resolve(enc, "auto") == ("openvino-bf16" if cpu_has_bf16() else "onnx")
    # a new backends.json is read again; its choice (openvino-int8) has no file, so the next best is used
    write_choice(tiny_bert_dir, weights_fingerprint(enc), MEASURED, budget=0.01)
    assert read_choice(tiny_bert_dir)["choice"] == "openvino-int8"
    assert resolve(enc, "auto") == ("openvino-bf16" if cpu_has_bf16() else "onnx")
    with torch.no_grad():
        enc.transformer.embeddings.word_embeddings.weight.mul_(2.0)
    assert resolve(enc, "auto") == FALLBACK  # measured on other weights
    with pytest.raises(ConfigError, match="backend must be one of"):
        resolve(enc, "fastest")
    (tiny_bert_dir / CHOICE_FILE).write_text(json.dumps({"choice": "tpu"}), encoding="utf-8")
    with pytest.raises(ModelFormatError, match="'choice' is one of"):
        read_choice(tiny_bert_dir)


def test_auto_names_the_real_backend_in_a_shard_manifest(tiny_bert_dir, tmp_path):
    from sbert_siamese.io.streaming import encode_to_disk

    enc = SiameseEncoder.from_pretrained(tiny_bert_dir)
    encode_to_disk(enc, TEXTS, tmp_path / "shards", shard_size=10, backend="auto")
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == FALLBACK


@pytest.mark.long
def test_cli_export_measures_and_encode_auto_uses_the_choice(tiny_bert_dir, tmp_path, capsys):
    dev = tmp_path / "dev.tsv"
    rows = [f"{TEXTS[i]}\t{TEXTS[i + 12]}\t{i % 2}" for i in range(12)]
    dev.write_text("sentence1\tsentence2\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    argv = ["export", "--model", str(tiny_bert_dir), "--dev-data", str(dev), "--quality-budget", "0"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    record = read_choice(tiny_bert_dir)
    exact = {b: record["backends"][b]["texts_per_s"] for b in ("torch", "onnx", "openvino")}
    assert report["auto"] == max(exact, key=exact.get)  # budget 0: the fastest exact backend
    assert record["quality"] == "dev pairs" and record["choice"] == report["auto"]
    assert set(record["backends"]) == {
        "torch",
        "onnx",
        "onnx-int8",
        "openvino",
        "openvino-bf16",
        "openvino-int8",
    }
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = {}
    for backend in ("auto", "torch"):
        out[backend] = tmp_path / f"{backend}.npy"
        encode = [
            "encode",
            "--model",
            str(tiny_bert_dir),
            "--input",
            str(texts),
            "--output",
            str(out[backend]),
        ]
        assert main([*encode, "-q", "--backend", backend]) == 0
    np.testing.assert_allclose(np.load(out["auto"]), np.load(out["torch"]), atol=1e-5, rtol=0)
    # an export without measuring drops the old choice: it may name a file that export replaced
    assert main(["export", "--model", str(tiny_bert_dir), "--no-int8", "--no-measure"]) == 0
    assert not (tiny_bert_dir / CHOICE_FILE).exists()
    capsys.readouterr()
    # STS-style scores: --dev-format stsb reads scores (Spearman) without --dev-target
    sts = tmp_path / "sts.csv"
    sts.write_text(
        "".join(f"g\tf\ty\t{i}\t{i % 5}.0\t{TEXTS[i]}\t{TEXTS[i + 12]}\n" for i in range(12)),
        encoding="utf-8",
    )
    argv = [
        "export",
        "--model",
        str(tiny_bert_dir),
        "--format",
        "onnx",
        "--dev-data",
        str(sts),
        "--dev-format",
        "stsb",
    ]
    assert main(argv) == 0
    record = read_choice(tiny_bert_dir)
    from scipy.stats import spearmanr

    enc = SiameseEncoder.from_pretrained(tiny_bert_dir)
    a, b = enc.encode(TEXTS[:12]), enc.encode(TEXTS[12:])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    expected = spearmanr(cos, [(i % 5) / 5 for i in range(12)]).correlation
    assert record["backends"]["torch"]["spearman"] == pytest.approx(expected, abs=1e-5)
    assert set(record["backends"]) == {
        "torch",
        "onnx",
        "onnx-int8",
        "openvino",
        "openvino-bf16",
    }  # kept exports
