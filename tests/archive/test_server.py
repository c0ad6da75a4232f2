"""The HTTP service, started as users start it (``python -m sbert_siamese serve`` on a loopback port) and
spoken to over real HTTP: answers checked against the model's own embeddings, every class of bad request,
the API key, metrics, micro-batching, concurrent adds and ``kill -9``."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sbert_siamese.archive import Archive
from sbert_siamese.models.siamese import SiameseModel

from .conftest import QUESTIONS, SERVE, Server, make_archive, running


@pytest.fixture(scope="module")
def model(model_dir):
    return SiameseModel.load(model_dir)


@pytest.fixture(scope="module")
def writable(model_dir, tmp_path_factory):
    """A server whose archive the tests change (adds, removals)."""
    with running(
        make_archive(tmp_path_factory.mktemp("writable") / "qa", model_dir, threshold=0.9)
    ) as server:
        yield server


def cosine(u, v):
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return u @ v.T


def size(server) -> int:
    status, body = server.request("GET", "/health")
    assert status == 200
    return body["questions"]


# ---------------------------------------------------------------------------------------- answers
def test_duplicates_are_the_brute_force_neighbours(served, model):
    queries = ["how can i learn python", "a man plays a guitar", "cooking rice"]
    status, body = served.request("POST", "/duplicates", {"texts": queries, "top_k": 4})
    assert status == 200
    scores = cosine(model.encode(queries), model.encode(QUESTIONS))
    assert len(body["results"]) == 3
    for q, result in enumerate(body["results"]):
        assert result["text"] == queries[q]
        expected = np.argsort(-scores[q], kind="stable")[:4]
        got = [m["id"] for m in result["matches"]]
        assert got == expected.tolist()
        for match in result["matches"]:
            assert match["text"] == QUESTIONS[match["id"]]
            assert match["score"] == pytest.approx(scores[q, match["id"]], abs=1e-5)
            assert match["duplicate"] is bool(scores[q, match["id"]] >= 0.9)
            assert "probability" not in match  # no head


def test_an_archived_question_finds_itself(served):
    status, body = served.request("POST", "/duplicates", {"texts": [QUESTIONS[5]], "top_k": 1})
    assert status == 200
    (match,) = body["results"][0]["matches"]
    assert (match["id"], match["score"], match["duplicate"]) == (5, pytest.approx(1.0, abs=1e-5), True)


def test_similarity_and_encode_match_the_model(served, model):
    pairs = [["a dog runs", "a dog is running"], ["why is the sky blue", "how to cook rice"]]
    status, body = served.request("POST", "/similarity", {"pairs": pairs})
    assert status == 200
    u, v = model.encode([p[0] for p in pairs]), model.encode([p[1] for p in pairs])
    expected = np.diag(cosine(u, v))
    assert [r["score"] for r in body["results"]] == pytest.approx(expected.tolist(), abs=1e-5)
    assert [r["duplicate"] for r in body["results"]] == [bool(s >= 0.9) for s in expected]
    status, body = served.request("POST", "/encode", {"texts": ["a dog runs"], "normalize": True})
    assert status == 200 and body["dimension"] == u.shape[1]
    assert np.allclose(body["embeddings"][0], u[0] / np.linalg.norm(u[0]), atol=1e-5)


def test_openapi_documents_the_endpoints(served):
    status, spec = served.request("GET", "/openapi.json")
    assert status == 200
    for path in (
        "/duplicates",
        "/questions",
        "/questions/{question_id}",
        "/similarity",
        "/encode",
        "/health",
    ):
        assert path in spec["paths"]
    status, page = served.request("GET", "/docs")
    assert status == 200 and "swagger" in page.lower()


# ---------------------------------------------------------------------------------------- writes
def test_add_get_find_delete(writable):
    before = size(writable)
    question = {"texts": ["where is the nearest train station"], "metadata": [{"source": "test"}]}
    status, body = writable.request("POST", "/questions", question)
    assert status == 201
    (new_id,) = body["ids"]
    assert new_id == len(QUESTIONS)  # counted on from the largest id
    assert size(writable) == before + 1
    assert writable.request("GET", f"/questions/{new_id}") == (
        200,
        {"id": new_id, "text": "where is the nearest train station", "metadata": {"source": "test"}},
    )
    found = writable.request(
        "POST", "/duplicates", {"texts": ["where is the nearest train station"], "top_k": 1}
    )
    assert found[1]["results"][0]["matches"][0]["id"] == new_id
    assert writable.request("DELETE", f"/questions/{new_id}") == (200, {"id": new_id, "deleted": True})
    assert writable.request("GET", f"/questions/{new_id}")[0] == 404
    assert writable.request("DELETE", f"/questions/{new_id}")[1]["error"]["field"] == "id"
    found = writable.request(
        "POST", "/duplicates", {"texts": ["where is the nearest train station"], "top_k": 50}
    )
    assert new_id not in [m["id"] for m in found[1]["results"][0]["matches"]]
    assert size(writable) == before


def test_same_id_same_text_is_idempotent_another_text_conflicts(writable):
    status, body = writable.request(
        "POST", "/questions", {"texts": ["is it going to rain today"], "ids": [900]}
    )
    assert (status, body) == (201, {"ids": [900]})
    before = size(writable)
    assert writable.request("POST", "/questions", {"texts": ["is it going to rain today"], "ids": [900]}) == (
        201,
        {"ids": [900]},
    )
    status, body = writable.request(
        "POST", "/questions", {"texts": ["ok", "something else"], "ids": [901, 900]}
    )
    assert status == 409 and body["error"]["field"] == "ids[1]"
    assert size(writable) == before  # neither text of the rejected request was written
    assert writable.request("GET", "/questions/901")[0] == 404
    assert writable.request("GET", "/questions/900")[1]["text"] == "is it going to rain today"


LONG = "word " * 500  # 2500 characters, over the 2000 default


@pytest.mark.parametrize(
    "method, path, raw, status, field",
    [
        ("POST", "/questions", b"{not json", 400, "body"),
        ("POST", "/questions", b"[1, 2]", 400, "body"),
        ("POST", "/questions", b"{}", 422, "texts"),
        ("POST", "/questions", b'{"texts": "one text"}', 422, "texts"),
        ("POST", "/questions", b'{"texts": [1]}', 422, "texts[0]"),
        ("POST", "/questions", b'{"texts": []}', 422, "texts"),
        ("POST", "/questions", b'{"texts": ["ok", "  "]}', 422, "texts[1]"),
        ("POST", "/questions", json.dumps({"texts": [LONG]}).encode(), 413, "texts[0]"),
        ("POST", "/questions", json.dumps({"texts": ["q"] * 257}).encode(), 413, "texts"),
        ("POST", "/questions", b'{"texts": ["a"], "ids": ["7"]}', 422, "ids[0]"),
        ("POST", "/questions", b'{"texts": ["a"], "ids": [-3]}', 422, "ids[0]"),
        ("POST", "/questions", b'{"texts": ["a", "b"], "ids": [4000, 4000]}', 422, "ids"),
        ("POST", "/questions", b'{"texts": ["a"], "ids": [1, 2]}', 422, "ids"),
        ("POST", "/questions", b'{"texts": ["a"], "metadata": [3]}', 422, "metadata[0]"),
        ("POST", "/questions", b'{"texts": ["a"], "colour": 3}', 422, "colour"),
        ("POST", "/questions", b'{"texts": ["' + b"x" * (1 << 20) + b'"]}', 413, "body"),
        ("POST", "/duplicates", b'{"texts": ["a"], "top_k": 0}', 422, "top_k"),
        ("POST", "/duplicates", b'{"texts": ["a"], "top_k": 101}', 422, "top_k"),
        ("POST", "/duplicates", b'{"texts": ["a"], "top_k": "5"}', 422, "top_k"),
        ("POST", "/similarity", b'{"pairs": [["a"]]}', 422, "pairs[0]"),
        ("POST", "/similarity", b'{"pairs": [["a", ""]]}', 422, "pairs[0][1]"),
        ("POST", "/similarity", b'{"pairs": [["a", "lone \\ud800"]]}', 422, "pairs[0][1]"),
        ("POST", "/encode", b'{"texts": ["a"], "side": "c"}', 422, "side"),
        ("GET", "/questions/abc", None, 422, "id"),
        ("GET", "/questions/-1", None, 422, "id"),
        ("GET", "/questions/123456", None, 404, "id"),
        ("GET", "/questions/..%2F..%2Fetc%2Fpasswd", None, 404, "path"),
        ("GET", "/etc/passwd", None, 404, "path"),
        ("PUT", "/questions/1", b"{}", 405, "method"),
        ("POST", "/duplicates/", b'{"texts": ["a"]}', 404, "path"),
        ("POST", "/duplicates", b'{"texts": ["lone \\ud800 surrogate"]}', 422, "texts[0]"),
        ("POST", "/questions", b'{"texts": ["a"], "metadata": [{"\\udc00": 1}]}', 422, "metadata[0]"),
        (
            "POST",
            "/questions",
            b'{"texts": ["a"], "metadata": [' + b'{"k": ' * 40 + b"1" + b"}" * 40 + b"]}",
            422,
            "metadata[0]",
        ),
        ("POST", "/questions", b'{"texts": ["a"], "ids": [9007199254740992]}', 422, "ids[0]"),
        ("GET", "/questions/9007199254740992", None, 422, "id"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field_and_write_nothing(
    writable, method, path, raw, status, field
):
    before = size(writable)
    got_status, body = writable.request(method, path, raw=raw)
    assert got_status == status, body
    assert set(body) == {"error"} and body["error"]["field"] == field and body["error"]["message"]
    assert size(writable) == before


def test_a_body_over_the_limit_is_refused_even_when_chunked(writable):
    conn = http.client.HTTPConnection("127.0.0.1", writable.port, timeout=30)
    body = json.dumps({"texts": ["y" * 600_000, "z" * 600_000]}).encode()
    conn.request(
        "POST",
        "/questions",
        body=iter([body[:700_000], body[700_000:]]),
        encode_chunked=True,
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["field"] == "body"
    conn.close()


# ---------------------------------------------------------------------------------------- security
def test_api_key(model_dir, tmp_path):
    archive = make_archive(tmp_path / "qa", model_dir, questions=QUESTIONS[:3])
    server = Server(archive, "--api-key-env", "QA_TEST_KEY", env={"QA_TEST_KEY": "s3cret-key"})
    try:
        query = {"texts": ["how do i learn python"]}
        assert server.request("GET", "/health")[0] == 200
        assert server.request("GET", "/")[0] == 200  # the page holds no data; it asks for the key
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
            status, body = server.request("POST", "/duplicates", query, headers=headers)
            assert (status, body["error"]["field"]) == (401, "authorization")
        for path in ("/metrics", "/questions/0"):
            assert server.request("GET", path)[0] == 401
        status, spec = server.request("GET", "/openapi.json")  # the docs hold no data; they take the key
        assert status == 200 and spec["security"] == [{"bearer": []}]
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        ok = {"Authorization": "Bearer s3cret-key"}
        assert server.request("POST", "/duplicates", query, headers=ok)[0] == 200
        assert server.request("POST", "/questions", {"texts": ["x"]})[0] == 401
        assert server.request("GET", "/health")[1]["questions"] == 3  # the refused add wrote nothing
    finally:
        server.stop()


def test_binds_loopback_by_default(served):
    """The running server (started without --host) listens on 127.0.0.1 only, as the kernel reports it."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    listening = [
        line.split()[1] for line in table.read_text().splitlines()[1:] if line.split()[3] == "0A"
    ]  # state 0A: LISTEN; local address as HEX_IP:HEX_PORT, the IP little-endian
    mine = [address for address in listening if int(address.split(":")[1], 16) == served.port]
    assert mine == ["0100007F:" + f"{served.port:04X}"]


def test_an_archive_is_refused_with_another_model(model_dir, tmp_path):
    from tests.conftest import build_tiny_bert

    archive = make_archive(tmp_path / "qa", model_dir, questions=QUESTIONS[:2])
    other = build_tiny_bert(tmp_path / "other", hidden_size=40)
    command = [*SERVE, "--archive", str(archive), "--model", str(other), "--port", "1"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert "fingerprint" in result.stderr and str(archive) in result.stderr


# ---------------------------------------------------------------------------------------- metrics, batching
def test_metrics_count_requests_and_the_archive(served):
    served.request("POST", "/duplicates", {"texts": ["why is the sky blue"]})
    served.request("POST", "/duplicates", {"texts": [""]})
    status, text = served.request("GET", "/metrics")
    assert status == 200
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values['sbert_siamese_requests_total{endpoint="/duplicates",method="POST",status="200"}'] >= 1
    assert values['sbert_siamese_requests_total{endpoint="/duplicates",method="POST",status="422"}'] >= 1
    assert values["sbert_siamese_archive_questions"] == len(QUESTIONS)
    assert values['sbert_siamese_request_seconds_count{endpoint="/duplicates"}'] >= 2


def _metric(server, name: str) -> float:
    text = server.request("GET", "/metrics")[1]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_concurrent_requests_are_encoded_together(model_dir, tmp_path):
    archive = make_archive(tmp_path / "qa", model_dir)
    server = Server(archive, "--batch-wait-ms", "50")
    try:
        barrier = threading.Barrier(12)
        answers = [None] * 12

        def ask(i):
            barrier.wait()
            answers[i] = server.request("POST", "/duplicates", {"texts": [QUESTIONS[i]], "top_k": 1})

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (status, body) in enumerate(answers):  # each answer is its own request's, in spite of batching
            assert status == 200 and body["results"][0]["matches"][0]["id"] == i
        batches = _metric(server, "sbert_siamese_batch_requests_count")
        requests = _metric(server, "sbert_siamese_batch_requests_sum")
        assert requests == 12 and batches < 12  # fewer model calls than requests
    finally:
        server.stop()


def test_an_id_clash_inside_a_batch_fails_only_its_own_request(model_dir, tmp_path):
    """Three adds batched together: one without ids (it gets the next id), one asking for that same id with
    another text, one with a free id. Only the second is refused."""
    archive = make_archive(tmp_path / "qa", model_dir)
    with running(archive, "--batch-wait-ms", "400") as server:
        bodies = [{"texts": ["first, counted id"]}, {"texts": ["second, same id"], "ids": [len(QUESTIONS)]},
                  {"texts": ["third, free id"], "ids": [900]}]  # fmt: skip
        answers = [None] * 3

        def add(i):
            time.sleep(0.05 * i)  # in this order, inside one batch window
            answers[i] = server.request("POST", "/questions", bodies[i])

        threads = [threading.Thread(target=add, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers[0] == (201, {"ids": [len(QUESTIONS)]})
        assert answers[1][0] == 409 and answers[1][1]["error"]["field"] == "ids[0]"
        assert answers[2] == (201, {"ids": [900]})
        assert _metric(server, "sbert_siamese_batch_requests_count") < _metric(
            server, "sbert_siamese_batch_requests_sum"
        )  # they were batched
        assert size(server) == len(QUESTIONS) + 2


# ---------------------------------------------------------------------------------------- reliability
@pytest.mark.long
def test_concurrent_adds_lose_and_duplicate_nothing(model_dir, tmp_path):
    """8 clients x 500 adds, each on its own keep-alive connection."""
    archive = make_archive(tmp_path / "qa", model_dir, questions=None)
    server = Server(archive)
    clients, per_client = 8, 500
    got: dict[int, list] = {}
    errors = []

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        ids = []
        for i in range(per_client):
            body = json.dumps({"texts": [f"client {c} question {i}"]})
            conn.request("POST", "/questions", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read())
            if response.status != 201:
                errors.append(payload)
                continue
            ids.extend(payload["ids"])
        got[c] = ids
        conn.close()

    try:
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        all_ids = [i for ids in got.values() for i in ids]
        assert len(all_ids) == len(set(all_ids)) == clients * per_client
        assert sorted(all_ids) == list(range(clients * per_client))  # dense: nothing lost, nothing twice
        assert size(server) == clients * per_client
        for c, i in ((0, 0), (3, 250), (7, 499)):
            assert server.request("GET", f"/questions/{got[c][i]}")[1]["text"] == f"client {c} question {i}"
    finally:
        server.stop()
    with Archive.open(archive) as reopened:  # and on disk, once the server is gone
        texts = reopened.store.conn.execute("SELECT text FROM questions").fetchall()
        assert sorted(t for (t,) in texts) == sorted(
            f"client {c} question {i}" for c in range(8) for i in range(500)
        )


@pytest.mark.long
def test_an_acknowledged_add_survives_kill_9(model_dir, tmp_path):
    archive = make_archive(tmp_path / "qa", model_dir)
    server = Server(archive)
    new = ["my laptop fan is very noisy at night", "which phone should i buy this year"]
    status, body = server.request("POST", "/questions", {"texts": new})
    assert status == 201
    ids = body["ids"]
    server.request("DELETE", "/questions/3")
    server.kill()  # no shutdown, no flush, no index save
    server = Server(archive)
    try:
        status, body = server.request("POST", "/duplicates", {"texts": new, "top_k": 1})
        assert [r["matches"][0]["id"] for r in body["results"]] == ids
        assert [r["matches"][0]["score"] for r in body["results"]] == pytest.approx([1.0, 1.0], abs=1e-5)
        assert server.request("GET", "/questions/3")[0] == 404  # the acknowledged removal held too
        assert size(server) == len(QUESTIONS) + 2 - 1
    finally:
        server.stop()
