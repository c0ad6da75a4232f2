"""Corpus jobs on a Ray cluster: ``encode``, ``dedup`` and ``archive add`` with ``--engine ray``.

How a job runs (DESIGN.md, "Online and scale-out flows"):

1. **Plan.** One Ray task per input file scans it once (constant memory) into pieces of at most
   ``piece_rows`` records (``data.pieces``): byte ranges that start on a record boundary, with the line each
   starts on. The driver holds only the plan, never the texts.
2. **Encode.** Ray Data hands the pieces, one per block, to an actor pool (``ActorPoolStrategy``): each actor
   loads the encoder once (any backend), reads its piece's bytes itself, encodes them and writes
   ``shard_NNNNN.npy`` (temporary name, then rename) and its sidecar ``shard_NNNNN.json`` (rows, input lines,
   skipped rows). A shard is complete once its sidecar exists, so a rerun after a driver crash encodes only
   the pieces without one; an actor killed mid-piece is restarted by Ray and the piece retried, and as the
   shard is written whole under a fixed name, no row is lost or written twice.
3. **Finish.** The driver reads the sidecars in order and writes the manifest: the same embedding directory
   as the local engine (``io.streaming``), with ``shard_rows`` for the unequal shards and, per shard, its
   file, first and last line and first row. ``.npy`` output is those shards copied into one array.

Dedup then searches the shards in parallel: exact (each task: its shard's rows against the whole corpus,
shared through the object store) below ``APPROXIMATE_FROM`` texts, else a faiss IVF (or IVF-PQ) index
trained on a sample, filled by one task per shard, merged on the driver and searched by one task per shard.
Pairs are merged and grouped as the local path does. Every path here (inputs, model, output) must be
readable and writable at the same path on every node: a shared filesystem.

Ray is imported only here, and only when a job runs (``pip install 'sbert-siamese[ray]'``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.pieces import (
    DEFAULT_MAX_BYTES,
    check_columns,
    input_files,
    plan_file,
)
from ..data.rows import BadRows, _policy
from ..errors import ConfigError, ModelFormatError, SbertSiameseError
from ..io.safe_io import writing
from ..io.streaming import MANIFEST, _shard_path, shard_sizes
from ..search.base import _normalise_array
from ..search.sharded import exact_pairs, ivf_add, ivf_merge, ivf_search, load_rows, train_ivf
from .shards import (  # noqa: F401 (ModelSpec, Reading, FAULTS_ENV: the engine's API, imported from here)
    FAULTS_ENV,
    ModelSpec,
    Plan,
    Reading,
    ShardWriter,
    _check_files_have_rows,
    _check_folder,
    _count_skipped,
    _fault,
    _finish_manifest,
    _in_directory,
    _piece_texts,
    _plain,
    _read_json,
    read_sidecar,
)

logger = logging.getLogger(__name__)

FORMAT = "sbert-siamese ray shards 1"
ACTOR_START_SECONDS = 600  # how long the actor pool may take to start (a model load, a GPU node joining)
IVF_KINDS = ("ivf", "ivf-pq")
RAY_INDEX_KINDS = ("auto", "exact", *IVF_KINDS)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--engine ray needs Ray: pip install 'sbert-siamese[ray]' (or leave out --engine: this machine)"
        ) from None
    return ray


# ---------------------------------------------------------------------------------------------- engine
@dataclass
class RayEngine:
    """Where corpus jobs run on Ray. Use as a context manager: it connects to ``address`` (``auto``: the
    cluster this machine joined with ``ray start``; ``ray://host:10001``: a remote one) or, without one,
    starts a Ray on this machine, and disconnects at the end."""

    address: str | None = None
    actors: int | None = None  # default: as many as the cluster's CPUs (GPUs) allow
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    piece_rows: int = 10_000
    piece_bytes: int = DEFAULT_MAX_BYTES
    show_progress: bool = False

    def __post_init__(self):
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"--actors must be >= 1, got {self.actors}")
        if not math.isfinite(self.cpus_per_actor) or not math.isfinite(self.gpus_per_actor):
            raise ConfigError("--cpus-per-actor and --gpus-per-actor must be finite numbers")
        if self.cpus_per_actor <= 0:
            raise ConfigError(f"--cpus-per-actor must be > 0, got {self.cpus_per_actor}")
        if self.gpus_per_actor < 0:
            raise ConfigError(f"--gpus-per-actor must be >= 0, got {self.gpus_per_actor}")
        if self.piece_rows < 1:
            raise ConfigError(f"--shard-size must be >= 1, got {self.piece_rows}")
        self._started = False

    def __enter__(self) -> RayEngine:
        ray = import_ray()
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address, include_dashboard=False, configure_logging=False,
                    log_to_driver=False,
                )  # fmt: skip
            except (ConnectionError, ValueError) as exc:  # unreachable, or not an address
                raise ConfigError(f"--ray-address {self.address}: cannot connect ({exc})") from None
            self._started = True
        try:
            context = ray.data.DataContext.get_current()
            self._context = (
                context.enable_progress_bars, context.print_on_execution_start,
                context.execution_options.preserve_order, context.wait_for_min_actors_s,
            )  # fmt: skip
            context.enable_progress_bars = False  # the driver shows one bar of its own
            context.print_on_execution_start = False
            # pieces come back in input order, so the first bad row reported is the local engine's
            context.execution_options.preserve_order = True
            # every actor asked for is up before the pieces go out (not the first one taking them all),
            # and a pool the cluster cannot start fails in the end instead of waiting forever
            context.wait_for_min_actors_s = ACTOR_START_SECONDS
        except Exception:
            self.__exit__(None, None, None)
            raise
        # Ray prints the cluster's messages (a worker that died, ...) to the driver's standard output; while
        # the engine is in use they go to standard error, so a program's output stays its own.
        self._stdout = contextlib.redirect_stdout(sys.stderr)
        self._stdout.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        ray = import_ray()
        try:
            if getattr(self, "_context", None) is not None:
                context = ray.data.DataContext.get_current()
                (context.enable_progress_bars, context.print_on_execution_start,
                 context.execution_options.preserve_order,
                 context.wait_for_min_actors_s) = self._context  # fmt: skip
                self._context = None
            if self._started:
                ray.shutdown()
                self._started = False
        finally:
            if getattr(self, "_stdout", None) is not None:
                self._stdout.__exit__(None, None, None)
                self._stdout = None

    # ----------------------------------------------------------------------------------------- planning
    def plan(self, spec: str | Path) -> Plan:
        """The input's files (listed here) and pieces (one planning task per file, run on the cluster)."""
        paths = [str(p) for p in input_files(spec)]
        task = self._task(plan_file, 1)
        plans = _get(
            [task(path, number, self.piece_rows, self.piece_bytes) for number, path in enumerate(paths)]
        )
        files, pieces, headers = [], [], []
        for path, plan in zip(paths, plans, strict=True):
            files.append({"path": path, "sha256": plan["sha256"], "lines": plan["lines"]})
            pieces.extend(plan["pieces"])
            headers.append({"header": plan["header"], "header_line": plan["header_line"]})
        return Plan(files, pieces, headers)

    def _task(self, function, cpus: float):
        """``function`` as a Ray task (retried if its worker dies) run in the driver's working directory, so
        relative paths mean on every node what they mean here (a shared filesystem mounted alike)."""
        remote = import_ray().remote(num_cpus=cpus, max_retries=3)(_in_directory)
        cwd = os.getcwd()
        return lambda *args: remote.remote(cwd, function, *args)

    def check_fits(self) -> None:
        """Refuse an actor (or task) no node of the cluster can hold, rather than wait for it forever: Ray
        queues a request that fits nowhere. (A cluster that autoscales should start with one such node.)"""
        nodes = [node.get("Resources", {}) for node in import_ray().nodes() if node.get("Alive")]
        for name, option, wanted in (("CPU", "--cpus-per-actor", self.cpus_per_actor),
                                     ("GPU", "--gpus-per-actor", self.gpus_per_actor)):  # fmt: skip
            largest = max((node.get(name, 0) for node in nodes), default=0)
            if wanted > largest:
                raise ConfigError(
                    f"{option} {wanted:g}: no node of the cluster has that many {name}s (the largest has "
                    f"{largest:g})"
                )

    def pool_size(self) -> int:
        """``actors``, or as many as the cluster's CPUs (GPUs) fit; see ``check_fits``."""
        self.check_fits()
        resources = import_ray().cluster_resources()
        if self.actors is not None:
            return self.actors
        if self.gpus_per_actor:
            return max(1, int(resources["GPU"] // self.gpus_per_actor))
        return max(1, int(resources.get("CPU", 1) // self.cpus_per_actor))

    # ----------------------------------------------------------------------------------------- encoding
    def encode_to_folder(
        self,
        spec: str | Path,
        folder: str | Path,
        model: ModelSpec,
        reading: Reading,
        fingerprint: str,
        identity: str,
        bad_rows: BadRows | None = None,
        plan: Plan | None = None,
        pieces: Sequence[int] | None = None,
        scratch: bool = False,
    ) -> dict:
        """Encode every piece of ``spec`` into the embedding directory ``folder`` (resuming one an earlier
        run left), and write its manifest. ``fingerprint``: the weights every actor must load (see
        ``weights_fingerprint``); ``identity``: the model as the manifest names it. ``pieces``: only these
        (indices into the plan), for a caller that needs part of the input; the manifest then stays
        partial. ``scratch``: ``folder`` is ours alone (a work folder): one left by another job is replaced,
        not refused. Returns a report (``shards``, ``reused``, ``encoded``, ``count``, ``dimension``,
        ``truncated``); rows skipped under ``reading.policy`` are added to ``bad_rows``."""
        ray = import_ray()
        folder = Path(folder)
        bad_rows = _policy(bad_rows)
        plan = plan or self.plan(spec)
        for file, header in zip(plan.files, plan.headers, strict=True):
            columns = (reading.column,) + ((reading.id_column,) if reading.id_column else ())
            check_columns(header, file["path"], columns)
        expected = {
            "format": FORMAT,
            "engine": "ray",
            "model": identity,
            "backend": model.backend,
            "precision": model.precision,  # bf16 shards never mix with fp32 ones
            "normalize": model.normalize,
            "reading": asdict(reading),
            "shard_size": self.piece_rows,
            "sources": [{"path": f["path"], "sha256": f["sha256"]} for f in plan.files],
            "pieces": [p.to_dict() for p in plan.pieces],
        }
        _check_folder(folder, expected, scratch)
        wanted = range(len(plan.pieces)) if pieces is None else pieces
        todo = [k for k in wanted if read_sidecar(folder, k) is None]
        report = {"shards": len(wanted), "reused": len(wanted) - len(todo), "encoded": 0}
        if todo:
            items = [{"index": k, "piece": json.dumps(plan.pieces[k].to_dict())} for k in todo]
            dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                ShardWriter,
                fn_constructor_kwargs={
                    "model": model, "reading": reading, "folder": str(folder), "fingerprint": fingerprint,
                    "threads": int(self.cpus_per_actor), "faults": os.environ.get(FAULTS_ENV, ""),
                    "cwd": os.getcwd(),
                },
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=min(self.pool_size(), len(items))),
                num_cpus=self.cpus_per_actor,
                num_gpus=self.gpus_per_actor or None,
            )  # fmt: skip
            bar = _bar(self.show_progress, sum(plan.pieces[k].records for k in todo), "encode")
            failed: dict[int, BaseException] = {}
            rows = _iterate(dataset.iter_rows())
            try:
                for row in rows:
                    if row["error"]:
                        failed[int(row["index"])] = pickle.loads(row["error"])
                        break  # stops the job: under --on-bad-rows error the first bad row ends it
                    report["encoded"] += 1
                    bar.update(plan.pieces[int(row["index"])].records)
                    _fault("driver", folder, report["encoded"])
            finally:
                rows.close()
                bar.close()
            if failed:
                raise failed[min(failed)]
        infos = [read_sidecar(folder, k) for k in wanted]
        missing = [k for k, info in zip(wanted, infos, strict=True) if info is None]
        if missing:
            raise ModelFormatError(f"{folder}: shards {missing[:5]} were not written; rerun to finish them")
        for info in infos:
            _count_skipped(bad_rows, info)
        report["truncated"] = sum(info["truncated"] for info in infos)
        if any(info["skipped"] for info in infos):  # which input line each row comes from
            several = len(plan.files) > 1
            report["lines"] = [
                f"{plan.files[info['file']]['path']}:{line}" if several else line
                for info in infos
                for line in info["lines"]
            ]
        if pieces is None:
            _check_files_have_rows(plan, infos, bad_rows)
            report.update(_finish_manifest(folder, expected, plan, infos))
        return report

    def encode_to_npy(self, spec, output: str | Path, *args, **kwargs) -> dict:
        """``encode_to_folder`` into ``OUTPUT.parts/`` (kept for a resume until the end), then one (N, D)
        ``.npy`` array assembled shard by shard, written under a temporary name and renamed."""
        output = Path(output)
        parts = output.with_name(output.name + ".parts")
        report = self.encode_to_folder(spec, parts, *args, **kwargs, scratch=True)
        sizes = shard_sizes(_read_json(parts / MANIFEST))
        tmp = output.with_name(output.name + ".tmp")
        with writing(output, "the embeddings"):
            array = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float32, shape=(sum(sizes), report["dimension"])
            )
            start = 0
            for index, rows in enumerate(sizes):
                array[start : start + rows] = np.load(_shard_path(parts, index), mmap_mode="r")
                start += rows
            array.flush()
            del array
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, output)
        shutil.rmtree(parts, ignore_errors=True)
        return report

    # ------------------------------------------------------------------------------------------- dedup
    def search_pairs(
        self,
        folder: str | Path,
        threshold: float,
        similarity: str,
        top_k: int,
        kind: str = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
    ) -> tuple[list[tuple[int, int, float]], str]:
        """The pairs ``mine_duplicates`` would find in the embedding directory ``folder``, searched by one
        task per shard; returns (pairs, the kind used)."""
        from ..search.duplicates import merge_pairs
        from ..search.index import APPROXIMATE_FROM

        ray = import_ray()
        self.check_fits()
        folder = Path(folder)
        manifest = _read_json(folder / MANIFEST)
        sizes = shard_sizes(manifest)
        n = sum(sizes)
        if n < 2:
            raise ConfigError(f"dedup needs at least 2 texts, got {n}")
        if kind not in RAY_INDEX_KINDS:
            raise ConfigError(f"--index {kind}: with --engine ray, one of {', '.join(RAY_INDEX_KINDS)}")
        if kind == "auto":
            kind = "exact" if n < APPROXIMATE_FROM else "ivf"
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        shards = [(str(_shard_path(folder, k)), starts[k]) for k in range(len(sizes)) if sizes[k]]
        k = min(top_k, n - 1)
        if kind == "exact":
            corpus = load_rows(folder, sizes, None)
            if similarity == "cosine":
                _normalise_array(corpus)
            ref = ray.put(corpus)
            task = self._task(exact_pairs, self.cpus_per_actor)
            parts = _get([task(ref, start, start + sizes[i], k, threshold, int(self.cpus_per_actor))
                          for i, start in enumerate(starts) if sizes[i]])  # fmt: skip
        else:
            trained, nprobe = train_ivf(folder, sizes, similarity, kind, nlist, nprobe)
            add = self._task(ivf_add, self.cpus_per_actor)
            trained_ref = ray.put(trained)
            filled = _get([add(trained_ref, path, start, similarity) for path, start in shards])
            merged_ref = ray.put(ivf_merge(trained, filled))
            del filled
            search = self._task(ivf_search, self.cpus_per_actor)
            refine = (
                (str(folder), sizes) if kind == "ivf-pq" else None
            )  # compressed scores: re-scored exactly
            threads = int(self.cpus_per_actor)
            parts = _get([search(merged_ref, path, start, k, threshold, similarity, nprobe, threads,
                                 refine) for path, start in shards])  # fmt: skip
        rows = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        vals = np.concatenate([p[2] for p in parts])
        return merge_pairs(rows, cols, vals, n), kind

    def texts_of(self, folder: str | Path, plan: Plan, reading: Reading, rows: Sequence[int]) -> dict:
        """``{row: (text, line)}`` for the given rows of an embedding directory made by this engine, each
        piece read by one task (the driver never reads the corpus)."""
        manifest = _read_json(Path(folder) / MANIFEST)
        starts = [s["first_row"] for s in manifest["shards"]]
        wanted: dict[int, list[int]] = {}
        for row in sorted(set(int(r) for r in rows)):
            shard = int(np.searchsorted(starts, row, side="right")) - 1
            wanted.setdefault(shard, []).append(row - starts[shard])
        task = self._task(_piece_texts, 1)
        keys = list(wanted)
        found = _get([task(plan.pieces[k].to_dict(), reading, wanted[k]) for k in keys])
        result = {}
        for shard, pairs in zip(keys, found, strict=True):
            path = plan.files[plan.pieces[shard].file]["path"]
            for position, (text, line) in zip(wanted[shard], pairs, strict=True):
                where = line if len(plan.files) == 1 else f"{path}:{line}"
                result[starts[shard] + position] = (text, where)
        return result

    # ------------------------------------------------------------------------------------- archive add
    def archive_chunks(
        self, archive, path: str | Path, plan: Plan, reading: Reading, after_line: int, bad_rows: BadRows
    ) -> Iterator[tuple[list[tuple[int, str, int | None]], np.ndarray, int]]:
        """The rows of one file after ``after_line`` with their embeddings and the last line the piece
        covers, a piece at a time in input order:
        encoded on the cluster into a work folder inside the archive (reused by a rerun), then read back
        here to be committed. The caller removes the work folder (``archive_work``) when all is committed."""
        from ..io.streaming import weights_fingerprint

        tower = archive.model.tower("b")
        source = getattr(archive.model.encoder, "source_path", None) or archive.manifest["model"]["path"]
        allow_pickle = getattr(archive, "allow_pickle", False)
        model = ModelSpec(str(source), "model", "b", allow_pickle, archive.backend, archive.batch_size, None)
        last = max(plan.files[0]["lines"] + 1, after_line)  # past the last line, with or without a newline
        ends = [p.first_line - 1 for p in plan.pieces[1:]] + [last]
        todo = [k for k in range(len(plan.pieces)) if ends[k] > after_line]  # none for a header alone
        folder = archive_work(archive, plan)
        fingerprint = weights_fingerprint(tower)
        identity = f"archive tower b, weights {fingerprint}"
        self.encode_to_folder(path, folder, model, reading, fingerprint, identity, BadRows(reading.policy),
                              plan, todo, scratch=True)  # fmt: skip
        for k in todo:
            info = read_sidecar(folder, k)
            texts, lines, ids = reading.rows(plan.pieces[k], bad_rows)
            if lines != info["lines"]:
                raise ModelFormatError(f"{folder}: shard {k} does not match its piece of {path}; delete it")
            vectors = np.load(_shard_path(folder, k))
            keep = [i for i, line in enumerate(lines) if line > after_line]
            yield [(lines[i], texts[i], ids[i]) for i in keep], vectors[keep], ends[k]

    def archive_done(self, archive, plan: Plan) -> None:
        """A file's rows are all committed: its work folder goes (and ``ray-ingest/`` when it is empty)."""
        work = archive_work(archive, plan)
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.parent.rmdir()


def archive_work(archive, plan: Plan) -> Path:
    """The folder where the cluster writes the embeddings of a file being added to ``archive``."""
    return Path(archive.path) / "ray-ingest" / plan.files[0]["sha256"][:16]


# ---------------------------------------------------------------------------------------- driver side
def _iterate(rows):
    """Ray Data's rows, with an error raised on the cluster re-raised as ours (naming file and line)."""
    ray = import_ray()
    try:
        yield from rows
    except ray.exceptions.GetTimeoutError:
        raise ConfigError(
            f"the actor pool did not start in {ACTOR_START_SECONDS} s: the cluster lacks the resources for "
            "--actors x (--cpus-per-actor, --gpus-per-actor)"
        ) from None
    except Exception as exc:
        raise _ours(exc) from None


def _get(refs):
    ray = import_ray()
    try:
        return ray.get(refs)
    except Exception as exc:
        raise _ours(exc) from None


def _ours(exc: BaseException) -> BaseException:
    """The error of ours that a Ray error wraps (``RayTaskError.cause`` and the ``__cause__`` chain), or
    ``exc`` itself."""
    seen, queue = set(), [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen or current is None:
            continue
        seen.add(id(current))
        if isinstance(current, SbertSiameseError):
            return _plain(current)
        queue += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return exc


def _bar(show: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="text", desc=desc, disable=not show, file=sys.stderr)
