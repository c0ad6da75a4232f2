"""Duplicate mining at growing corpus sizes: sentence-transformers' paraphrase mining against our exact
chunked search and our faiss indexes, on the same embeddings, in one run.

The corpus is every distinct sentence-like text under --data-dir (STS, SICK, SNLI, MultiNLI, QQP, MRPC; about
215k), in a fixed shuffled order, so N = 10k / 50k / 100k are prefixes of one list. Embeddings come from
all-MiniLM-L6-v2 and are cached, sharded, in --cache-dir (a rerun reuses them). Each (method, N) runs in a
fresh subprocess so that its peak memory (max RSS) is its own.

Reported per N: seconds and peak RSS of each method; recall@10 of every method's per-text neighbours against
exact search; whether the top pairs agree with sentence-transformers'. A last line prints the speed ratios.
End to end, ``sbert-siamese dedup`` over the largest N (encode + search + groups) is timed as a user runs it.

Usage:
    python benchmarks/bench_dedup.py --data-dir ../shared/data --sizes 10000 50000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOP_K = 10


def build_corpus(data_dir: Path, limit: int, seed: int = 0) -> list[str]:
    """Distinct sentence-like fields (15-400 characters, a space, a word) of every data file, shuffled."""
    texts: set[str] = set()
    for path in sorted(data_dir.rglob("*")):
        name = path.name
        if not path.is_file() or name.startswith(("SOURCE", "README", "LICEN", "readme", "00-")):
            continue
        if ".gs." in name or "labels." in name or path.suffix in (".html", ".md", ".LICENSE"):
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for field in line.split("\t"):
                field = field.strip().strip('"').strip()
                if 15 <= len(field) <= 400 and " " in field and re.search("[A-Za-z]{3}", field):
                    texts.add(field)
    ordered = sorted(texts)
    random.Random(seed).shuffle(ordered)
    if len(ordered) < limit:
        raise SystemExit(f"only {len(ordered)} distinct texts under {data_dir}; ask for fewer")
    return ordered[:limit]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------ one method
def run_method(method: str, embeddings_path: str, n: int, out: str) -> None:
    """Child process: load the first n embeddings, mine top-10 neighbours, write timings and neighbours."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    from sentence_transformers.util import paraphrase_mining_embeddings

    from sbert_siamese.search import mine_duplicates

    embeddings = np.load(embeddings_path, mmap_mode="r")[:n].astype(np.float32)
    base_rss = peak_rss_mb()  # libraries imported and data loaded: what follows is the method's own
    started = time.perf_counter()
    if method == "st_paraphrase_mining":
        pairs = paraphrase_mining_embeddings(
            torch.from_numpy(embeddings), top_k=TOP_K, max_pairs=n * TOP_K, corpus_chunk_size=100_000
        )
        pairs = [(int(i), int(j), float(s)) for s, i, j in pairs]
    else:
        pairs = mine_duplicates(embeddings, None, TOP_K, "cosine", index=method)
    seconds = time.perf_counter() - started
    neighbours: dict[int, list[int]] = {}
    for i, j, _ in pairs:
        neighbours.setdefault(i, []).append(j)
        neighbours.setdefault(j, []).append(i)
    top_pairs = [(i, j) for i, j, _ in sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:1000]]
    result = {
        "method": method,
        "n": n,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": base_rss,
        "pairs": len(pairs),
        "top_pairs": top_pairs,
    }
    np.save(out + ".neighbours.npy", _top_rows(pairs, n))
    Path(out).write_text(json.dumps(result))


def _top_rows(pairs, n: int) -> np.ndarray:
    """(n, TOP_K) neighbour indices per row (-1 padded), best first, from the symmetric pair list."""
    rows: list[list[tuple[float, int]]] = [[] for _ in range(n)]
    for i, j, s in pairs:
        rows[i].append((s, j))
        rows[j].append((s, i))
    table = np.full((n, TOP_K), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        best = [j for _, j in sorted(row, key=lambda t: (-t[0], t[1]))[:TOP_K]]
        table[i, : len(best)] = best
    return table


def recall_against(exact: np.ndarray, other: np.ndarray) -> float:
    hits = total = 0
    for e, o in zip(exact, other, strict=True):
        truth = set(e[e >= 0].tolist())
        hits += len(truth & set(o[o >= 0].tolist()))
        total += len(truth)
    return hits / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--methods", nargs="+", default=["st_paraphrase_mining", "exact", "hnsw", "ivf"])
    parser.add_argument("--cache-dir", default="runs/bench_dedup")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "EMB", "N", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_method(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return

    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    largest = max(args.sizes)
    corpus = build_corpus(Path(args.data_dir), largest)
    corpus_file = cache / f"corpus_{largest}.txt"
    corpus_file.write_text("\n".join(t.replace("\n", " ") for t in corpus) + "\n", encoding="utf-8")

    # 1. end to end, as a user runs it: encode (sharded, resumable) + exact/auto search + groups
    from sbert_siamese.streaming import load_embeddings

    started = time.perf_counter()
    command = [
        sys.executable, "-m", "sbert_siamese.cli", "dedup", "--model", "all-MiniLM-L6-v2",
        "--input", str(corpus_file), "--output", str(cache / "pairs.jsonl"), "--threshold", "0.9",
        "--embeddings", str(cache / "embeddings"), "--batch-size", "64", "-q",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    end_to_end = json.loads(done.stdout)
    end_to_end["wall_seconds"] = time.perf_counter() - started
    end_to_end["peak_rss_mb"] = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    embeddings_file = cache / f"embeddings_{largest}.npy"
    np.save(embeddings_file, load_embeddings(cache / "embeddings", mmap=False))

    # 2. each method at each size, each in its own process
    results = []
    for n in sorted(args.sizes):
        for method in args.methods:
            out = str(cache / f"{method}_{n}.json")
            child = ["--child", method, str(embeddings_file), str(n), out]
            subprocess.run([sys.executable, __file__, "--data-dir", args.data_dir, *child], check=True)
            results.append(json.loads(Path(out).read_text()))
    for r in results:
        exact = np.load(str(cache / f"exact_{r['n']}.json") + ".neighbours.npy")
        mine = np.load(str(cache / f"{r['method']}_{r['n']}.json") + ".neighbours.npy")
        r["recall_at_10"] = recall_against(exact, mine)
        st = next(x for x in results if x["n"] == r["n"] and x["method"] == "st_paraphrase_mining")
        r["top_1000_pairs_same_as_st"] = len(
            set(map(tuple, r["top_pairs"])) & set(map(tuple, st["top_pairs"]))
        )

    print(f"machine: {os.cpu_count()} cores; top_k={TOP_K}; all-MiniLM-L6-v2 embeddings (384-d)")
    print("peak MB: the process's peak RSS; +MB: above what it held after imports and loading embeddings")
    print(
        f"{'N':>7} {'method':<22} {'seconds':>8} {'peak MB':>8} {'+MB':>6} {'recall@10':>9} "
        f"{'top-1000=ST':>11}"
    )
    for r in results:
        print(
            f"{r['n']:>7} {r['method']:<22} {r['seconds']:>8.2f} {r['peak_rss_mb']:>8.0f} "
            f"{r['peak_rss_mb'] - r['rss_before_mb']:>6.0f} "
            f"{r['recall_at_10']:>9.4f} {r['top_1000_pairs_same_as_st']:>11}"
        )
    print(
        f"end to end: sbert-siamese dedup over {largest:,} texts (encode + search + groups): "
        f"{end_to_end['wall_seconds']:.0f} s wall, encode {end_to_end['encode_seconds']:.0f} s, "
        f"search {end_to_end['search_seconds']:.1f} s, peak RSS {end_to_end['peak_rss_mb']:.0f} MB, "
        f"index {end_to_end['index']}, {end_to_end['pairs']} pairs >= 0.9 in {end_to_end['groups']} groups"
    )
    ratios = []
    for n in sorted(args.sizes):
        st = next(r for r in results if r["n"] == n and r["method"] == "st_paraphrase_mining")
        for r in results:
            if r["n"] == n and r["method"] != "st_paraphrase_mining":
                ratios.append(f"{r['method']}@{n // 1000}k {st['seconds'] / r['seconds']:.1f}x")
    summary = {"results": [{k: v for k, v in r.items() if k != "top_pairs"} for r in results],
               "end_to_end": end_to_end}  # fmt: skip
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "dedup.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("speed vs sentence-transformers paraphrase_mining: " + ", ".join(ratios))


if __name__ == "__main__":
    main()
