"""Encode large inputs to disk in shards, so memory does not grow with the input and an interrupted run
continues where it stopped.

Layout of an embedding directory::

    manifest.json        texts fingerprint, count, shard size, dimension, model, normalize
    shard_00000.npy      rows [0, shard_size) as float32, written to a temporary name then renamed
    shard_00001.npy      ...

A rerun with the same texts and options reuses every complete shard and encodes only the missing ones; a
directory made for other texts or options is refused rather than silently mixed.

The cluster engine (``engines.ray``) writes the same layout, with shards of unequal size (one per piece of
the input): its manifest lists them in ``shard_rows``, and ``load_embeddings`` / ``shard_sizes`` read both.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, ModelFormatError
from .safe_io import atomic_write_text, writing

MANIFEST = "manifest.json"


def fingerprint(texts: Sequence[str]) -> str:
    """sha256 over the texts in order (each length-prefixed, so ["ab", "c"] != ["a", "bc"])."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def weights_fingerprint(module) -> str:
    """A short sha256 of a torch module's parameters and buffers (names, shapes, bytes): embeddings cached
    on disk are reused only by the same weights, not by a retrained model of the same name."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard_{index:05d}.npy"


def _complete(path: Path, rows: int) -> bool:
    """A shard counts only when it loads with the expected number of rows (a torn write does not)."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return array.ndim == 2 and array.shape[0] == rows


def encode_to_disk(
    encoder,
    texts: Sequence[str],
    folder: str | Path,
    shard_size: int = 10_000,
    batch_size: int = 64,
    normalize: bool | None = None,
    model_name: str | None = None,
    show_progress_bar: bool = False,
    backend: str = "torch",
) -> dict:
    """Encode ``texts`` shard by shard into ``folder``; returns a report
    ``{"shards": n, "reused": k, "encoded": n - k, "count": N, "dimension": D, "truncated": t}`` (t: texts
    cut to the model's limit in the shards encoded by this call).

    ``model_name`` identifies the encoder in the manifest (e.g. its path, tower and
    ``weights_fingerprint``): a folder made by another model is refused, never silently reused.

    Each shard is encoded and written (temp file, then rename) before the next begins, so at most one
    shard of embeddings is in memory and a killed run leaves only complete shards behind.
    """
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    if not texts:
        raise ConfigError("no texts to encode")
    from ..backends.choice import resolve

    backend = resolve(encoder, backend)  # the manifest names the backend auto stood for
    folder = Path(folder)
    with writing(folder, "the embedding folder"):
        folder.mkdir(parents=True, exist_ok=True)
    expected = {
        "fingerprint": fingerprint(texts),
        "count": len(texts),
        "shard_size": shard_size,
        "normalize": normalize,
        "model": model_name,
        "backend": backend,  # int8 embeddings differ from fp32 ones: one folder never mixes them
    }
    _check_folder(folder, expected)
    shards = -(-len(texts) // shard_size)
    report = {
        "shards": shards,
        "reused": 0,
        "encoded": 0,
        "count": len(texts),
        "dimension": None,
        "truncated": 0,
    }

    def encode(chunk: Sequence[str]) -> np.ndarray:
        embeddings = encoder.encode(list(chunk), batch_size=batch_size, normalize=normalize, backend=backend)
        report["truncated"] += len(getattr(encoder, "last_truncated", ()))
        return embeddings

    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(texts), desc="encode", unit="text")
    try:
        for index in range(shards):
            chunk = texts[index * shard_size : (index + 1) * shard_size]
            report["reused" if _fill_shard(folder, index, chunk, encode) else "encoded"] += 1
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    dimension = int(np.load(_shard_path(folder, 0), mmap_mode="r").shape[1])
    report["dimension"] = dimension
    _write_json(folder / MANIFEST, {**expected, "dimension": dimension, "shards": shards})
    return report


def _check_folder(folder: Path, expected: dict) -> None:
    """Check that ``folder`` was made for the same texts and options (``expected``): a folder made for
    others, or shards without a manifest, are refused rather than mixed. A new folder gets its manifest
    first (dimension unknown until the first shard), so a killed run can be continued."""
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        manifest = read_manifest(folder)
        manifest.setdefault("backend", "torch")  # folders written before there were other backends
        different = [k for k, v in expected.items() if manifest.get(k) != v]
        if different:
            raise ConfigError(
                f"{folder} holds embeddings made with other {', '.join(different)}; "
                "use a new directory (or delete this one) to encode these texts"
            )
    elif any(folder.glob("shard_*.npy")):
        raise ConfigError(f"{folder} has shards but no {MANIFEST}: not an embedding directory of ours")
    else:
        _write_json(manifest_path, {**expected, "dimension": None})


def _fill_shard(folder: Path, index: int, chunk: Sequence[str], encode) -> bool:
    """Make shard ``index`` hold the embeddings of ``chunk``: True when a complete one was there already
    (reused), False when ``encode(chunk)`` made it."""
    path = _shard_path(folder, index)
    if _complete(path, len(chunk)):
        return True
    _write_shard(path, np.ascontiguousarray(encode(chunk), dtype=np.float32))
    return False


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{folder}: no {MANIFEST}; not an embedding directory (see encode_to_disk)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: cannot read ({exc})") from None
    if not isinstance(manifest, dict) or "count" not in manifest or "shard_size" not in manifest:
        raise ModelFormatError(f"{path}: expected an object with 'count' and 'shard_size'")
    return manifest


def shard_sizes(manifest: dict) -> list[int]:
    """The number of rows of each shard of an embedding directory, in order."""
    if manifest.get("shard_rows") is not None:
        return [int(n) for n in manifest["shard_rows"]]
    count, size = int(manifest["count"]), int(manifest["shard_size"])
    return [min(size, count - index * size) for index in range(-(-count // size))]


def load_embeddings(folder: str | Path, mmap: bool = True) -> np.ndarray:
    """(N, D) float32 embeddings of a complete embedding directory, in input order."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("count") is None:
        raise ModelFormatError(f"{folder}: the encode that writes it has not finished; rerun it to finish")
    parts = []
    for index, rows in enumerate(shard_sizes(manifest)):
        path = _shard_path(folder, index)
        if not _complete(path, rows):
            raise ModelFormatError(
                f"{path}: missing or incomplete (expected {rows} rows); rerun the encode to finish it"
            )
        parts.append(np.load(path, mmap_mode="r" if mmap else None))
    if not parts:
        return np.zeros((0, int(manifest.get("dimension") or 0)), np.float32)
    return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])


def _write_shard(path: Path, embeddings: np.ndarray) -> None:
    """Write one shard to a temporary name, flushed, then renamed: a reader never sees a torn shard. A full
    disk or a missing permission raises ``OutputError`` naming the shard."""
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, "an embedding shard"):
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, embeddings)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n", "the embedding manifest")
