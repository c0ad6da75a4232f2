"""``Archive``: answers against the model's own embeddings, decisions under each kind of threshold, the head,
ids, removal, compaction, and an index that is missing, stale, or behind another process's commits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbert_siamese.archive import Archive
from sbert_siamese.archive.vectors import INDEX_DIR
from sbert_siamese.errors import ArchiveError, ConfigError, UnknownIdError
from sbert_siamese.models.heads import SoftmaxHead, WeightedL1Head
from sbert_siamese.models.siamese import SiameseModel
from sbert_siamese.models.threshold import Threshold

from .conftest import QUESTIONS


def cosine(u, v):
    return (u / np.linalg.norm(u, axis=1, keepdims=True)) @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T


@pytest.fixture
def archive(model_dir, tmp_path):
    with Archive.create(tmp_path / "qa", model_dir, threshold=0.9) as a:
        a.add(QUESTIONS)
        yield a


def test_query_is_the_brute_force_top_k_with_decisions(archive):
    model = archive.model
    queries = ["learn python", "riding horses", "a noisy fan"]
    results = archive.query(queries, top_k=5)
    scores = cosine(model.encode(queries), model.encode(QUESTIONS))
    for q, matches in enumerate(results):
        assert [m.id for m in matches] == np.argsort(-scores[q], kind="stable")[:5].tolist()
        for m in matches:
            assert m.text == QUESTIONS[m.id]
            assert m.score == pytest.approx(scores[q, m.id], abs=1e-5)
            assert m.duplicate is bool(scores[q, m.id] >= 0.9)
            assert m.probability is None and m.metadata is None


def test_ids_count_on_from_the_largest_ever_given(archive):
    assert archive.add(["first new"], ids=[100]) == [100]
    assert archive.remove([100]) == [100]
    assert archive.add(["second new"]) == [101]  # 100 was removed but is not handed out again
    assert archive.add(["second new"], ids=[101]) == [101]  # same id, same text: nothing new
    assert len(archive) == len(QUESTIONS) + 1


def test_an_id_clash_adds_nothing(archive):
    with pytest.raises(ArchiveError) as err:
        archive.add(["brand new", "another text"], ids=[500, 3])
    assert err.value.field == "ids[1]"
    assert len(archive) == len(QUESTIONS)
    with pytest.raises(UnknownIdError):
        archive.get(500)


@pytest.mark.parametrize(
    "texts, ids, metadata, field",
    [
        ("one string", None, None, "texts"),
        ([], None, None, "texts"),
        (["ok", " "], None, None, "texts[1]"),
        (["ok", 3], None, None, "texts[1]"),
        (["a", "b"], [1], None, "ids"),
        (["a"], [-1], None, "ids[0]"),
        (["a"], [True], None, "ids[0]"),
        (["a", "b"], [7, 7], None, "ids"),
        (["a"], None, [{"k": 1}, None], "metadata"),
        (["a"], None, ["x"], "metadata[0]"),
        (["a"], None, [{"k": {1, 2}}], "metadata[0]"),
    ],
)
def test_bad_adds_name_the_argument(archive, texts, ids, metadata, field):
    with pytest.raises(ArchiveError) as err:
        archive.add(texts, ids=ids, metadata=metadata)
    assert err.value.field == field
    assert len(archive) == len(QUESTIONS)


def test_removed_questions_never_come_back_and_compact_frees_them(archive):
    gone = [0, 1, 4]
    assert archive.remove(gone + [999]) == gone
    hits = archive.query(QUESTIONS, top_k=len(QUESTIONS))
    assert all(m.id not in gone for matches in hits for m in matches)
    assert all(len(matches) == len(QUESTIONS) - 3 for matches in hits)
    report = archive.compact()
    assert report["vectors_freed"] == 3 and report["after"] == {"questions": 9, "removed": 3, "vectors": 9}
    assert [m.id for m in archive.query(QUESTIONS[2:3], top_k=1)[0]] == [2]


def test_metadata_round_trips(archive):
    (qid,) = archive.add(["with metadata"], metadata=[{"url": "https://example.org/q/1", "tags": ["a"]}])
    assert archive.get(qid).to_dict() == {
        "id": qid,
        "text": "with metadata",
        "metadata": {"url": "https://example.org/q/1", "tags": ["a"]},
    }
    assert archive.query(["with metadata"], top_k=1)[0][0].metadata["tags"] == ["a"]


def test_reopen_catches_up_with_a_stale_or_missing_index(archive, tmp_path):
    path = archive.path
    archive.add(["added after the index was saved"])
    archive.close()
    index_info = json.loads((path / INDEX_DIR / "index.json").read_text())
    assert index_info["upto_seq"] < 13  # the saved index is behind the database
    with Archive.open(path) as again:
        assert [m.text for m in again.query(["added after the index was saved"], top_k=1)[0]] == [
            "added after the index was saved"
        ]
    for file in (path / INDEX_DIR).iterdir():
        file.unlink()
    with Archive.open(path) as again:
        assert len(again.index) == len(QUESTIONS) + 1


def test_a_second_archive_object_sees_the_others_commits(archive):
    with Archive.open(archive.path, model=archive.model) as other:
        other.add(["written by another process"], ids=[777])
        other.remove([2])
    (match,) = archive.query(["written by another process"], top_k=1)[0]
    assert match.id == 777
    assert 2 not in [m.id for m in archive.query([QUESTIONS[2]], top_k=3)[0]]


def test_another_model_is_refused(archive, tmp_path):
    from tests.conftest import build_tiny_bert

    other = build_tiny_bert(tmp_path / "other", hidden_size=40)
    with pytest.raises(ArchiveError, match="fingerprint") as err:
        Archive.open(archive.path, model=other)
    assert err.value.field == "model"


def test_create_refuses_a_non_empty_folder_and_open_a_non_archive(model_dir, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ArchiveError, match="not an empty folder"):
        Archive.create(tmp_path / "full", model_dir)
    with pytest.raises(ArchiveError, match="not an archive"):
        Archive.open(tmp_path / "full")
    with pytest.raises(ConfigError, match="unknown index kind"):
        Archive.create(tmp_path / "new", model_dir, index="annoy")


def test_without_a_threshold_decisions_are_none(model_dir, tmp_path):
    with Archive.create(tmp_path / "qa", model_dir) as a:
        a.add(QUESTIONS[:3])
        assert a.threshold is None
        assert {m.duplicate for m in a.query(["learn python"], top_k=3)[0]} == {None}


def test_a_distance_threshold_decides_on_the_stored_embeddings(model_dir, tmp_path):
    rule = Threshold(score="euclidean", threshold=1.0)
    with Archive.create(tmp_path / "qa", model_dir, threshold=rule) as a:
        a.add(QUESTIONS)
        matches = a.query(["learn python"], top_k=5)[0]
        u = a.model.encode(["learn python"])
        v = a.model.encode([m.text for m in matches])
        assert [m.duplicate for m in matches] == [bool(d <= 1.0) for d in np.linalg.norm(u - v, axis=1)]


def _with_head(model_dir, tmp_path, head_type):
    model = SiameseModel.load(model_dir)
    dim = model.encoder.embedding_dim
    torch.manual_seed(0)
    if head_type == "verification":
        head, labels = WeightedL1Head(dim), None
    else:
        head, labels = SoftmaxHead(dim, 3), ["entailment", "neutral", "contradiction"]
    with_head = SiameseModel(model.encoder, head=head, label_names=labels)
    if head_type == "verification":
        with_head.threshold = Threshold(score="head", threshold=0.5)
    return with_head.save(tmp_path / f"model-{head_type}")


def test_a_verification_head_rescores_the_matches(model_dir, tmp_path):
    with Archive.create(tmp_path / "qa", _with_head(model_dir, tmp_path, "verification")) as a:
        a.add(QUESTIONS)
        matches = a.query(["learn python"], top_k=4)[0]
        u = torch.from_numpy(a.model.encode(["learn python"] * 4))
        v = torch.from_numpy(a.model.encode([m.text for m in matches]))
        same = a.model.head_probabilities(u, v)[:, 1].numpy()
        assert [m.probability for m in matches] == pytest.approx(same.tolist(), abs=1e-5)
        assert [m.duplicate for m in matches] == [bool(p >= 0.5) for p in same]


def test_a_three_class_head_gives_its_class_probabilities(model_dir, tmp_path):
    with Archive.create(tmp_path / "qa", _with_head(model_dir, tmp_path, "softmax")) as a:
        a.add(QUESTIONS[:4])
        match = a.query(["learn python"], top_k=1)[0][0]
        assert set(match.probabilities) == {"entailment", "neutral", "contradiction"}
        assert sum(match.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert match.probability is None


def test_similarity_scores_pairs_like_query(archive):
    verdict = archive.similarity(["learn python"], [QUESTIONS[0]])
    (match,) = [m for m in archive.query(["learn python"], top_k=12)[0] if m.id == 0]
    assert verdict.scores[0] == pytest.approx(match.score, abs=1e-6)
    assert verdict.duplicate == [match.duplicate]


def test_info(archive):
    info = archive.info()
    assert info["questions"] == len(QUESTIONS) and info["removed"] == 0 and info["largest_id"] == 11
    assert info["index"]["built"] == "exact" and info["threshold"]["threshold"] == 0.9
    assert info["model"]["fingerprint"] == archive.fingerprint


def test_a_faiss_index_is_saved_at_close_and_caught_up_after_a_crash(model_dir, tmp_path):
    path = tmp_path / "qa"
    with Archive.create(path, model_dir, index="hnsw") as a:
        a.add(QUESTIONS[:6])
    saved = json.loads((path / INDEX_DIR / "index.json").read_text())
    assert (saved["kind"], saved["rows"]) == ("hnsw", 6)  # written at close
    crashed = Archive.open(path)
    crashed.add(QUESTIONS[6:])  # then the process dies: no close, no save
    with Archive.open(path) as again:
        assert again.info()["index"] == {
            "kind": "hnsw",
            "built": "hnsw",
            "indexed": 12,
            "added_since_build": 0,
        }
        assert [m.id for m in again.query([QUESTIONS[9]], top_k=1)[0]] == [9]
    crashed.store.close()


@pytest.mark.parametrize("kind", ["auto", "hnsw"])
def test_a_commit_of_another_process_just_before_ours_is_not_lost(model_dir, tmp_path, kind):
    """Another process commits between our last look and our write: our write must catch up first (it
    used to take a seq above theirs and never look back)."""
    with Archive.create(tmp_path / "qa", model_dir, index=kind) as a, Archive.open(tmp_path / "qa") as b:
        a.add(QUESTIONS[:2])
        a.query(["warm"], top_k=1)  # a has looked at the database
        begin = a.store.transaction

        def other_process_commits_first():
            a.store.transaction = begin
            b.add(["written by the other process"], ids=[50])
            b.remove([1])
            return begin()

        a.store.transaction = other_process_commits_first
        a.add(["written by us"], ids=[60])
        assert len(a.index) == len(a) == 3
        assert [m.id for m in a.query(["written by the other process"], top_k=1)[0]] == [50]
        assert 1 not in [m.id for m in a.query([QUESTIONS[1]], top_k=3)[0]]


def test_vectors_of_the_wrong_shape_are_refused_before_anything_is_written(archive):
    with pytest.raises(ArchiveError, match="shape") as err:
        archive.add(["a text"], vectors=np.zeros((1, 5), np.float32))
    assert err.value.field == "vectors" and len(archive) == len(QUESTIONS)


@pytest.mark.parametrize(
    "texts, ids, metadata, field",
    [
        (["lone \ud800 surrogate"], None, None, "texts[0]"),
        (["a"], None, [{"\udc00": 1}], "metadata[0]"),
        (["a"], None, [{"k": float("nan")}], "metadata[0]"),
        (["a"], [2**53], None, "ids[0]"),
    ],
)
def test_what_could_not_be_served_back_is_refused(archive, texts, ids, metadata, field):
    with pytest.raises(ArchiveError) as err:
        archive.add(texts, ids=ids, metadata=metadata)
    assert err.value.field == field and len(archive) == len(QUESTIONS)


def test_deep_metadata_is_refused(archive):
    deep = {}
    for _ in range(40):
        deep = {"k": deep}
    with pytest.raises(ArchiveError, match="nested") as err:
        archive.add(["a"], metadata=[deep])
    assert err.value.field == "metadata[0]"


def test_auto_backend_is_decided_at_create_and_stored_as_the_real_one(model_dir, tmp_path):
    """Every vector of an archive comes from one backend: auto is resolved once (here: no measured choice,
    so the fallback) and the manifest names that backend, not 'auto'."""
    from sbert_siamese.backends.choice import FALLBACK

    with Archive.create(tmp_path / "auto", model_dir, backend="auto") as a:
        assert a.backend == FALLBACK
    manifest = json.loads((tmp_path / "auto" / "archive.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == FALLBACK
