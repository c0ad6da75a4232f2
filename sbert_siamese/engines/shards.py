"""The shard folder the cluster engine writes, and the actor that writes it; Ray itself is imported only by
the actor, when Ray starts it (``engines.ray`` runs the jobs).

- ``ModelSpec``, ``Reading``, ``Plan``: what an actor loads, how it reads a piece, the pieces of an input.
- ``ShardWriter``: the Ray Data actor (one encoder per actor): a piece in, ``shard_NNNNN.npy`` and its sidecar
  ``shard_NNNNN.json`` out. A shard is complete once its sidecar exists (``read_sidecar``).
- ``_check_folder`` / ``_finish_manifest``: the manifest, first of the job (to continue it, or refuse another
  job's folder), then with every shard's rows, file and lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.pieces import Piece, piece_records, read_piece_texts
from ..data.rows import BadRows
from ..errors import ConfigError, DataError, ModelFormatError, SbertSiameseError
from ..io.safe_io import atomic_write_text, writing
from ..io.streaming import MANIFEST, _shard_path, _write_shard

logger = logging.getLogger(__name__)

FAULTS_ENV = "SBERT_SIAMESE_FAULTS"  # tests only: "actor:N" / "driver:N" kill that process after N shards


# ----------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ModelSpec:
    """How an actor loads its encoder: ``encoder`` (``SiameseEncoder.from_pretrained``) or ``model``
    (``SiameseModel.load``, then the tower of ``side``), and how it encodes."""

    path: str
    loader: str = "encoder"
    side: str = "a"
    allow_pickle: bool = False
    backend: str = "torch"
    batch_size: int = 32
    normalize: bool | None = None
    precision: str = "fp32"

    def load(self):
        if self.loader == "encoder":
            from ..models.encoder import SiameseEncoder

            return SiameseEncoder.from_pretrained(self.path, allow_pickle=self.allow_pickle)
        from ..models.siamese import SiameseModel

        return SiameseModel.load(self.path, allow_pickle=self.allow_pickle).tower(self.side)


@dataclass(frozen=True)
class Reading:
    """Which records of a piece are texts, under which rules: ``texts`` (as ``read_texts``) or ``archive``
    (as ``archive add``: an optional id column)."""

    column: str = "text"
    policy: str = "error"
    rules: str = "texts"
    id_column: str | None = None

    def rows(self, piece: Piece, bad_rows: BadRows) -> tuple[list[str], list[int], list[int | None]]:
        """(texts, lines, ids) of the rows of ``piece`` that are kept."""
        if self.rules == "texts":
            texts, lines = read_piece_texts(piece, self.column, bad_rows)
            return texts, lines, [None] * len(texts)
        from ..archive.ingest import _text_and_id

        columns = (self.column,) + ((self.id_column,) if self.id_column else ())
        texts, lines, ids = [], [], []
        for line, record in piece_records(piece, bad_rows, columns):
            try:
                if isinstance(record, str):
                    if not record.strip():
                        raise DataError("blank line; expected a question", piece.path, line, "empty_text")
                    text, question_id = record, None
                else:
                    text, question_id = _text_and_id(record, self.column, self.id_column, piece.path, line)
            except DataError as err:
                bad_rows.handle(err)
                continue
            texts.append(text)
            lines.append(line)
            ids.append(question_id)
        return texts, lines, ids


@dataclass
class Plan:
    """The files of an input (path, sha256, size, newline count) and their pieces, in order."""

    files: list[dict]
    pieces: list[Piece]
    headers: list[dict] = field(default_factory=list)  # per file: header, header_line


def _in_directory(cwd: str, function, *args):
    """Run ``function(*args)`` in ``cwd`` (the driver's working directory) where this node has it."""
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    return function(*args)


def _fault(where: str, folder: Path, done: int, faults: str | None = None) -> None:
    """Tests only: with ``SBERT_SIAMESE_FAULTS=where:N`` in the driver's environment (the driver hands it to
    the actors), this process kills itself (SIGKILL, as the OOM killer or a lost node would) once it has
    finished N shards, the first time in ``folder``."""
    for item in (faults if faults is not None else os.environ.get(FAULTS_ENV, "")).split(","):
        name, _, after = item.partition(":")
        if name == where and after.isdigit() and done == int(after):
            marker = folder / f".fault-{where}"
            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- actors
def _sidecar(folder: Path, index: int) -> Path:
    return folder / f"shard_{index:05d}.json"


def read_sidecar(folder: Path, index: int) -> dict | None:
    """The sidecar of a complete shard, else None (no sidecar, or a shard that does not match it)."""
    try:
        info = json.loads(_sidecar(folder, index).read_text(encoding="utf-8"))
        shard = np.load(_shard_path(folder, index), mmap_mode="r")
    except (OSError, ValueError):
        return None
    return info if shard.ndim == 2 and shard.shape[0] == info.get("rows") else None


class ShardWriter:
    """A Ray Data actor: loads the encoder once, then for each piece reads, encodes and writes its shard."""

    def __init__(
        self, model: ModelSpec, reading: Reading, folder: str, fingerprint: str, threads: int,
        faults: str = "", cwd: str | None = None,
    ):  # fmt: skip
        import ray
        import torch

        from ..io.streaming import weights_fingerprint

        if cwd is not None:
            with contextlib.suppress(OSError):
                os.chdir(cwd)  # relative paths mean what they mean on the driver
        if not (Path(folder) / MANIFEST).is_file():  # the driver wrote it: this node must see it
            raise ConfigError(
                f"{folder} is not visible on node {os.uname().nodename}: the output must be on a filesystem "
                "every node mounts at the same path"
            )

        torch.set_num_threads(max(1, threads))
        self.model, self.reading, self.folder = model, reading, Path(folder)
        self.encoder = model.load()
        found = weights_fingerprint(self.encoder)
        if found != fingerprint:
            raise ConfigError(
                f"{model.path} on node {os.uname().nodename} has weights {found}, the driver's have "
                f"{fingerprint}: every node must see the same model files"
            )
        if ray.get_gpu_ids():  # --gpus-per-actor: Ray has set CUDA_VISIBLE_DEVICES to this actor's share
            self.encoder.to("cuda")
        self.done = 0
        self.faults = faults
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict) -> dict:
        indices, rows, errors = [], [], []
        for index, piece_json in zip(batch["index"], batch["piece"], strict=True):
            _fault("actor", self.folder, self.done, self.faults)
            try:
                rows.append(self._write(int(index), Piece.from_dict(json.loads(str(piece_json)))))
                errors.append(b"")
            except SbertSiameseError as err:  # bad input: an answer for the driver, not a failure to retry
                rows.append(-1)
                errors.append(pickle.dumps(_plain(err)))
            indices.append(int(index))
            self.done += 1
        return {
            "index": np.asarray(indices, np.int64),
            "rows": np.asarray(rows, np.int64),
            "error": np.asarray(errors, dtype=object),
        }

    def _write(self, index: int, piece: Piece) -> int:
        """Read, encode and write one piece; returns its rows."""
        bad_rows = BadRows(self.reading.policy)
        texts, lines, _ = self.reading.rows(piece, bad_rows)
        if texts:
            embeddings = self.encoder.encode(
                texts, batch_size=self.model.batch_size, normalize=self.model.normalize,
                backend=self.model.backend, precision=self.model.precision,
            )  # fmt: skip
            truncated = len(getattr(self.encoder, "last_truncated", ()))
        else:
            embeddings, truncated = np.zeros((0, self.encoder.embedding_dim), np.float32), 0
        _write_shard(_shard_path(self.folder, index), np.ascontiguousarray(embeddings, dtype=np.float32))
        info = {
            "index": index,
            "rows": len(texts),
            "file": piece.file,
            "first_line": piece.first_line,
            "lines": lines,
            "truncated": truncated,
            "skipped": bad_rows.counts,
            "examples": bad_rows.examples,
            "node": self.node,  # the Ray node that wrote it
        }
        atomic_write_text(_sidecar(self.folder, index), json.dumps(info), "a shard's sidecar")
        return len(texts)


def _plain(err: SbertSiameseError) -> SbertSiameseError:
    """Ray hands back an instance of a class derived from both ours and its own: rebuild a plain one."""
    base = next(c for c in type(err).__mro__ if c.__module__ == "sbert_siamese.errors")
    if type(err) is base:
        return err
    if isinstance(err, DataError):
        return base(err.problem, err.path, err.line, err.reason)
    return base(*err.args)


# ------------------------------------------------------------------------------------ the shard folder
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{path}: cannot read ({exc})") from None


def _check_folder(folder: Path, expected: dict, scratch: bool = False) -> None:
    """A new folder gets the manifest of this job (count unknown); an existing one must have been made by
    the same job (same model, options, input bytes and pieces) to be continued."""
    with writing(folder, "the embedding folder"):
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    if path.exists():
        manifest = _read_json(path)
        different = [key for key, value in expected.items() if manifest.get(key) != value]
        if different and scratch:
            logger.info("%s: left by another job (%s); starting afresh", folder, ", ".join(different))
            shutil.rmtree(folder)
            return _check_folder(folder, expected)
        if different:
            raise ConfigError(
                f"{folder} holds embeddings made by another job (different {', '.join(different)}); use a "
                "new directory (or delete this one)"
            )
        return
    if any(folder.glob("shard_*.npy")):
        raise ConfigError(f"{folder} has shards but no {MANIFEST}: not an embedding directory of ours")
    atomic_write_text(
        path, json.dumps({**expected, "count": None}, indent=1) + "\n", "the embedding manifest"
    )


def _count_skipped(bad_rows: BadRows, info: dict) -> None:
    for reason, n in info["skipped"].items():
        bad_rows.counts[reason] = bad_rows.counts.get(reason, 0) + n
    room = bad_rows.max_examples - len(bad_rows.examples)
    bad_rows.examples.extend(info["examples"][: max(0, room)])


def _check_files_have_rows(plan: Plan, infos: list[dict], bad_rows: BadRows) -> None:
    """As ``read_texts``: a file with no text at all is an error, even when its bad rows were skipped."""
    rows = [0] * len(plan.files)
    skipped = [0] * len(plan.files)
    for info in infos:
        rows[info["file"]] += info["rows"]
        skipped[info["file"]] += sum(info["skipped"].values())
    for file, (n, bad) in enumerate(zip(rows, skipped, strict=True)):
        if not n:
            note = f" ({bad} bad row(s) skipped)" if bad else ""
            raise DataError(f"no texts found{note}", plan.files[file]["path"], reason="no_rows")


def _finish_manifest(folder: Path, expected: dict, plan: Plan, infos: list[dict]) -> dict:
    shards, first_row = [], 0
    for info in infos:
        lines = info["lines"]
        shards.append({
            "file": info["file"], "first_line": lines[0] if lines else None,
            "last_line": lines[-1] if lines else None, "rows": info["rows"], "first_row": first_row,
        })  # fmt: skip
        first_row += info["rows"]
    dimension = int(np.load(_shard_path(folder, 0), mmap_mode="r").shape[1])
    manifest = {
        **expected,
        "count": first_row,
        "dimension": dimension,
        "shard_rows": [info["rows"] for info in infos],
        "shards": shards,
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n", "the embedding manifest")
    return {"count": first_row, "dimension": dimension}


def _piece_texts(piece: dict, reading: Reading, positions: list[int]) -> list[tuple[str, int]]:
    texts, lines, _ = reading.rows(Piece.from_dict(piece), BadRows(reading.policy))
    return [(texts[i], lines[i]) for i in positions]
