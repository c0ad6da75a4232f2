"""Serving duplicate look-ups over HTTP: our ``sbert-siamese serve`` against a naive FastAPI +
sentence-transformers server, same model, corpus, queries and machine, in one run.

Corpus: 100,000 distinct real texts from --data-dir: every Quora (QQP) question of the three QQP folders
except the held-out ones, then SNLI / MultiNLI / SICK / STS / MRPC sentences (15-400 characters) in a fixed
shuffled order up to --corpus-size. Queries: --queries QQP questions held out of the corpus (what a live
service gets: new questions, some with a duplicate in the corpus), plus a tenth as many that are in it (exact
repeats), in a fixed seeded order. Nothing is copied into the repository: the corpus file, the embeddings and
the archive live in --work-dir (git-ignored ``runs/``) and later runs reuse them (keyed by a hash of the text
list and the model's files).

Servers, each a process of its own started by this script on 127.0.0.1, both up during the whole run:
- ``naive``: what a user writes first: a FastAPI app (plain ``def`` endpoint, so FastAPI's thread pool) run
  by uvicorn with 1 worker, that loads ``sentence_transformers.SentenceTransformer`` (all-MiniLM-L6-v2) and
  the corpus embeddings (a cached .npy) at start-up and per ``POST /duplicates`` runs
  ``model.encode(texts, convert_to_tensor=True, normalize_embeddings=True)`` and
  ``util.semantic_search(..., score_function=util.dot_score)`` over the whole corpus (exact; dot_score since
  the vectors are normalised, which spares the default cos_sim from re-normalising the corpus per request).
- ``ours``: ``sbert-siamese archive create/add`` (``--index``, ``--backend``) once, then
  ``python -m sbert_siamese serve --archive DIR --backend B``.
Same request for both: ``{"texts": [q], "top_k": 5}``.

Load: a separate light process (asyncio, raw HTTP/1.1 keep-alive, one connection per simulated client, each
client closed-loop: one query at a time) at 1, 8 and 32 concurrent clients. Per level: warm-up requests
(not counted), then --requests requests or --max-seconds, whichever ends first. Levels are interleaved
(naive then ours at 1 client, then at 8, ...) so that drift on the machine touches both alike; a level that
other processes disturbed (--max-other-load) is rerun (--retries), keeping the least disturbed. Reported per
server and level: queries/s (completed / elapsed), p50 / p90 / p99 latency (client side, from writing the
request to reading the whole response), errors (non-200 or broken connections), the CPU cores used by the
server, the load generator and everything else (hypervisor steal included), and, from our server's /metrics,
its batches (texts per batch, ms per batch, the batch worker's busy share) and the request time inside it.
Before the load, the same --check-queries queries go to every server one by one: recall@5 of ours against
the naive exact search (by matched text), a quality check of our index and backend together.

Then (--breakdown, in a child process) where one query's time goes outside HTTP: sentence-transformers'
encode of one query, the naive exact search over the corpus, our encode per backend, and our archive's encode
and search + stored rows + decisions, one query at a time and 32 at once.

Targets (issue 15, on 2 cores): ours >= 3x naive queries/s at 32 clients; ours p99 < 50 ms at 1 client.
The table is printed as markdown with the CPU model and flags; --output writes it all as JSON.

Usage:
    python benchmarks/bench_serve.py --data-dir ../shared/data [--corpus-size 100000] [--clients 1 8 32]
        [--backend onnx-int8] [--index auto] [--breakdown] [--output benchmarks/results/bench_serve.json]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import http.client
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "all-MiniLM-L6-v2"
SERVERS = ("naive", "ours")
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


# ------------------------------------------------------------------------------------------------ data
def _qqp_questions(data_dir: Path) -> list[str]:
    """Distinct QQP questions of every ``qqp-*`` folder, in file order."""
    csv.field_size_limit(1 << 24)
    seen: dict[str, None] = {}
    for path in sorted(data_dir.glob("qqp-*/*.tsv")):
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                for key in ("question1", "question2"):
                    text = " ".join((row.get(key) or "").split())
                    if 10 <= len(text) <= 400:
                        seen.setdefault(text)
    return list(seen)


def _other_sentences(data_dir: Path) -> list[str]:
    """Distinct sentences of SNLI, MultiNLI, SICK, STS-B, STS 2012-16 and MRPC (15-400 characters)."""
    csv.field_size_limit(1 << 24)
    seen: dict[str, None] = {}

    def add(text: str | None) -> None:
        text = " ".join((text or "").split()).strip('"')
        if 15 <= len(text) <= 400 and " " in text and re.search("[A-Za-z]{3}", text):
            seen.setdefault(text)

    for folder in ("snli-dev-test", "snli-train-head"):
        for path in sorted((data_dir / folder).glob("s[12].*")):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                add(line)
    tables = [
        (data_dir / "mnli-pieces" / "mnli_pieces.tsv", ("sentence1", "sentence2")),
        (data_dir / "sick" / "SICK.txt", ("sentence_A", "sentence_B")),
    ]
    tables += [(p, ("#1 String", "#2 String")) for p in sorted((data_dir / "mrpc").glob("msr-para-*.tsv"))]
    for path, keys in tables:
        if path.exists():
            with open(path, encoding="utf-8-sig", newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                    for key in keys:
                        add(row.get(key))
    for path in sorted((data_dir / "stsbenchmark").glob("sts-*.csv")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split("\t")
            for field in fields[5:7]:
                add(field)
    for path in sorted((data_dir / "sts12-16").glob("STS1*/STS.input.*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for field in line.split("\t")[:2]:
                add(field)
    return list(seen)


def build_corpus(data_dir: Path, size: int, held_out: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(corpus, queries). Corpus: QQP questions not held out, then other sentences: ``size`` distinct texts.
    Queries: ``held_out`` QQP questions absent from the corpus, plus a tenth as many that are in it,
    shuffled."""
    rng = random.Random(seed)
    questions = sorted(_qqp_questions(data_dir))
    rng.shuffle(questions)
    queries, questions = questions[:held_out], questions[held_out:]
    taken = set(questions) | set(queries)
    others = sorted(t for t in _other_sentences(data_dir) if t not in taken)
    rng.shuffle(others)
    corpus = (questions + others)[:size]
    if len(corpus) < size:
        raise SystemExit(
            f"only {len(corpus)} distinct texts under {data_dir}; ask for a smaller --corpus-size"
        )
    queries += rng.sample(questions[: min(len(questions), size)], max(1, held_out // 10))
    rng.shuffle(queries)
    return corpus, queries


def texts_key(texts: list[str], *extra: str) -> str:
    h = hashlib.sha256()
    for part in (*extra, *texts):
        h.update(part.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def model_fingerprint(path: Path) -> str:
    """Hash of the model's weights and configuration files (what the embeddings depend on)."""
    h = hashlib.sha256()
    for file in sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".txt")
    ):
        h.update(file.relative_to(path).as_posix().encode())
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------- machine
def cpu_info() -> dict:
    """CPU model, core counts and the SIMD flags that matter for these kernels (Linux /proc/cpuinfo)."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "flags": {flag: flag in flags for flag in CPU_FLAGS},
    }


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]  # up to steal: lost to the hypervisor
    except OSError:
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and its reaped children (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ naive server
def naive_app(model_path: str, corpus_file: str, embeddings_file: str):
    """The baseline: a FastAPI app as a user writes it around sentence-transformers."""
    import numpy as np
    import torch
    from fastapi import FastAPI
    from pydantic import BaseModel
    from sentence_transformers import SentenceTransformer, util

    model = SentenceTransformer(model_path, device="cpu")
    corpus = Path(corpus_file).read_text(encoding="utf-8").splitlines()
    corpus_embeddings = torch.from_numpy(np.load(embeddings_file))
    app = FastAPI()

    class Query(BaseModel):
        texts: list[str]
        top_k: int = 5

    @app.get("/health")
    def health():
        return {"status": "ok", "texts": len(corpus)}

    def duplicates(query: Query):
        embeddings = model.encode(query.texts, convert_to_tensor=True, normalize_embeddings=True)
        hits = util.semantic_search(
            embeddings, corpus_embeddings, top_k=query.top_k, score_function=util.dot_score
        )
        return {
            "results": [
                {
                    "text": text,
                    "matches": [
                        {"id": h["corpus_id"], "text": corpus[h["corpus_id"]], "score": h["score"]}
                        for h in found
                    ],
                }
                for text, found in zip(query.texts, hits, strict=True)
            ]
        }

    # ``from __future__ import annotations`` makes the hint a string that FastAPI resolves in the module's
    # globals, where this local class is not: give it the class itself.
    duplicates.__annotations__["query"] = Query
    app.post("/duplicates")(duplicates)
    return app


def serve_naive(args) -> None:
    import uvicorn

    model_path, corpus_file, embeddings_file = args.serve_naive
    app = naive_app(model_path, corpus_file, embeddings_file)
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------------ child jobs
def embed_child(args) -> None:
    """Child: the corpus embeddings as sentence-transformers computes them (normalised), to a .npy."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    model_path, corpus_file, out = args.embed
    texts = Path(corpus_file).read_text(encoding="utf-8").splitlines()
    model = SentenceTransformer(model_path, device="cpu")
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    print(f"  encoded {len(texts):,} texts in {time.perf_counter() - started:.0f} s", flush=True)
    np.save(out + ".tmp.npy", vectors.astype(np.float32))
    os.replace(out + ".tmp.npy", out)


def breakdown_child(args) -> None:
    """Child: one query's time outside HTTP (medians over the queries, after warm-up), written as JSON."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer, util

    from sbert_siamese import SiameseEncoder

    config_file, out = args.breakdown_args
    config = json.loads(Path(config_file).read_text())
    model_path = config["model_path"]
    queries = json.loads(Path(config["queries_file"]).read_text())[:200]
    corpus_embeddings = torch.from_numpy(np.load(config["embeddings_file"]))
    st = SentenceTransformer(model_path, device="cpu")
    ours = SiameseEncoder.from_pretrained(model_path)

    def median_ms(fn) -> float:
        for q in queries[:20]:
            fn(q)
        times = []
        for q in queries:
            started = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    one = st.encode([queries[0]], convert_to_tensor=True, normalize_embeddings=True)
    result = {
        "threads": torch.get_num_threads(),
        "corpus": len(corpus_embeddings),
        "st_encode_ms": median_ms(
            lambda q: st.encode([q], convert_to_tensor=True, normalize_embeddings=True)
        ),
        "st_semantic_search_ms": median_ms(
            lambda q: util.semantic_search(one, corpus_embeddings, top_k=5, score_function=util.dot_score)
        ),
        "st_semantic_search_cos_sim_ms": median_ms(
            lambda q: util.semantic_search(one, corpus_embeddings, top_k=5)
        ),
        "matmul_topk_ms": median_ms(lambda q: torch.topk(corpus_embeddings @ one[0], 5)),
    }
    for backend in config["backends"]:
        result[f"ours_encode_{backend}_ms"] = median_ms(lambda q, b=backend: ours.encode([q], backend=b))
    for backend, folder in config["archives"].items():  # encode, then search + stored rows + decisions
        from sbert_siamese.archive import Archive

        with Archive.open(folder, model=model_path, backend=backend) as archive:
            vectors = {q: archive.encode([q]) for q in queries}
            result[f"ours_{backend}_archive_encode_ms"] = median_ms(lambda q: archive.encode([q]))
            result[f"ours_{backend}_archive_query_after_encode_ms"] = median_ms(
                lambda q, v=vectors: archive.query([q], 5, vectors=v[q])
            )
            encode_times, query_times = [], []  # 32 queries at once, as the batcher runs them under load
            for first in range(0, len(queries) - 31, 32):
                chunk = queries[first : first + 32]
                started = time.perf_counter()
                batch = archive.encode(chunk)
                encoded = time.perf_counter()
                archive.query(chunk, 5, vectors=batch)
                encode_times.append(encoded - started)
                query_times.append(time.perf_counter() - encoded)
            for name, times in (("encode", encode_times), ("query_after_encode", query_times)):
                key = f"ours_{backend}_archive_{name}_32_at_once_per_query_ms"
                result[key] = 1000 * statistics.median(times[1:]) / 32
            result[f"ours_{backend}_index"] = archive.info()["index"]
    Path(out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------ load generator
async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await reader.read()
    return status, body, headers.get("connection", "").lower() != "close"


METRICS = {  # what our server's /metrics says about each level: name -> Prometheus metric
    "batch_seconds": "sbert_siamese_batch_seconds",
    "batch_texts": "sbert_siamese_batch_texts",
    "request_seconds": "sbert_siamese_request_seconds",
}


async def _scrape(host: str, port: int) -> dict[str, float] | None:
    """``_sum`` and ``_count`` of the METRICS histograms (summed over labels), or None without /metrics."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        status, body, _ = await asyncio.wait_for(_read_response(reader), 10)
        writer.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
        return None
    if status != 200:
        return None
    found: dict[str, float] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(" ")
        name = name.split("{")[0]
        for key, metric in METRICS.items():
            for suffix in ("_sum", "_count"):
                if name == metric + suffix:
                    found[key + suffix] = found.get(key + suffix, 0.0) + float(value.split()[0])
    return found or None


def _server_side(before: dict | None, after: dict | None, elapsed: float) -> dict | None:
    """Our server's own view of a level: batches, texts per batch, the worker's busy share, and the
    request time inside the server (from its histograms' sums and counts)."""
    if not before or not after:
        return None
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    batches = d.get("batch_seconds_count", 0.0)
    requests = d.get("request_seconds_count", 0.0)
    return {
        "batches": batches,
        "texts_per_batch": d.get("batch_texts_sum", 0.0) / batches if batches else None,
        "batch_ms": 1000 * d.get("batch_seconds_sum", 0.0) / batches if batches else None,
        "worker_busy": d.get("batch_seconds_sum", 0.0) / elapsed if elapsed else None,
        "request_ms_in_server": 1000 * d.get("request_seconds_sum", 0.0) / requests if requests else None,
    }


async def _load(config: dict) -> dict:
    host, port, clients = config["host"], config["port"], config["clients"]
    requests = [
        (
            f"POST /duplicates HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in (json.dumps({"texts": [q], "top_k": config["top_k"]}).encode() for q in config["queries"])
    ]
    state = {"next": 0}
    latencies: list[float] = []
    errors: list[str] = []
    first_bodies: list[bytes] = []

    async def connect():
        return await asyncio.open_connection(host, port)

    async def run(conn, limit: int, deadline: float, record: bool):
        reader, writer = conn
        while state["next"] < limit and time.perf_counter() < deadline:
            i = state["next"]
            state["next"] += 1
            started = time.perf_counter()
            try:
                writer.write(requests[i % len(requests)])
                status, body, keep = await asyncio.wait_for(_read_response(reader), config["timeout"])
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                writer.close()
                reader, writer = await connect()
                continue
            elapsed = time.perf_counter() - started
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200]!r}")
            elif record:
                latencies.append(elapsed)
                if len(first_bodies) < 3:
                    first_bodies.append(body)
            if not keep:
                writer.close()
                reader, writer = await connect()
        return reader, writer

    conns = [await connect() for _ in range(clients)]
    # warm-up, not counted
    warm = config["warmup"]
    conns = await asyncio.gather(*(run(c, warm, time.perf_counter() + 120, False) for c in conns))
    warm_errors = len(errors)
    errors.clear()
    state["next"] = warm
    pid = config["server_pid"]
    metrics = await _scrape(host, port)
    server_cpu, busy, own = process_cpu_seconds(pid), busy_cpu_seconds(), _own_cpu_seconds()
    started = time.perf_counter()
    deadline = started + config["max_seconds"]
    conns = await asyncio.gather(*(run(c, warm + config["requests"], deadline, True) for c in conns))
    elapsed = time.perf_counter() - started
    server_cpu2, busy2, own2 = process_cpu_seconds(pid), busy_cpu_seconds(), _own_cpu_seconds()
    server_side = _server_side(metrics, await _scrape(host, port), elapsed)
    cores = {"server": None, "loadgen": (own2 - own) / elapsed, "other": None}
    if server_cpu is not None and server_cpu2 is not None:
        cores["server"] = (server_cpu2 - server_cpu) / elapsed
        if busy is not None:
            cores["other"] = max(0.0, (busy2 - busy) / elapsed - cores["server"] - cores["loadgen"])
    for _, writer in conns:
        writer.close()
    bad = 0
    for body in first_bodies:  # the shape the issue fixes: {"results": [{"matches": [...]}]}
        results = json.loads(body)["results"]
        bad += len(results) != 1 or len(results[0]["matches"]) != config["top_k"]
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "errors": len(errors),
        "error_samples": errors[:5],
        "warmup_errors": warm_errors,
        "bad_shapes": bad,
        "cores": cores,
        "server_side": server_side,
    }


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loadgen_child(args) -> None:
    config_file, out = args.loadgen
    config = json.loads(Path(config_file).read_text())
    result = asyncio.run(_load(config))
    Path(out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------ orchestration
class Server:
    def __init__(self, name: str, command: list[str], log: Path, env: dict):
        self.name, self.command, self.port = name, command, int(command[command.index("--port") + 1])
        self.log = open(log, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.log_path = log

    def wait_healthy(self, timeout: float) -> float:
        """Seconds from the start of the process to its first healthy answer."""
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-3000:]
                raise SystemExit(f"{self.name} server exited ({self.proc.returncode}):\n{tail}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit(f"{self.name} server not healthy after {timeout:.0f} s; see {self.log_path}")

    def query(self, conn: http.client.HTTPConnection, text: str, top_k: int) -> dict:
        conn.request(
            "POST", "/duplicates", json.dumps({"texts": [text], "top_k": top_k}),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"{self.name}: HTTP {response.status}: {body[:500]!r}")
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_level(server: Server, args, queries: list[str], clients: int, requests: int, work: Path, env) -> dict:
    config = {
        "host": "127.0.0.1",
        "port": server.port,
        "clients": clients,
        "queries": queries,
        "top_k": args.top_k,
        "warmup": max(args.warmup, 2 * clients),
        "requests": requests,
        "max_seconds": args.max_seconds,
        "timeout": args.timeout,
        "server_pid": server.proc.pid,
    }
    config_file, out = work / "loadgen.json", work / "loadgen.out.json"
    config_file.write_text(json.dumps(config))
    subprocess.run([sys.executable, __file__, "--loadgen", str(config_file), str(out)], check=True, env=env)
    raw = json.loads(out.read_text())
    lat = sorted(raw["latencies"])

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, max(0, round(p / 100 * len(lat)) - 1))] if lat else float("nan")

    return {
        "server": server.name,
        "clients": clients,
        "completed": len(lat),
        "elapsed_s": raw["elapsed"],
        "qps": len(lat) / raw["elapsed"] if raw["elapsed"] else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": 1000 * statistics.fmean(lat) if lat else float("nan"),
        "errors": raw["errors"],
        "error_samples": raw["error_samples"],
        "warmup_errors": raw["warmup_errors"],
        "bad_shapes": raw["bad_shapes"],
        "server_cores": raw["cores"]["server"],
        "loadgen_cores": raw["cores"]["loadgen"],
        "other_cores": raw["cores"]["other"],
        "server_side": raw["server_side"],
    }


def measure_level(server: Server, args, queries, clients: int, requests: int, work: Path, env) -> dict:
    """One level on one server, again while other processes disturbed it (--retries); the least disturbed."""
    best = None
    for attempt in range(1 + args.retries):
        r = run_level(server, args, queries, clients, requests, work, env)
        r["attempts"] = attempt + 1
        if best is None or (r["other_cores"] or 0.0) < (best["other_cores"] or 0.0):
            best = r
        if (r["other_cores"] or 0.0) <= args.max_other_load:
            break
        print(
            f"  {server.name} at {clients} clients: other processes used {r['other_cores']:.2f} cores "
            "meanwhile; again",
            flush=True,
        )
        time.sleep(args.pause)
    return best


def recall_check(servers: dict[str, Server], queries: list[str], top_k: int) -> dict:
    """The same queries one by one to every server; recall@k of ours against the naive (exact) search."""
    found: dict[str, list[set[str]]] = {}
    latency: dict[str, float] = {}
    for name, server in servers.items():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        found[name], times = [], []
        for q in queries:
            started = time.perf_counter()
            results = server.query(conn, q, top_k)["results"]
            times.append(time.perf_counter() - started)
            found[name].append({m["text"] for m in results[0]["matches"]})
        conn.close()
        latency[name] = 1000 * statistics.median(times)
    out = {"queries": len(queries), "median_ms": latency, "recall_at_k_vs_naive": {}}
    for name in found:
        if name != "naive" and "naive" in found:
            hits = sum(len(a & b) for a, b in zip(found["naive"], found[name], strict=True))
            out["recall_at_k_vs_naive"][name] = hits / sum(len(a) for a in found["naive"])
    return out


def ours_available(env) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "sbert_siamese", "serve", "--help"], capture_output=True, env=env
    )
    return done.returncode == 0


def build_archive(args, backend: str, corpus_file: Path, key: str, env) -> tuple[Path, float | None]:
    """``sbert-siamese archive create`` + ``add`` once per (corpus, model, index, backend); reused after."""
    folder = Path(args.work_dir) / f"archive_{key}_{args.index}_{backend}"
    stamp = folder / ".bench_complete"
    if stamp.exists():
        return folder, json.loads(stamp.read_text()).get("seconds")
    if folder.exists():
        shutil.rmtree(folder)
    cli = [sys.executable, "-m", "sbert_siamese", "archive"]
    started = time.perf_counter()
    log = Path(args.work_dir) / f"archive_{key}_{args.index}_{backend}.log"
    print(f"building our archive in {folder} (index {args.index}, backend {backend}; log {log}) ...",
          flush=True)  # fmt: skip
    with open(log, "w") as out:
        for command in (
            [
                *cli,
                "create",
                str(folder),
                "--model",
                args.model,
                "--index",
                args.index,
                "--backend",
                backend,
            ],
            [*cli, "add", str(folder), "--input", str(corpus_file), "-q"],
        ):
            out.flush()
            if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode:
                raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-3000:]}")
    seconds = time.perf_counter() - started
    stamp.write_text(json.dumps({"seconds": seconds}))
    print(f"  archive built in {seconds:.0f} s", flush=True)
    return folder, seconds


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None or v != v else format(v, spec)


def label(name: str) -> str:
    if name == "naive":
        return "naive: FastAPI + ST `encode` + `semantic_search`"
    return f"ours: `sbert-siamese serve`, {name.split(' ', 1)[1]}"


def table(record: dict) -> str:
    cpu = record["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    lines = [
        f"CPU: {cpu['model']}, {cpu['usable_cores']} cores; {flags}",
        f"corpus {record['corpus_size']:,} texts, top_k {record['top_k']}, our index {record['index']}",
        "",
        "| clients | server | queries/s | vs naive | p50 ms | p90 ms | p99 ms | errors | server cores |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for clients in record["clients"]:
        rows = {r["server"]: r for r in record["levels"] if r["clients"] == clients}
        base = rows.get("naive")
        for name, r in rows.items():
            ratio = f"{r['qps'] / base['qps']:.2f}x" if base and base["qps"] else ""
            lines.append(
                f"| {clients} | {label(name)} | {r['qps']:,.1f} | {ratio} | {r['p50_ms']:.1f} | "
                f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {_fmt(r['server_cores'], '.2f')} |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    from sbert_siamese.cli.options import HelpFormatter  # the CLI's: text as written, every default shown

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="holds qqp-*/ etc.")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench_serve"), help="caches, logs")
    parser.add_argument("--corpus-size", type=int, default=100_000, help="distinct texts in the archive")
    parser.add_argument("--queries", type=int, default=2000, help="held-out QQP questions used as queries")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels")
    parser.add_argument(
        "--requests", type=int, nargs="+", default=[300, 1000, 2000],
        help="measured requests per level (one value for all, or one per --clients)",
    )  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=45.0, help="time limit per level and server")
    parser.add_argument(
        "--warmup", type=int, default=20, help="uncounted requests per level (>= 2 x clients)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s): an error")
    parser.add_argument("--retries", type=int, default=2, help="reruns of a level that others disturbed")
    parser.add_argument("--max-other-load", type=float, default=0.2, help="cores others may use meanwhile")
    parser.add_argument("--pause", type=float, default=10.0, help="seconds to wait before a rerun")
    parser.add_argument("--top-k", type=int, default=5, help="matches per query")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS), help="which to run")
    parser.add_argument("--model", default=MODEL, help="both servers' model (name or directory)")
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=["torch", "onnx-int8"],
        help="ours: one server (and archive) per encode backend",
    )  # fmt: skip
    parser.add_argument("--index", default="auto", help="ours: archive index kind")
    parser.add_argument("--check-queries", type=int, default=200, help="recall check queries (0: none)")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time one query's encode and search outside HTTP"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "bench_serve.json", help="JSON")
    parser.add_argument("--serve-naive", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--embed", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--loadgen", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--breakdown-child", dest="breakdown_args", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.serve_naive:
        return serve_naive(args)
    if args.embed:
        return embed_child(args)
    if args.loadgen:
        return loadgen_child(args)
    if args.breakdown_args:
        return breakdown_child(args)

    if not list(args.data_dir.glob("qqp-*")):
        sys.exit(
            f"no qqp-* folders under {args.data_dir}: pass --data-dir (the folder that holds qqp-subset/)"
        )
    if len(args.requests) not in (1, len(args.clients)):
        parser.error("--requests takes one value or one per --clients")
    requests = args.requests * len(args.clients) if len(args.requests) == 1 else args.requests
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)

    from sbert_siamese.models.resolve import resolve_model_path

    model_path = resolve_model_path(args.model)
    started = time.perf_counter()
    corpus, queries = build_corpus(args.data_dir, args.corpus_size, args.queries)
    key = texts_key(corpus, model_fingerprint(model_path))
    corpus_file = work / f"corpus_{key}.txt"
    if not corpus_file.exists():
        corpus_file.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    queries_file = work / f"queries_{key}.json"
    queries_file.write_text(json.dumps(queries))
    qqp = sum(1 for _ in _qqp_questions(args.data_dir))
    print(
        f"corpus: {len(corpus):,} distinct texts ({min(qqp - args.queries, len(corpus)):,} QQP questions), "
        f"queries: {len(queries):,} ({args.queries:,} held out, {len(queries) - args.queries} in the "
        "corpus); "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )

    record: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": cpu_info(),
        "python": sys.version.split()[0],
        "corpus_size": len(corpus),
        "queries": len(queries),
        "top_k": args.top_k,
        "clients": args.clients,
        "requests": requests,
        "max_seconds": args.max_seconds,
        "backends": args.backends,
        "index": args.index,
        "model": str(args.model),
        "levels": [],
    }
    embeddings_file = work / f"embeddings_{key}.npy"
    if ("naive" in args.servers or args.breakdown) and not embeddings_file.exists():
        print(
            f"encoding the corpus with sentence-transformers once (cached in {embeddings_file}) ...",
            flush=True,
        )
        subprocess.run(
            [sys.executable, __file__, "--embed", str(model_path), str(corpus_file), str(embeddings_file)],
            check=True, env=env,
        )  # fmt: skip

    servers: dict[str, Server] = {}
    archives: dict[str, str] = {}
    if "ours" in args.servers and not ours_available(env):
        print("`python -m sbert_siamese serve` is not available here: measuring the naive server only")
        args.servers = [s for s in args.servers if s != "ours"]
    try:
        if "naive" in args.servers:
            port = free_port()
            servers["naive"] = Server(
                "naive",
                [sys.executable, __file__, "--serve-naive", str(model_path), str(corpus_file),
                 str(embeddings_file), "--port", str(port)],
                work / "naive.log", env,
            )  # fmt: skip
        for backend in args.backends if "ours" in args.servers else ():
            archive, build_seconds = build_archive(args, backend, corpus_file, key, env)
            archives[backend] = str(archive)
            record.setdefault("archive_build_s", {})[backend] = build_seconds
            port = free_port()
            servers[f"ours {backend}"] = Server(
                f"ours {backend}",
                [sys.executable, "-m", "sbert_siamese", "serve", "--archive", str(archive),
                 "--host", "127.0.0.1", "--port", str(port), "--backend", backend],
                work / f"ours_{backend}.log", env,
            )  # fmt: skip
        record["startup_s"] = {name: s.wait_healthy(600) for name, s in servers.items()}
        print(
            "servers up: " + ", ".join(f"{n} in {t:.1f} s" for n, t in record["startup_s"].items()),
            flush=True,
        )
        if args.check_queries:
            record["recall_check"] = recall_check(servers, queries[: args.check_queries], args.top_k)
            rc = record["recall_check"]
            print(
                f"one by one, {rc['queries']} queries: median "
                + ", ".join(f"{n} {ms:.1f} ms" for n, ms in rc["median_ms"].items())
                + "".join(
                    f"; recall@{args.top_k} of {n} vs naive (exact) {v:.4f}"
                    for n, v in rc["recall_at_k_vs_naive"].items()
                ),
                flush=True,
            )
        for clients, count in zip(args.clients, requests, strict=True):
            for name, server in servers.items():
                r = measure_level(server, args, queries, clients, count, work, env)
                record["levels"].append(r)
                print(
                    f"  {name:>14} {clients:>3} clients: {r['qps']:8.1f} q/s, p50 {r['p50_ms']:6.1f} ms, "
                    f"p99 {r['p99_ms']:6.1f} ms, {r['completed']} done in {r['elapsed_s']:.1f} s, "
                    f"errors {r['errors']}; cores: server {_fmt(r['server_cores'], '.2f')}, "
                    f"load generator {_fmt(r['loadgen_cores'], '.2f')}, "
                    f"others {_fmt(r['other_cores'], '.2f')}",
                    flush=True,
                )
                if r["server_side"]:
                    side = r["server_side"]
                    print(
                        f"  {'':>14} in the server: {side['batches']:.0f} batches of "
                        f"{_fmt(side['texts_per_batch'], '.1f')} texts, {_fmt(side['batch_ms'], '.1f')} ms "
                        f"each, worker busy {_fmt(side['worker_busy'], '.0%')}; request "
                        f"{_fmt(side['request_ms_in_server'], '.1f')} ms inside the server",
                        flush=True,
                    )
                if r["errors"] or r["bad_shapes"]:
                    print(f"    errors: {r['error_samples']}; bad response shapes: {r['bad_shapes']}")
    finally:
        for server in servers.values():
            server.stop()

    if args.breakdown:
        config = {
            "model_path": str(model_path),
            "queries_file": str(queries_file),
            "embeddings_file": str(embeddings_file),
            "backends": args.backends,
            "archives": archives,
        }
        config_file, out = work / "breakdown_config.json", work / "breakdown.json"
        config_file.write_text(json.dumps(config))
        subprocess.run(
            [sys.executable, __file__, "--breakdown-child", str(config_file), str(out)], check=True, env=env
        )
        record["breakdown_ms"] = json.loads(out.read_text())

    text = table(record)
    print("\n" + text)
    by = {(r["server"], r["clients"]): r for r in record["levels"]}
    top = max(args.clients)
    targets: dict[str, bool] = {}
    for name in servers:
        if name == "naive":
            continue
        ratios = [
            f"{by[name, c]['qps'] / by['naive', c]['qps']:.2f}x"
            for c in args.clients
            if (name, c) in by and ("naive", c) in by and by["naive", c]["qps"]
        ]
        if ratios:
            clients = " / ".join(map(str, args.clients))
            print(f"queries/s of {name} vs naive at {clients} clients: {' / '.join(ratios)}")
        if (name, top) in by and ("naive", top) in by:
            ratio = by[name, top]["qps"] / by["naive", top]["qps"]
            targets[f"{name}: queries/s >= 3x naive at {top} clients"] = ratio >= 3
        if (name, 1) in by:
            targets[f"{name}: p99 < 50 ms at 1 client"] = by[name, 1]["p99_ms"] < 50
    for target, met in targets.items():
        print(f"target {target}: {'met' if met else 'NOT met'}")
    if "breakdown_ms" in record:
        b = record["breakdown_ms"]
        print("one query outside HTTP (median ms):")
        for k, v in b.items():
            if k.endswith("_ms"):
                print(f"  {k[:-3]:<50} {v:8.2f}")
        for k, v in b.items():
            if k.endswith("_index"):
                print(f"  {k}: {v}")
    record["targets"] = targets
    record["table_markdown"] = text
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
