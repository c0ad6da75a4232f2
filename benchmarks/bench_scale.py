"""Scale-out: ``sbert-siamese encode`` on this machine against ``--engine ray`` on this machine, the same job,
then a projection to N machines from what was measured.

Texts: --texts distinct real texts from --data-dir, the corpus of ``bench_serve.py`` (every Quora question of
the qqp-* folders, then SNLI / MultiNLI / SICK / STS / MRPC sentences, in a fixed shuffled order; whitespace
runs collapsed, so one text per line), written to a temporary .txt file (--work-dir, removed at the end).
Nothing is copied into the repository.

Steps, all with all-MiniLM-L6-v2 from its installed package, --backend, --batch-size:
1. Local: what ``sbert-siamese encode --input T.txt --output DIR`` does: read the file, load the model, its
   weights' fingerprint, ``encode_to_disk`` in shards of 10,000 (torch with all cores). Wall time from
   reading the file to the manifest written.
2. Ray: what ``sbert-siamese encode ... --engine ray`` does without --ray-address: the driver loads the model
   (fingerprint), a fresh local Ray is started (``RayEngine``: ray.init), the input is planned into pieces
   (one task per file) and ``encode_to_folder`` runs an actor pool (--actors, default: as many as cores, each
   --cpus-per-actor cores and torch threads), then Ray is shut down. Wall time from the model load to the
   shutdown, with each part on its own; a thread notes when each shard's sidecar appears. Overhead =
   (Ray - local) / local; the issue's target is <= 15% at one machine. ``import ray`` is done before and
   reported apart (the local path's ``import torch`` is not timed either).
3. Both outputs must hold the same embeddings (max |difference| <= 1e-5).
4. Throughput per actor: from the Ray run, the pool's rate once every actor is busy (rows of the shards
   finished after the first wave, over the time from the first wave to the last shard) divided by the actors,
   and texts / encode seconds / actors (all included); then a 1-actor job (1 core) on the first
   --per-actor-texts texts, cut into 5 pieces, rate from its 2nd to its last shard: one actor alone.
5. Merge cost: ``RayEngine.search_pairs(kind="ivf")`` on the Ray output (threshold 0.9, cosine, top 10),
   timed whole, then its steps one by one (the engine's own functions): k-means training on a sample (driver),
   one add task per shard, the merge of the per-shard indexes (driver), the search, one task per shard. Also
   ``kind="exact"`` up to 50,000 texts.
6. A projection for N machines of --cores-per-machine cores and --project-texts texts: encode = texts /
   (N x actors per machine x per-actor rate) + planning (one file: one task scans it, so it grows with the
   input; its rate is the driver's own scan of the file, timed apart) + the fixed cost measured here (Ray
   start, driver model load, task and actor start, shutdown: the Ray wall time less the texts' encoding at
   the per-actor rate and the scan). The dedup steps scale by their work at the engine's default IVF
   settings (nlist = 1.6 sqrt(n), nprobe = search.sharded.DEDUP_NPROBE, 16): training and merge run on the
   driver (training: sample x nlist; merge: linear in n), add and search run spread over every actor (add:
   n x nlist; search: n x (nlist + nprobe x n / nlist), about n^1.5). The assumptions are printed with the
   table.

Prints the CPU model and flags first, a readable report, and last one JSON line with every number (also
written to --output).

Usage:
    python benchmarks/bench_scale.py --data-dir ../shared/data [--texts 100000] [--actors 2]
        [--cpus-per-actor 1] [--backend torch] [--project-texts 100000000] [--cores-per-machine 2]
    python benchmarks/bench_scale.py --texts 2000 --per-actor-texts 500   # a quick run
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = "all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8")
LOCAL_SHARD_SIZE = 10_000  # the CLI's --shard-size default
OVERHEAD_TARGET = 0.15
MAX_DIFF = 1e-5
EXACT_UP_TO = 50_000
MACHINES = (1, 2, 4, 8, 16, 32)
TRAIN_SAMPLE_AT_LEAST = 10_000  # search.sharded.train_ivf: k-means sample = min(n, max(32 nlist, 10,000))


# ------------------------------------------------------------------------------------------------ data
def corpus_tools():
    """``build_corpus`` and ``cpu_info`` of bench_serve.py (this folder is not a package)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from bench_serve import build_corpus, cpu_info

    return build_corpus, cpu_info


def write_texts(texts: list[str], path: Path) -> None:
    """One text per line: whitespace runs (a line break among them) become one space, ends trimmed."""
    lines = [" ".join(t.split()) for t in texts]
    if not all(lines):
        raise SystemExit(f"{lines.count('')} texts are blank")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------- timing
class SidecarWatch:
    """Notes when each shard's sidecar (``shard_NNNNN.json``, written last, under a temporary name first)
    appears in ``folder``: seconds from entering, polled every ``interval`` seconds by a thread."""

    def __init__(self, folder: Path, interval: float = 0.05):
        self.folder, self.interval = Path(folder), interval
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()

    def __enter__(self) -> SidecarWatch:
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._scan()

    def _scan(self) -> None:
        now = time.perf_counter() - self.started
        for path in self.folder.glob("shard_*.json"):
            self.seen.setdefault(int(path.stem.removeprefix("shard_")), now)


def shard_rows(folder: Path) -> dict[int, int]:
    """Rows of each shard, from the sidecars of a folder the Ray engine wrote."""
    return {
        int(p.stem.removeprefix("shard_")): json.loads(p.read_text(encoding="utf-8"))["rows"]
        for p in folder.glob("shard_*.json")
    }


def steady_rate(seen: dict[int, float], rows: dict[int, int], slots: int) -> float | None:
    """Texts/s of a pool of ``slots`` actors once all are busy: the rows of the shards finished after the
    first ``slots`` ones, over the time from the ``slots``-th to the last. None with too few shards. It
    assumes the actors work in waves (equal pieces); a last wave with idle actors lowers it a little."""
    order = sorted(seen, key=seen.get)
    if len(order) <= slots:
        return None
    elapsed = seen[order[-1]] - seen[order[slots - 1]]
    return sum(rows[k] for k in order[slots:]) / elapsed if elapsed > 0 else None


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# ------------------------------------------------------------------------------------------- the runs
def run_local(args, model_path: Path, text_file: Path, folder: Path) -> dict:
    """``sbert-siamese encode --input text_file --output folder`` in this process, timed in parts."""
    from sbert_siamese.data.texts import read_texts
    from sbert_siamese.io.streaming import encode_to_disk, weights_fingerprint
    from sbert_siamese.models.encoder import SiameseEncoder

    started = time.perf_counter()
    texts = read_texts(text_file)
    read_s = time.perf_counter() - started
    encoder = SiameseEncoder.from_pretrained(model_path)
    identity = f"{model_path}, weights {weights_fingerprint(encoder)}"
    model_s = time.perf_counter() - started - read_s
    report = encode_to_disk(
        encoder, texts, folder, LOCAL_SHARD_SIZE, args.batch_size, None, identity,
        show_progress_bar=False, backend=args.backend,
    )  # fmt: skip
    wall = time.perf_counter() - started
    encode_s = wall - read_s - model_s
    return {
        "wall_s": wall,
        "read_s": read_s,
        "model_s": model_s,
        "encode_s": encode_s,
        "texts": report["count"],
        "texts_per_s": report["count"] / wall,
        "encode_texts_per_s": report["count"] / encode_s,
        "torch_threads": __import__("torch").get_num_threads(),
        "shards": report["shards"],
    }


def run_ray(args, model_path: Path, text_file: Path, folder: Path, actors: int, cpus: float, rows: int):
    """``sbert-siamese encode --engine ray`` in this process: a fresh local Ray unless one is running (then
    ``init_s`` and ``shutdown_s`` are about 0), timed in parts."""
    from sbert_siamese.data.rows import BadRows
    from sbert_siamese.engines.ray import ModelSpec, RayEngine, Reading
    from sbert_siamese.io.streaming import weights_fingerprint
    from sbert_siamese.models.encoder import SiameseEncoder

    started = time.perf_counter()
    # as the CLI: the driver loads the model once, for the fingerprint every actor's copy must match
    fingerprint = weights_fingerprint(SiameseEncoder.from_pretrained(model_path))
    model_s = time.perf_counter() - started
    model = ModelSpec(str(model_path), "encoder", "a", False, args.backend, args.batch_size, None, "fp32")
    engine = RayEngine(actors=actors, cpus_per_actor=cpus, piece_rows=rows)
    mark = time.perf_counter()
    with engine:
        init_s = time.perf_counter() - mark
        mark = time.perf_counter()
        plan = engine.plan(str(text_file))
        plan_s = time.perf_counter() - mark
        mark = time.perf_counter()
        with SidecarWatch(folder) as watch:
            report = engine.encode_to_folder(
                str(text_file), folder, model, Reading(), fingerprint, f"{model_path}, weights {fingerprint}",
                BadRows("error"), plan,
            )  # fmt: skip
        encode_s = time.perf_counter() - mark
        pool = min(engine.pool_size(), len(plan.pieces))
        mark = time.perf_counter()
    shutdown_s = time.perf_counter() - mark
    wall = time.perf_counter() - started
    rows_of = shard_rows(folder)
    nodes = sorted({json.loads(p.read_text())["node"] for p in folder.glob("shard_*.json")})
    seen = sorted(watch.seen.values())
    steady = steady_rate(watch.seen, rows_of, pool)
    return {
        "wall_s": wall,
        "model_s": model_s,
        "init_s": init_s,
        "plan_s": plan_s,
        "encode_s": encode_s,
        "shutdown_s": shutdown_s,
        "first_shard_s": seen[0] if seen else None,
        "last_shard_s": seen[-1] if seen else None,
        "texts": report["count"],
        "texts_per_s": report["count"] / wall,
        "pieces": len(plan.pieces),
        "piece_rows": rows,
        "actors": pool,
        "cpus_per_actor": cpus,
        "nodes": len(nodes),
        "steady_texts_per_s": steady,
        "steady_per_actor_texts_per_s": steady / pool if steady else None,
        "encode_per_actor_texts_per_s": report["count"] / encode_s / pool,
    }


def ivf_steps(engine, folder: Path, threshold: float, top_k: int, similarity: str = "cosine") -> dict:
    """``RayEngine.search_pairs(kind="ivf")`` step by step with the engine's own functions, each timed."""
    import ray

    from sbert_siamese.io.streaming import _shard_path, read_manifest, shard_sizes
    from sbert_siamese.search.duplicates import merge_pairs
    from sbert_siamese.search.faiss_index import ivf_nlist
    from sbert_siamese.search.sharded import ivf_add, ivf_merge, ivf_search, train_ivf

    sizes = shard_sizes(read_manifest(folder))
    n = sum(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    shards = [(str(_shard_path(folder, k)), starts[k]) for k in range(len(sizes)) if sizes[k]]
    k = min(top_k, n - 1)
    cpus = engine.cpus_per_actor
    times: dict[str, float] = {}
    mark = time.perf_counter()
    trained, nprobe = train_ivf(folder, sizes, similarity, "ivf", None, None)
    times["train_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    add = ray.remote(num_cpus=cpus, max_retries=3)(ivf_add)
    trained_ref = ray.put(trained)
    filled = ray.get([add.remote(trained_ref, path, start, similarity) for path, start in shards])
    times["add_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    merged = ivf_merge(trained, filled)
    times["merge_s"] = time.perf_counter() - mark
    del filled
    mark = time.perf_counter()
    merged_ref = ray.put(merged)
    times["put_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    search = ray.remote(num_cpus=cpus, max_retries=3)(ivf_search)
    parts = ray.get([search.remote(merged_ref, path, start, k, threshold, similarity, nprobe, int(cpus))
                     for path, start in shards])  # fmt: skip
    times["search_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pairs = merge_pairs(*(np.concatenate([p[i] for p in parts]) for i in range(3)), n)
    times["pairs_s"] = time.perf_counter() - mark
    return {
        **times,
        "pairs": len(pairs),
        "nlist": ivf_nlist(n),
        "nprobe": nprobe,
        "index_bytes": len(merged),
        "dimension": int(np.load(shards[0][0], mmap_mode="r").shape[1]),
        "shards": len(shards),
        "vectors": n,
    }


def run_search(args, folder: Path, actors: int, cpus: float, rows: int, usable: int) -> dict:
    """Dedup search on the Ray output, in a Ray of its own (started outside the timings)."""
    from sbert_siamese.engines.ray import RayEngine

    result: dict = {"threshold": args.threshold, "top_k": args.top_k, "similarity": "cosine"}
    with RayEngine(actors=actors, cpus_per_actor=cpus, piece_rows=rows) as engine:
        for kind in ("ivf", "exact"):
            if kind == "exact" and result.get("vectors", 0) > EXACT_UP_TO:
                continue
            mark = time.perf_counter()
            pairs, used = engine.search_pairs(folder, args.threshold, "cosine", args.top_k, kind=kind)
            result[kind] = {"total_s": time.perf_counter() - mark, "pairs": len(pairs), "kind": used}
            if kind == "ivf":
                result["ivf_steps"] = ivf_steps(engine, folder, args.threshold, args.top_k)
                result["vectors"] = result["ivf_steps"]["vectors"]
    # tasks of num_cpus=cpus run at once on this machine: at most its cores / cpus, at most one per shard
    result["slots"] = max(1, min(int(usable // cpus), result["ivf_steps"]["shards"]))
    return result


# ---------------------------------------------------------------------------------------- projection
def ivf_work(n: int) -> dict[str, float]:
    """Relative work of each IVF step for n vectors at the engine's default nlist and nprobe."""
    from sbert_siamese.search.clustered import KMEANS_SAMPLE_PER_LIST
    from sbert_siamese.search.faiss_index import ivf_nlist
    from sbert_siamese.search.sharded import DEDUP_NPROBE

    nlist = ivf_nlist(n)
    nprobe = min(nlist, DEDUP_NPROBE)
    sample = min(n, max(KMEANS_SAMPLE_PER_LIST * nlist, TRAIN_SAMPLE_AT_LEAST))
    return {
        "train": sample * nlist,  # k-means: every sample point against every centroid, fixed iterations
        "add": n * nlist,  # each vector assigned to its nearest centroid
        "merge": n,  # inverted lists concatenated
        "search": n * (nlist + nprobe * n / nlist),  # each query: the centroids, then nprobe lists
        "nlist": nlist,
        "nprobe": nprobe,
    }


def project(record: dict, args, actors_per_machine: int) -> list[dict]:
    search = record["search"]
    n, target = record["texts"], args.project_texts
    rate = record["per_actor_rate_used"]
    fixed = record["fixed_s"]
    plan_per_text = record["plan_scan_s"] / n
    steps = search["ivf_steps"]
    here, there = ivf_work(n), ivf_work(target)
    rows = []
    for machines in args.machines:
        slots = machines * actors_per_machine
        texts_s = target / (slots * rate)
        plan_s = plan_per_text * target
        encode = fixed + plan_s + texts_s
        train = steps["train_s"] * there["train"] / here["train"]
        merge = steps["merge_s"] * there["merge"] / here["merge"]
        add = steps["add_s"] * search["slots"] / slots * there["add"] / here["add"]
        find = steps["search_s"] * search["slots"] / slots * there["search"] / here["search"]
        rows.append({
            "machines": machines, "actors": slots, "encode_s": encode, "encode_texts_s": texts_s,
            "plan_s": plan_s, "fixed_s": fixed, "ivf_train_s": train, "ivf_add_s": add,
            "ivf_merge_s": merge, "ivf_search_s": find, "total_s": encode + train + add + merge + find,
        })  # fmt: skip
    base = rows[0]["encode_s"]
    for row in rows:
        row["encode_speedup"] = base / row["encode_s"]
    return rows


def projection_table(rows: list[dict]) -> str:
    lines = [
        "| machines | actors | encode | of it: texts | plan (1 file) | fixed | encode speed-up | IVF train "
        "(driver) | IVF add (spread) | IVF merge (driver) | IVF search (spread) | encode + dedup |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['machines']} | {r['actors']} | {human(r['encode_s'])} | {human(r['encode_texts_s'])} | "
            f"{human(r['plan_s'])} | {human(r['fixed_s'])} | {r['encode_speedup']:.1f}x | "
            f"{human(r['ivf_train_s'])} | {human(r['ivf_add_s'])} | {human(r['ivf_merge_s'])} | "
            f"{human(r['ivf_search_s'])} | {human(r['total_s'])} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> None:
    from sbert_siamese.cli.options import HelpFormatter  # the CLI's: text as written, every default shown

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="holds qqp-*/ etc.")
    parser.add_argument(
        "--texts", type=int, default=100_000, help="distinct texts to encode (e.g. 2000 for a quick run)"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="encode backend, both paths")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass, both paths")
    parser.add_argument(
        "--actors",
        type=int,
        default=None,
        help="Ray actors (default: this machine's cores / --cpus-per-actor)",
    )
    parser.add_argument("--cpus-per-actor", type=float, default=1.0, help="cores (torch threads) per actor")
    parser.add_argument(
        "--piece-rows", type=int, default=None,
        help="rows per Ray piece (default: 10,000 as the CLI's --shard-size, fewer when that would leave an "
        "actor under 4 pieces, so that the pool's steady rate can be measured)",
    )  # fmt: skip
    parser.add_argument(
        "--per-actor-texts", type=int, default=10_000, help="texts of the 1-actor job (its first ones)"
    )
    parser.add_argument("--threshold", type=float, default=0.9, help="dedup search: cosine threshold")
    parser.add_argument("--top-k", type=int, default=10, help="dedup search: neighbours per text")
    parser.add_argument("--project-texts", type=int, default=100_000_000, help="texts of the projected job")
    parser.add_argument("--cores-per-machine", type=int, default=2, help="cores of each projected machine")
    parser.add_argument(
        "--machines", type=int, nargs="+", default=list(MACHINES), help="projected machine counts"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None,
        help="where the temporary text file and embeddings go (default: the system's temporary folder)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "bench_scale.json", help="JSON")
    args = parser.parse_args(argv)
    if args.texts < 2 or args.per_actor_texts < 2:
        parser.error("--texts and --per-actor-texts must be >= 2")
    if args.cores_per_machine < args.cpus_per_actor:
        parser.error("--cores-per-machine must hold at least one actor (--cpus-per-actor)")
    if not list(args.data_dir.glob("qqp-*")):
        sys.exit(
            f"no qqp-* folders under {args.data_dir}: pass --data-dir (the folder that holds qqp-subset/)"
        )
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    actors = args.actors or max(1, int(usable // args.cpus_per_actor))
    piece_rows = args.piece_rows or max(1, min(LOCAL_SHARD_SIZE, math.ceil(args.texts / (4 * actors))))

    import torch

    import sbert_siamese
    from sbert_siamese.models.resolve import offline_package_path

    build_corpus, cpu_info = corpus_tools()
    machine = cpu_info()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in machine["flags"].items())
    print(f"CPU: {machine['model']}, {machine['usable_cores']} usable cores; {flags}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = "  (the machine is busy: timings suffer)" if load > 0.5 else ""
    print(f"load average (1 min) at start: {load:.2f}{busy}")
    model_path = offline_package_path(MODEL)
    if model_path is None:
        sys.exit(f"{MODEL} is not installed as a package here (sbert_siamese.models.resolve)")

    started = time.perf_counter()
    corpus, _ = build_corpus(args.data_dir, args.texts, 0)
    print(f"texts: {len(corpus):,} distinct, from {args.data_dir} ({time.perf_counter() - started:.1f} s)")

    mark = time.perf_counter()
    import ray
    import ray.data  # noqa: F401  (its loggers exist once it is imported)

    for name in [n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]:
        logging.getLogger(name).setLevel(logging.ERROR)  # as the CLI: Ray's INFO lines stay quiet
    ray_import_s = time.perf_counter() - mark
    if ray.is_initialized():
        sys.exit("Ray is already running in this process: the Ray run must start its own")
    import faiss

    record: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "load_average_at_start": load,
        "python": sys.version.split()[0],
        "versions": {
            "torch": torch.__version__,
            "ray": ray.__version__,
            "faiss": faiss.__version__,
            "sbert_siamese": getattr(sbert_siamese, "__version__", None),
        },
        "model": MODEL,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "texts": len(corpus),
        "ray_import_s": ray_import_s,
    }
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_scale_", dir=args.work_dir))
    try:
        measure(args, record, work, corpus, model_path, actors, piece_rows, usable)
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.output}")
    print(json.dumps(record))


def measure(args, record: dict, work: Path, corpus: list[str], model_path: Path, actors: int,
            piece_rows: int, usable: int) -> None:  # fmt: skip
    """Steps 1-6 of the module's docstring, printed as they go; every number goes into ``record``."""
    from sbert_siamese.data.pieces import plan_file
    from sbert_siamese.engines.ray import RayEngine
    from sbert_siamese.io.streaming import load_embeddings

    cpus = args.cpus_per_actor
    per_actor_texts = min(args.per_actor_texts, len(corpus))
    text_file, subset_file = work / "texts.txt", work / "subset.txt"
    write_texts(corpus, text_file)
    write_texts(corpus[:per_actor_texts], subset_file)

    say(
        f"\n1. local: encode_to_disk, {args.backend}, batch {args.batch_size}, shards of {LOCAL_SHARD_SIZE:,}"
    )
    local = record["local"] = run_local(args, model_path, text_file, work / "local")
    say(
        f"   {human(local['wall_s'])} wall ({local['texts_per_s']:.1f} texts/s): read "
        f"{local['read_s']:.1f} s, model {local['model_s']:.1f} s, encode {local['encode_s']:.1f} s "
        f"({local['encode_texts_per_s']:.1f} texts/s); torch threads {local['torch_threads']}"
    )

    say(
        f"\n2. ray: a fresh local Ray, {actors} actor(s) x {cpus:g} core(s), pieces of {piece_rows:,} rows "
        f"(import ray: {record['ray_import_s']:.1f} s, not counted)"
    )
    r = record["ray"] = run_ray(args, model_path, text_file, work / "ray", actors, cpus, piece_rows)
    ratio = r["wall_s"] / local["wall_s"]
    overhead = ratio - 1
    record.update(ray_vs_local=ratio, overhead=overhead)
    say(
        f"   {human(r['wall_s'])} wall ({r['texts_per_s']:.1f} texts/s): driver model {r['model_s']:.1f} s, "
        f"ray.init {r['init_s']:.1f} s, plan {r['plan_s']:.1f} s, encode {r['encode_s']:.1f} s (first shard "
        f"after {r['first_shard_s']:.1f} s, last after {r['last_shard_s']:.1f} s; {r['pieces']} pieces, "
        f"{r['actors']} actors on {r['nodes']} node(s)), shutdown {r['shutdown_s']:.1f} s"
    )
    met = overhead <= OVERHEAD_TARGET
    say(
        f"   ray / local: {ratio:.3f}; overhead {100 * overhead:+.1f}% "
        f"(target <= {100 * OVERHEAD_TARGET:.0f}%: {'met' if met else 'NOT met'})"
    )

    a, b = load_embeddings(work / "local"), load_embeddings(work / "ray")
    diff = record["max_abs_diff"] = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
    say(
        f"\n3. same embeddings: shapes {a.shape} / {b.shape}, max |difference| {diff:.2e} "
        f"(must be <= {MAX_DIFF:g}: {'ok' if diff <= MAX_DIFF else 'FAILED'})"
    )
    del a, b

    say(f"\n4. dedup search of the Ray output (cosine >= {args.threshold}, top {args.top_k}), own Ray")
    search = record["search"] = run_search(args, work / "ray", actors, cpus, piece_rows, usable)
    steps = search["ivf_steps"]
    say(
        f"   search_pairs ivf: {search['ivf']['total_s']:.2f} s (the first tasks of this Ray: worker start "
        f"included), {search['ivf']['pairs']:,} pairs (nlist "
        f"{steps['nlist']}, nprobe {steps['nprobe']}, merged index {steps['index_bytes'] / 1e6:.1f} MB)"
    )
    say(
        f"   its steps: train {steps['train_s']:.2f} s (driver), add {steps['add_s']:.2f} s "
        f"({steps['shards']} tasks), merge {steps['merge_s']:.3f} s (driver), put {steps['put_s']:.3f} s, "
        f"search {steps['search_s']:.2f} s ({steps['shards']} tasks), pairs {steps['pairs_s']:.3f} s; "
        f"{steps['pairs']:,} pairs"
    )
    exact = search.get("exact")
    say(
        f"   search_pairs exact: {exact['total_s']:.2f} s, {exact['pairs']:,} pairs"
        if exact
        else f"   search_pairs exact: skipped above {EXACT_UP_TO:,} texts"
    )

    say(f"\n5. one actor alone ({cpus:g} core(s)), {per_actor_texts:,} texts in 5 pieces")
    with RayEngine(actors=1):  # a Ray of its own, started outside the timing
        one = run_ray(args, model_path, subset_file, work / "one", 1, cpus, math.ceil(per_actor_texts / 5))
    record["single_actor"] = one
    one_rate = one["steady_texts_per_s"] or one["encode_per_actor_texts_per_s"]
    pool_rate = r["steady_per_actor_texts_per_s"]
    note = "" if one["steady_texts_per_s"] else " (whole encode: too few pieces for a steady rate)"
    say(f"   one actor: {one_rate:.1f} texts/s{note}")
    busy = f"{pool_rate:.1f} texts/s once all were busy, " if pool_rate else ""
    say(
        f"   per actor in the {r['actors']}-actor run: {busy}{r['encode_per_actor_texts_per_s']:.1f} texts/s "
        f"over the whole encode (actor start included); local: "
        f"{local['encode_texts_per_s'] / usable:.1f} texts/s per core"
    )
    # the projection's rate: actors sharing a machine, as on each of N machines; else one actor alone
    rate = record["per_actor_rate_used"] = pool_rate or one_rate
    record["per_actor_rate_source"] = "the pool, all busy" if pool_rate else "one actor alone"
    # the plan's own work (scanning the file, as its task does), apart from the task's start-up
    mark = time.perf_counter()
    plan_file(text_file, 0, piece_rows)
    scan_s = record["plan_scan_s"] = time.perf_counter() - mark
    # all but the texts' encoding and the file's scan: Ray start, driver model, plan task and actor start,
    # manifest, shutdown
    record["fixed_s"] = max(0.0, r["wall_s"] - scan_s - record["texts"] / (r["actors"] * rate))
    say(
        f"   fixed cost of the Ray run: {record['fixed_s']:.1f} s; the plan's scan of the file {scan_s:.2f} s"
    )

    actors_per_machine = max(1, int(args.cores_per_machine // cpus))
    rows = record["projection"] = project(record, args, actors_per_machine)
    table = record["table_markdown"] = projection_table(rows)
    say(
        f"\n6. projection: {args.project_texts:,} texts on N machines of {args.cores_per_machine} cores "
        f"({actors_per_machine} actor(s) of {cpus:g} core(s) each)\n"
    )
    say(table)
    say("\n" + assumptions(record, args))
    record["targets"] = {
        f"ray overhead <= {100 * OVERHEAD_TARGET:.0f}% at one machine": met,
        f"max |difference| <= {MAX_DIFF:g}": diff <= MAX_DIFF,
    }


def assumptions(record: dict, args) -> str:
    there = ivf_work(args.project_texts)
    index_gb = args.project_texts * (4 * record["search"]["ivf_steps"]["dimension"] + 8) / 1e9
    plan_per_million = record["plan_scan_s"] / record["texts"] * 1e6
    rate, source = record["per_actor_rate_used"], record["per_actor_rate_source"]
    return "\n".join([
        f"assumptions: {rate:.1f} texts/s per actor ({source}, measured here), every actor as fast, the "
        "input on a shared filesystem that keeps up;",
        f"  fixed {record['fixed_s']:.1f} s (Ray start, driver model load, task and actor start, shutdown), "
        "as measured here, not growing with the machines;",
        f"  plan: one input file, scanned by one task at {plan_per_million:.1f} s per million texts (the "
        "driver's scan of this file; several files are planned in parallel);",
        "  IVF at the engine's defaults (nlist = 1.6 sqrt(n), nprobe 16): train and "
        "merge on the driver, train ~ sample x nlist (~ n), merge ~ n;",
        "  add ~ n x nlist and search ~ n x (nlist + nprobe x n / nlist), spread evenly over every actor; "
        f"at {args.project_texts:,} texts nlist {there['nlist']:,}, nprobe {there['nprobe']:,};",
        f"  memory: the merged IVF-flat index takes ~{index_gb:,.1f} GB (float32 vectors + int64 ids), on "
        "the driver and in every search task (ivf-pq: ~56 bytes per vector).",
    ])  # fmt: skip


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    main()
