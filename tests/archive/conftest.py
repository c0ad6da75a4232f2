"""Fixtures of the archive tests: a tiny model directory, archives over it, and the real server started the
way users start it (``python -m sbert_siamese serve`` in a subprocess on a free loopback port)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

QUESTIONS = [
    "how do i learn python",
    "what is the best way to learn python",
    "how to cook rice",
    "the cat sat on the mat",
    "a man is playing the guitar",
    "a woman is riding a horse",
    "why is the sky blue",
    "how do i fix a noisy laptop fan",
    "who won the football game",
    "where can i buy a new phone",
    "the government voted on the new law",
    "children are playing in the park",
]


@pytest.fixture(scope="session")
def model_dir(tiny_bert_source, tmp_path_factory) -> Path:
    """A tiny random BERT directory (mean pooling), shared by the module's archives (read-only)."""
    target = tmp_path_factory.mktemp("archive-model") / "model"
    shutil.copytree(tiny_bert_source, target)
    return target


SERVE = [sys.executable, "-m", "sbert_siamese", "serve"]  # as a user starts it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``sbert-siamese serve`` process and a small JSON client for it."""

    def __init__(self, archive: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.log = archive.parent / f"serve-{self.port}.log"
        command = [*SERVE, "--archive", str(archive), "--port", str(self.port), "--threads", "1", *extra]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        self._wait()

    def _wait(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /health in {timeout} s:\n{self.log.read_text()}")

    def request(
        self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None
    ):
        """(status, parsed JSON or text) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            sent = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers={**sent, **(headers or {})})
            response = conn.getresponse()
            text = response.read().decode()
            kind = response.getheader("content-type", "")
            return response.status, json.loads(text) if "json" in kind else text
        finally:
            conn.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def make_archive(path: Path, model: Path, questions=QUESTIONS, **options):
    from sbert_siamese.archive import Archive

    with Archive.create(path, model, **options) as archive:
        if questions:
            archive.add(list(questions))
    return path


@contextmanager
def running(archive: Path, *extra: str, env: dict | None = None):
    """A ``Server`` over ``archive`` for the duration of the block."""
    server = Server(archive, *extra, env=env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    """A server over an archive of ``QUESTIONS`` (ids 0..11) with a cosine threshold of 0.9 (read-only)."""
    with running(make_archive(tmp_path_factory.mktemp("served") / "qa", model_dir, threshold=0.9)) as server:
        yield server
