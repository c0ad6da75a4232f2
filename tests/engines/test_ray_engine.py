"""--engine ray on a Ray started by the test (2 CPUs): the same outputs as the local engine, the same errors,
a killed actor retried with no row lost or written twice, and the shard-parallel searches."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from sbert_siamese.cli import main
from sbert_siamese.io.streaming import load_embeddings

from .conftest import check_rows_once, corpus_texts, manifest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'sbert-siamese[ray]')")

pytestmark = pytest.mark.long

RAY = ["--engine", "ray", "-q"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def run(capsys, *args) -> dict:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def encode_local(capsys, model, source, output, *extra):
    run(capsys, "encode", "--model", model, "--input", source, "--output", output, "-q", *extra)
    return np.load(output)


def test_encode_to_a_directory_and_to_npy_equals_the_local_engine(tiny_bert_dir, corpus, tmp_path, capsys):
    expected = encode_local(capsys, tiny_bert_dir, corpus, tmp_path / "local.npy")
    folder = tmp_path / "ray"
    report = run(capsys, "encode", "--model", tiny_bert_dir, "--input", corpus, "--output", folder,
                 "--shard-size", 25, *RAY)  # fmt: skip
    assert (report["shards"], report["encoded"], report["reused"], report["count"]) == (5, 5, 0, 120)
    assert np.abs(load_embeddings(folder) - expected).max() <= 1e-6
    check_rows_once(folder, list(range(1, 121)))
    assert manifest(folder)["sources"][0]["path"] == str(corpus)

    # a rerun reuses every shard
    again = run(capsys, "encode", "--model", tiny_bert_dir, "--input", corpus, "--output", folder,
                "--shard-size", 25, *RAY)  # fmt: skip
    assert (again["reused"], again["encoded"]) == (5, 0)

    npy = tmp_path / "ray.npy"
    run(
        capsys,
        "encode",
        "--model",
        tiny_bert_dir,
        "--input",
        corpus,
        "--output",
        npy,
        "--shard-size",
        40,
        *RAY,
    )
    assert np.abs(np.load(npy) - expected).max() <= 1e-6
    assert not (tmp_path / "ray.npy.parts").exists()  # the shards are gone once the array is whole


def test_a_directory_input_with_bad_rows_skipped_matches_the_local_engine(
    tiny_bert_dir, mixed_dir, tmp_path, capsys, caplog
):
    skip = ["--column", "text", "--on-bad-rows", "skip"]
    local = tmp_path / "local.npy"
    code = main(["encode", "--model", str(tiny_bert_dir), "--input", str(mixed_dir), "--output", str(local),
                 "-q", *skip])  # fmt: skip
    local_out, _ = capsys.readouterr()
    assert code == 0
    ours = tmp_path / "ray.npy"
    code = main(["encode", "--model", str(tiny_bert_dir), "--input", str(mixed_dir), "--output", str(ours),
                 "--shard-size", "7", *RAY, *skip])  # fmt: skip
    ray_out, _ = capsys.readouterr()
    assert code == 0
    assert np.abs(np.load(ours) - np.load(local)).max() <= 1e-6
    assert json.loads(ray_out)["skipped_rows"] == json.loads(local_out)["skipped_rows"] == 2
    # which input line each row comes from: the same file, path:line with several inputs
    local_lines = (tmp_path / "local.lines.txt").read_text()
    assert (tmp_path / "ray.lines.txt").read_text() == local_lines
    assert f"{mixed_dir / 'c.jsonl'}:7\n" in local_lines
    # the summary of what was skipped names the same rows
    summaries = [r.getMessage() for r in caplog.records if "skipped 2 bad row(s)" in r.getMessage()]
    assert len(summaries) == 2 and summaries[0] == summaries[1]


def test_a_csv_input_is_resumed_too(tiny_bert_dir, tmp_path, capsys):
    source = tmp_path / "q.csv"
    source.write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(corpus_texts(40))))
    args = [
        "encode",
        "--model",
        tiny_bert_dir,
        "--input",
        source,
        "--output",
        tmp_path / "emb",
        "--shard-size",
        9,
    ]
    first = run(capsys, *args, *RAY)
    again = run(capsys, *args, *RAY)
    assert (first["encoded"], again["reused"], again["encoded"]) == (5, 5, 0)


@pytest.mark.parametrize(
    "name, content, column",
    [
        ("fields.csv", "id,text\n1,a\n2,b,c\n3,d\n", "text"),
        ("blank.txt", "a\nb\n\nd\n", "text"),
        ("json.jsonl", '{"text": "a"}\n{"text": 3}\n', "text"),
        ("column.csv", "id,question\n1,a\n", "text"),
        ("bytes.txt", b"a\nb\xfe\n", "text"),
    ],
)
def test_bad_input_gets_the_local_engines_error(tiny_bert_dir, tmp_path, capsys, name, content, column):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    errors = []
    for extra in ([], RAY):
        code = main(["encode", "--model", str(tiny_bert_dir), "--input", str(path), "--output",
                     str(tmp_path / "out.npy"), "--column", column, "-q", *extra])  # fmt: skip
        assert code == 2
        errors.append(capsys.readouterr().err.strip().splitlines()[-1])
    assert errors[0] == errors[1]
    assert f"{path}:" in errors[0] and "Traceback" not in errors[1]


def test_a_killed_actor_is_retried_and_no_row_is_lost_or_written_twice(
    tiny_bert_dir, corpus, tmp_path, capsys, monkeypatch
):
    from sbert_siamese.engines.ray import FAULTS_ENV

    expected = encode_local(capsys, tiny_bert_dir, corpus, tmp_path / "local.npy")
    folder = tmp_path / "ray"
    monkeypatch.setenv(FAULTS_ENV, "actor:2")  # the actor SIGKILLs itself after its second shard
    report = run(capsys, "encode", "--model", tiny_bert_dir, "--input", corpus, "--output", folder,
                 "--shard-size", 10, "--actors", 1, *RAY)  # fmt: skip
    assert (folder / ".fault-actor").exists()  # the kill happened
    assert report["encoded"] == report["shards"] == 12
    check_rows_once(folder, list(range(1, 121)))
    assert np.abs(load_embeddings(folder) - expected).max() <= 1e-6


def test_dedup_on_ray_writes_the_local_engines_pairs_and_groups(tiny_bert_dir, corpus, tmp_path, capsys):
    common = ["dedup", "--model", tiny_bert_dir, "--input", corpus, "--threshold", 0.999, "--top-k", 5]
    local = run(capsys, *common, "--output", tmp_path / "local.jsonl", "--index", "exact", "-q")
    ours = run(capsys, *common, "--output", tmp_path / "ray.jsonl", "--shard-size", 30, *RAY)
    assert ours["index"] == "exact" and ours["pairs"] == local["pairs"] >= 17
    local_pairs = [json.loads(x) for x in (tmp_path / "local.jsonl").read_text().splitlines()]
    ray_pairs = [json.loads(x) for x in (tmp_path / "ray.jsonl").read_text().splitlines()]
    # the same pairs, texts and scores (the order of pairs whose scores tie within float noise may differ)
    ray_pairs.sort(key=lambda p: (p["i"], p["j"]))
    local_pairs.sort(key=lambda p: (p["i"], p["j"]))
    assert [(p["i"], p["j"], p["text_i"], p["text_j"]) for p in ray_pairs] == [
        (p["i"], p["j"], p["text_i"], p["text_j"]) for p in local_pairs
    ]
    assert np.allclose([p["score"] for p in ray_pairs], [p["score"] for p in local_pairs], atol=1e-5)
    local_groups = (tmp_path / "local.groups.jsonl").read_text()
    assert (tmp_path / "ray.groups.jsonl").read_text() == local_groups
    assert not (tmp_path / ".ray.jsonl.embeddings").exists()  # the work folder is gone


def _planted(n: int = 3000, d: int = 64, seed: int = 0):
    """Random unit vectors and, for every tenth one, a near copy right after it: 300 planted pairs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    for i in range(0, n - 1, 10):
        x[i + 1] = x[i] + 0.05 * rng.standard_normal(d).astype(np.float32)
    return x


def same_pairs(found, expected) -> None:
    """The same (i, j) pairs with scores within float noise (whose order among near-ties may differ)."""
    found, expected = sorted(found), sorted(expected)
    assert [p[:2] for p in found] == [p[:2] for p in expected]
    assert np.allclose([p[2] for p in found], [p[2] for p in expected], atol=1e-5)


def _write_shards(folder, x, sizes):
    from sbert_siamese.io.streaming import MANIFEST, _shard_path

    folder.mkdir()
    start = 0
    for k, size in enumerate(sizes):
        np.save(_shard_path(folder, k), x[start : start + size])
        start += size
    (folder / MANIFEST).write_text(
        json.dumps({"count": len(x), "shard_size": max(sizes), "shard_rows": sizes})
    )


def test_ivf_built_from_shards_in_parallel_finds_the_exact_pairs(tmp_path):
    from sbert_siamese.engines.ray import RayEngine
    from sbert_siamese.search.duplicates import mine_duplicates

    x = _planted()
    _write_shards(tmp_path / "emb", x, [1000, 700, 1300])
    exact = mine_duplicates(x, threshold=0.9, top_k=5, index="exact")
    assert len(exact) >= 300
    with RayEngine() as engine:
        found, kind = engine.search_pairs(tmp_path / "emb", 0.9, "cosine", 5, "exact")
        assert kind == "exact"
        same_pairs(found, exact)
        # every list probed: IVF is exact, so the merge of the per-shard indexes lost nothing
        found, kind = engine.search_pairs(tmp_path / "emb", 0.9, "cosine", 5, "ivf", nlist=8, nprobe=8)
        assert kind == "ivf"
        same_pairs(found, exact)
        # IVF-PQ: 8 bytes a vector instead of 256, the planted pairs still found
        found, _ = engine.search_pairs(tmp_path / "emb", 0.8, "cosine", 5, "ivf-pq", nlist=8, nprobe=8)
        planted = {(i, i + 1) for i in range(0, 2999, 10)}
        assert len(planted & {p[:2] for p in found}) / len(planted) >= 0.95


def test_archive_add_on_ray_gives_the_local_ids_texts_and_vectors(tiny_bert_dir, tmp_path, capsys):
    source = tmp_path / "questions.csv"
    texts = corpus_texts(50)
    source.write_text("qid,question\n" + "".join(f'{1000 + i},"{t}"\n' for i, t in enumerate(texts)) + "7,\n")
    rows = {}
    for name, extra in (("local", ["-q"]), ("ray", ["--chunk-size", 12, *RAY])):
        folder = tmp_path / name
        run(capsys, "archive", "create", folder, "--model", tiny_bert_dir, "--threshold", 0.9)
        for _ in range(2):  # the second run adds nothing
            report = run(capsys, "archive", "add", folder, "--input", source, "--column", "question",
                         "--id-column", "qid", "--on-bad-rows", "skip", *extra)  # fmt: skip
        assert (report["added"], report["questions"]) == (0, 50)
        with sqlite3.connect(folder / "questions.sqlite") as db:
            rows[name] = db.execute("SELECT id, text, vector FROM questions ORDER BY seq").fetchall()
        assert not (folder / "ray-ingest").exists()
    assert [r[:2] for r in rows["ray"]] == [r[:2] for r in rows["local"]]
    assert [r[0] for r in rows["ray"]] == list(range(1000, 1050))
    worst = max(
        np.abs(np.frombuffer(a[2], np.float32) - np.frombuffer(b[2], np.float32)).max()
        for a, b in zip(rows["ray"], rows["local"], strict=True)
    )
    assert worst <= 1e-6


def test_archive_add_on_ray_of_a_header_without_rows_adds_nothing(tiny_bert_dir, tmp_path, capsys):
    source = tmp_path / "empty.csv"
    source.write_text("question\n\n")
    run(capsys, "archive", "create", tmp_path / "a", "--model", tiny_bert_dir)
    report = run(capsys, "archive", "add", tmp_path / "a", "--input", source, "--column", "question", *RAY)
    assert (report["added"], report["questions"]) == (0, 0)


def test_the_local_engine_never_imports_ray(tiny_bert_dir, corpus, tmp_path):
    script = (
        "import sys; from sbert_siamese.cli import main; "
        f"code = main(['encode', '--model', {str(tiny_bert_dir)!r}, '--input', {str(corpus)!r}, "
        f"'--output', {str(tmp_path / 'x.npy')!r}, '-q']); "
        "assert code == 0; assert 'ray' not in sys.modules, 'ray imported'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_without_ray_the_engine_says_how_to_install_it(tiny_bert_dir, corpus, tmp_path):
    script = (
        "import sys; sys.modules['ray'] = None; from sbert_siamese.cli import main; "
        f"sys.exit(main(['encode', '--model', {str(tiny_bert_dir)!r}, '--input', {str(corpus)!r}, "
        f"'--output', {str(tmp_path / 'x.npy')!r}, '--engine', 'ray', '-q']))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "pip install 'sbert-siamese[ray]'" in result.stderr and "Traceback" not in result.stderr


def test_ray_options_are_checked(tiny_bert_dir, corpus, tmp_path, capsys):
    base = [
        "encode",
        "--model",
        str(tiny_bert_dir),
        "--input",
        str(corpus),
        "--output",
        str(tmp_path / "x.npy"),
    ]
    assert main([*base, "--actors", "2"]) == 2
    assert "--actors applies to --engine ray" in capsys.readouterr().err
    assert main([*base, "--cpus-per-actor", "2"]) == 2
    assert "--cpus-per-actor applies to --engine ray" in capsys.readouterr().err
    assert main([*base, "--engine", "ray", "--gpus-per-actor", "1"]) == 2
    assert "--gpus-per-actor 1: no node of the cluster has that many GPUs" in capsys.readouterr().err
    assert main([*base, "--engine", "ray", "--actors", "0"]) == 2
    assert "--actors must be >= 1" in capsys.readouterr().err
