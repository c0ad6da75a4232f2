"""``--backend auto``: the fastest backend whose quality loss on the model's own data is within a budget.

``sbert-siamese export`` measures every backend of a model on this machine and writes what it found to
``backends.json`` in the model directory:

- speed: texts/s encoding the calibration texts (best of ``rounds`` after a warm-up);
- quality loss: with labelled dev pairs, ``|metric(fp32) - metric(backend)|`` where the metric is STS
  Spearman (scores) or average precision (0/1 labels) of the pairs' cosine similarities; without them,
  ``1 - Spearman`` between the fp32 and the backend's cosine similarities over pairs of calibration texts
  (stricter: it counts every reordering, also those no task would notice).

``choose`` then takes the fastest backend whose loss is within the budget (0.005 by default, the width of a
typical run-to-run difference on STS-B). A backend that is exact (``EXACT``: same embeddings within 1e-5)
has no loss by definition. ``resolve`` turns ``auto`` into that choice when an encoder is asked to encode;
a model without a ``backends.json`` for its current weights falls back to ``FALLBACK``, exact and never
slower than torch in our measurements (benchmarks/README.md), so ``auto`` never loses quality unmeasured.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelFormatError
from ..io.safe_io import atomic_write_text
from . import BACKENDS, EXACT, check_backend, exported_file

logger = logging.getLogger(__name__)

AUTO = "auto"
CHOICE_FILE = "backends.json"
DEFAULT_BUDGET = 0.005
FALLBACK = "onnx"
PAIRS_OF_TEXTS = 20_000  # calibration-text pairs the label-free loss is measured on


def cpu_flags() -> list[str]:
    """The CPU's vector-extension flags that decide which backend is fastest (AVX2, AVX-512, VNNI, BF16,
    AMX), from /proc/cpuinfo; empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            return sorted(f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx")))
    return []


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).correlation)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(1)


def _pair_metric(scores: np.ndarray, labels: np.ndarray) -> tuple[str, float]:
    if set(np.unique(labels)) <= {0.0, 1.0}:
        from ..evaluation.plots import average_precision

        return "ap", float(average_precision(scores, labels))
    return "spearman", _spearman(scores, labels)


def measure_backends(
    encoder,
    texts: list[str],
    pairs: tuple[list[str], list[str], list[float]] | None = None,
    backends: tuple[str, ...] = BACKENDS,
    batch_size: int = 32,
    rounds: int = 2,
) -> dict:
    """Speed and quality loss of each backend (see the module docstring); backends this CPU cannot run
    (``openvino-bf16`` without bf16 products) are left out with the reason."""
    if not texts:
        raise ConfigError("measuring backends needs at least one text")
    rng = np.random.default_rng(0)
    n = len(texts)
    left, right = rng.integers(0, n, PAIRS_OF_TEXTS), rng.integers(0, n, PAIRS_OF_TEXTS)
    keep = left != right
    left, right = left[keep], right[keep]
    if pairs is not None:
        texts_a, texts_b, labels = pairs
        pair_texts = list(texts_a) + list(texts_b)
        labels = np.asarray(labels, dtype=np.float64)
    results: dict[str, dict] = {}
    reference = None
    for backend in ("torch", *[b for b in backends if b != "torch"]):
        try:
            # export and compile (two batches: OpenVINO compiles separately for one batch and for many)
            encoder.encode(texts[: 2 * batch_size], batch_size=batch_size, backend=backend)
        except ConfigError as exc:
            results[backend] = {"skipped": str(exc)}
            continue
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            embeddings = encoder.encode(texts, batch_size=batch_size, backend=backend)
            best = min(best, time.perf_counter() - started)
        row: dict = {"texts_per_s": round(n / best, 1)}
        sims = _cosines(embeddings[left], embeddings[right])
        if pairs is not None:
            encoded = encoder.encode(pair_texts, batch_size=batch_size, backend=backend)
            half = len(texts_a)
            metric, value = _pair_metric(_cosines(encoded[:half], encoded[half:]), labels)
            row[metric] = round(value, 6)
        if reference is None:
            reference = {"sims": sims, "metric": row.get("ap", row.get("spearman"))}
        if backend in EXACT:
            row["loss"] = 0.0
        elif pairs is not None:
            row["loss"] = round(abs(reference["metric"] - row[metric]), 6)
        else:
            row["loss"] = round(1.0 - _spearman(reference["sims"], sims), 6)
        results[backend] = row
    return {
        "quality": "dev pairs" if pairs is not None else "calibration text pairs",
        "texts": n,
        "batch_size": batch_size,
        "backends": results,
    }


def choose(measured: dict, budget: float = DEFAULT_BUDGET) -> str:
    """The fastest measured backend whose loss is at most ``budget``; a budget of 0 keeps to the exact
    backends (a reduced one can tie fp32 on a small dev set without being exact)."""
    if budget < 0:
        raise ConfigError(f"the quality budget must be >= 0, got {budget}")
    usable = {
        name: row["texts_per_s"]
        for name, row in measured["backends"].items()
        if "loss" in row and (name in EXACT or (budget > 0 and row["loss"] <= budget))
    }
    if not usable:
        return FALLBACK
    return max(usable, key=usable.get)


def write_choice(folder: str | Path, weights: str, measured: dict, budget: float = DEFAULT_BUDGET) -> dict:
    """Store the measurements and the choice in ``folder/backends.json``; returns what was written."""
    record = {
        "weights": weights,
        "budget": budget,
        "choice": choose(measured, budget),
        "machine": {"cpu": platform.processor() or platform.machine(), "flags": cpu_flags()},
        **measured,
    }
    atomic_write_text(Path(folder) / CHOICE_FILE, json.dumps(record, indent=2) + "\n")
    return record


def read_choice(folder: str | Path) -> dict | None:
    path = Path(folder) / CHOICE_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: expected the JSON that export writes ({exc})") from None
    if not isinstance(record, dict) or record.get("choice") not in BACKENDS:
        raise ModelFormatError(f"{path}: expected an object whose 'choice' is one of {', '.join(BACKENDS)}")
    return record


def resolve(encoder, backend: str) -> str:
    """``backend`` itself, or for ``auto`` the backend recorded for this model's weights (see the module
    docstring). The answer is kept on the encoder until its weights or ``backends.json`` change, so a
    service encoding one question at a time does not hash the weights on every call."""
    if check_backend(backend) != AUTO:
        return backend
    source = getattr(encoder, "source_path", None)
    path = Path(source) / CHOICE_FILE if source is not None else None
    try:
        stamp = path.stat().st_mtime_ns if path is not None else None
    except OSError:
        stamp = None
    key = (tuple((id(p), p._version) for p in encoder.transformer.parameters()), str(path), stamp)
    cached = getattr(encoder, "_auto_backend", None)
    if cached is None or cached[0] != key:
        encoder._auto_backend = (key, _resolve_auto(encoder, source))
    return encoder._auto_backend[1]


def _exported(source, backend: str, fingerprint: str) -> bool:
    """Whether the model folder holds an export of ``backend`` made from these weights (torch needs none)."""
    return backend == "torch" or exported_file(source, backend, fingerprint, warn=False) is not None


def _resolve_auto(encoder, source) -> str:
    from .onnx import weights_fingerprint

    record = read_choice(source) if source is not None else None
    fingerprint = weights_fingerprint(encoder)
    if record is None or record.get("weights") != fingerprint:
        logger.info(
            "backend auto: no measured choice for these weights (sbert-siamese export writes one); using %s",
            FALLBACK,
        )
        return FALLBACK
    if record.get("machine", {}).get("flags") not in (None, cpu_flags()):
        logger.warning(
            "backend auto: %s was measured on a CPU with other vector extensions; run export again here "
            "to measure this one",
            Path(source) / CHOICE_FILE,
        )
    backends = dict(record["backends"])
    if "openvino-bf16" in backends:
        from .openvino import cpu_has_bf16

        if not cpu_has_bf16():  # measured elsewhere: the next best without bf16
            backends.pop("openvino-bf16")
    # a backend whose export was removed since (export --no-int8 ...) is not chosen
    backends = {name: row for name, row in backends.items() if _exported(source, name, fingerprint)}
    if not backends:
        return FALLBACK
    return choose({"backends": backends}, record.get("budget", DEFAULT_BUDGET))
