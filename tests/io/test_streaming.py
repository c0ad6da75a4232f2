"""Sharded encoding to disk: same embeddings as one in-memory encode, resume after an interruption, refusal
to mix texts or options, torn shards detected."""

from __future__ import annotations

import numpy as np
import pytest

from sbert_siamese import ConfigError
from sbert_siamese.errors import ModelFormatError
from sbert_siamese.io.streaming import MANIFEST, encode_to_disk, fingerprint, load_embeddings

TEXTS = [f"sentence number {i} about {'cats' if i % 3 else 'the weather'} today" for i in range(23)]


class Interrupted(RuntimeError):
    pass


class CountingEncoder:
    """Wraps an encoder; counts encode calls and can fail on the n-th call (a killed process)."""

    def __init__(self, encoder, fail_on: int | None = None):
        self.encoder, self.fail_on, self.calls = encoder, fail_on, 0

    def encode(self, texts, **kwargs):
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise Interrupted("killed")
        return self.encoder.encode(texts, **kwargs)


def test_sharded_encode_equals_one_encode(tiny_encoder, tmp_path):
    report = encode_to_disk(tiny_encoder, TEXTS, tmp_path / "emb", shard_size=5, batch_size=4)
    assert report == {"shards": 5, "reused": 0, "encoded": 5, "count": 23, "dimension": 32, "truncated": 0}
    stored = load_embeddings(tmp_path / "emb")
    assert stored.shape == (23, 32) and stored.dtype == np.float32
    np.testing.assert_allclose(stored, tiny_encoder.encode(TEXTS, batch_size=4), atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == [
        MANIFEST,
        *[f"shard_{i:05d}.npy" for i in range(5)],
    ]


def test_interrupted_encode_resumes_with_only_the_missing_shards(tiny_encoder, tmp_path):
    folder = tmp_path / "emb"
    crashing = CountingEncoder(tiny_encoder, fail_on=3)
    with pytest.raises(Interrupted):
        encode_to_disk(crashing, TEXTS, folder, shard_size=5)
    assert sorted(p.name for p in folder.glob("shard_*.npy")) == ["shard_00000.npy", "shard_00001.npy"]
    with pytest.raises(ModelFormatError, match="shard_00002.npy: missing or incomplete"):
        load_embeddings(folder)
    # a torn write of shard 2 (e.g. a kill during a copy by hand) is not mistaken for a complete shard
    (folder / "shard_00002.npy").write_bytes(b"\x93NUMPY garbage")
    again = CountingEncoder(tiny_encoder)
    report = encode_to_disk(again, TEXTS, folder, shard_size=5)
    assert (report["reused"], report["encoded"], again.calls) == (2, 3, 3)
    np.testing.assert_allclose(load_embeddings(folder), tiny_encoder.encode(TEXTS), atol=1e-5)
    # a third run has nothing left to do
    idle = CountingEncoder(tiny_encoder)
    assert encode_to_disk(idle, TEXTS, folder, shard_size=5)["reused"] == 5 and idle.calls == 0


def test_other_texts_or_options_are_refused(tiny_encoder, tmp_path):
    folder = tmp_path / "emb"
    encode_to_disk(tiny_encoder, TEXTS, folder, shard_size=5)
    with pytest.raises(ConfigError, match="other fingerprint"):
        encode_to_disk(tiny_encoder, TEXTS[::-1], folder, shard_size=5)
    with pytest.raises(ConfigError, match="other shard_size"):
        encode_to_disk(tiny_encoder, TEXTS, folder, shard_size=6)
    with pytest.raises(ConfigError, match="other normalize"):
        encode_to_disk(tiny_encoder, TEXTS, folder, shard_size=5, normalize=True)
    stray = tmp_path / "stray"
    stray.mkdir()
    np.save(stray / "shard_00000.npy", np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="no manifest.json"):
        encode_to_disk(tiny_encoder, TEXTS, stray)
    with pytest.raises(ConfigError, match="shard_size must be >= 1"):
        encode_to_disk(tiny_encoder, TEXTS, tmp_path / "x", shard_size=0)


def test_fingerprint_separates_texts():
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])
    assert fingerprint(["a", "b"]) != fingerprint(["b", "a"])
    assert fingerprint(["é"]) == fingerprint(["é"])


def test_weights_fingerprint_tells_models_apart(tiny_encoder):
    import torch

    from sbert_siamese.io.streaming import weights_fingerprint

    before = weights_fingerprint(tiny_encoder)
    assert weights_fingerprint(tiny_encoder) == before
    with torch.no_grad():
        next(tiny_encoder.parameters())[0, 0] += 1e-3  # one weight of a "retrained" model
    assert weights_fingerprint(tiny_encoder) != before
