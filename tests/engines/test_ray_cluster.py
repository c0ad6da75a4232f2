"""--engine ray on a two-node cluster simulated on this machine (``ray.cluster_utils.Cluster``), driven the
way users drive it: the command in its own process, joining with --ray-address. The actors land on both
nodes; a driver killed mid-job resumes from its shards; dedup on real questions equals exact search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from sbert_siamese.cli import main
from sbert_siamese.io.streaming import load_embeddings

from .conftest import check_rows_once, manifest, sidecars

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'sbert-siamese[ray]')")

pytestmark = pytest.mark.long


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    nodes.add_node(num_cpus=1)
    yield nodes
    nodes.shutdown()


def cli(*args, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sbert_siamese", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def local_npy(capsys, model, source, output) -> np.ndarray:
    assert main(["encode", "--model", str(model), "--input", str(source), "--output", str(output), "-q"]) == 0
    capsys.readouterr()
    return np.load(output)


def test_actors_on_two_nodes_write_the_local_embeddings(cluster, tiny_bert_dir, corpus, tmp_path, capsys):
    expected = local_npy(capsys, tiny_bert_dir, corpus, tmp_path / "local.npy")
    folder = tmp_path / "ray"
    # relative paths, as a user types them: the workers (started elsewhere) resolve them as the driver does
    result = cli("encode", "--model", tiny_bert_dir, "--input", corpus.name, "--output", "ray",
                 "--shard-size", 15, "--engine", "ray", "--ray-address", cluster.address, "--actors", 2,
                 "-q", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["count"] == 120
    assert len({info["node"] for info in sidecars(folder)}) == 2  # one actor on each node
    assert np.abs(load_embeddings(folder) - expected).max() <= 1e-6
    check_rows_once(folder, list(range(1, 121)))


def test_a_driver_killed_mid_job_resumes_from_its_shards(cluster, tiny_bert_dir, corpus, tmp_path, capsys):
    from sbert_siamese.engines.ray import FAULTS_ENV

    expected = local_npy(capsys, tiny_bert_dir, corpus, tmp_path / "local.npy")
    folder = tmp_path / "ray"
    args = ["encode", "--model", tiny_bert_dir, "--input", corpus, "--output", folder, "--shard-size", 10,
            "--engine", "ray", "--ray-address", cluster.address, "--actors", 2, "-q"]  # fmt: skip
    killed = cli(*args, env={FAULTS_ENV: "driver:3"})  # SIGKILL once 3 shards are reported done
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert manifest(folder)["count"] is None  # unfinished
    finished = len(sidecars(folder))
    assert 3 <= finished < 12
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert report["reused"] >= 3 and report["reused"] + report["encoded"] == report["shards"] == 12
    check_rows_once(folder, list(range(1, 121)))
    assert np.abs(load_embeddings(folder) - expected).max() <= 1e-6


@pytest.mark.slow
def test_dedup_of_real_questions_on_the_cluster_equals_exact_search(
    cluster, shared_data_dir, packaged_minilm, tmp_path
):
    source = shared_data_dir / "qqp-positives" / "qqp_positives.tsv"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    questions = tmp_path / "questions.txt"
    lines = source.read_text(encoding="utf-8").splitlines()[1:1001]
    texts = [t for line in lines for t in line.split("\t")[3:5]]  # question1, question2: 2000 texts
    questions.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
    common = ["dedup", "--model", packaged_minilm, "--input", questions, "--threshold", 0.85, "-q"]
    local = cli(*common, "--output", tmp_path / "exact.jsonl", "--index", "exact")
    assert local.returncode == 0, local.stderr[-3000:]
    ours = cli(*common, "--output", tmp_path / "ray.jsonl", "--engine", "ray", "--ray-address",
               cluster.address, "--shard-size", 400)  # fmt: skip
    assert ours.returncode == 0, ours.stderr[-3000:]

    def pairs(name):
        rows = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        return sorted((r["i"], r["j"], r["score"], r["text_i"], r["text_j"]) for r in rows)

    exact, found = pairs("exact.jsonl"), pairs("ray.jsonl")
    assert len(exact) >= 500  # the duplicate pairs of QQP, and more
    assert [p[:2] + p[3:] for p in found] == [p[:2] + p[3:] for p in exact]
    assert np.allclose([p[2] for p in found], [p[2] for p in exact], atol=1e-5)

    def groups(name):  # the representative: the same text (two copies of a text may swap on float noise)
        rows = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        return sorted((g["members"], g["representative_text"]) for g in rows)

    assert groups("ray.groups.jsonl") == groups("exact.groups.jsonl")
