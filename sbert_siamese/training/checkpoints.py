"""Training checkpoints: written atomically, verified before use, resumed exactly.

A checkpoint is a folder ``output_dir/checkpoints/step-00000200/``::

    model.safetensors   the model's weights (encoder(s) and head)
    best.safetensors    the best-on-dev weights so far (when keep_best tracks them)
    optimizer.pt        AdamW state (tensors and numbers only: loaded with ``torch.load(weights_only=True)``)
    scheduler.json      the learning-rate schedule's position
    rng.json            the random generators of every process (python, numpy, torch, CUDA)
    progress.json       step, micro-batches consumed, losses and log records so far, best dev score, the
                        starting metrics and the recipe
    checkpoint.json     written last: the format and a SHA-256 of every file above

It is built under a hidden temporary name and renamed into place (``safe_io.staged_dir``), so a folder named
``step-*`` is always complete; ``latest_checkpoint`` also re-hashes the files, so a checkpoint damaged later
(truncated copy, disk error) is detected, reported and skipped in favour of the previous one.

Resuming rebuilds the run from the recipe, loads the states, replays the data order up to the checkpoint
(batches are drawn again, not trained on) and restores the random generators, so the rest of the run draws
the same batches and dropout masks as an uninterrupted run with the same seed.

The training loop's side: ``check_output_dir`` (new, resumed or overwritten output folder, checked before
any work), ``find_resume_point``, ``data_fingerprint``, ``write_checkpoint`` (every process's RNG state,
written by the main process) and ``restore``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError, ConfigError, OutputError
from ..io.safe_io import recover, replaces_a_protected_folder, staged_dir, writing

if TYPE_CHECKING:
    from accelerate import Accelerator

    from ..config import TrainConfig
    from ..data.examples import Example

logger = logging.getLogger(__name__)

FOLDER = "checkpoints"
MANIFEST = "checkpoint.json"
FORMAT = 1
_NAME = re.compile(r"^step-(\d{8})$")

# Recipe keys that may change between a run and its resumption: where things are written and how often,
# not what is trained.
RESUMABLE_CHANGES = frozenset(
    {
        "resume", "overwrite", "output_dir", "data_dir", "checkpoint_steps", "checkpoint_limit",
        "keep_checkpoints", "plots", "eval_batch_size", "pin_memory",
    }
)  # fmt: skip


@dataclass
class Checkpoint:
    path: Path
    step: int
    progress: dict

    def model_state(self) -> dict[str, torch.Tensor]:
        return load_file(self.path / "model.safetensors")

    def best_state(self) -> dict[str, torch.Tensor] | None:
        file = self.path / "best.safetensors"
        return load_file(file) if file.exists() else None

    def optimizer_state(self) -> dict:
        try:
            return torch.load(self.path / "optimizer.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # a hash-verified file should load; anything else is a damaged checkpoint
            raise CheckpointError(f"{self.path / 'optimizer.pt'}: cannot be read ({exc})") from None

    def scheduler_state(self) -> dict:
        return json.loads((self.path / "scheduler.json").read_text(encoding="utf-8"))

    def rng_states(self) -> list[dict]:
        return json.loads((self.path / "rng.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ RNG
def rng_state() -> dict:
    """This process's random generators as JSON-able values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ----------------------------------------------------------------------------------------------- save
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_files(
    folder: Path,
    model_state: dict[str, torch.Tensor],
    best_state: dict[str, torch.Tensor] | None,
    optimizer_state: dict,
    scheduler_state: dict,
    rng_states: list[dict],
    progress: dict,
) -> None:
    weights = {k: v.detach().cpu().contiguous() for k, v in model_state.items()}
    save_file(weights, folder / "model.safetensors")
    if best_state is not None:
        save_file({k: v.contiguous() for k, v in best_state.items()}, folder / "best.safetensors")
    torch.save(optimizer_state, folder / "optimizer.pt")
    (folder / "scheduler.json").write_text(json.dumps(scheduler_state), encoding="utf-8")
    (folder / "rng.json").write_text(json.dumps(rng_states), encoding="utf-8")
    (folder / "progress.json").write_text(json.dumps(progress, indent=1), encoding="utf-8")


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    best_state: dict[str, torch.Tensor] | None,
    optimizer_state: dict,
    scheduler_state: dict,
    rng_states: list[dict],
    progress: dict,
    limit: int = 2,
) -> Path:
    """Write the checkpoint of ``step`` under ``output_dir/checkpoints`` and keep only the newest ``limit``.

    Returns the checkpoint folder. Disk-full and permission errors raise ``OutputError``; a checkpoint that
    could not be written completely leaves no ``step-*`` folder behind."""
    root = Path(output_dir) / FOLDER
    final = root / f"step-{step:08d}"
    with staged_dir(final, "checkpoint") as stage:
        _write_files(stage, model_state, best_state, optimizer_state, scheduler_state, rng_states, progress)
        files = {f.name: _sha256(f) for f in sorted(stage.iterdir()) if f.is_file()}
        manifest = {"format": FORMAT, "step": step, "files": files}
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _prune(root, limit)
    return final


def _prune(root: Path, limit: int) -> None:
    """Delete all but the newest ``limit`` checkpoints, and leftovers of interrupted writes."""
    with writing(root, "checkpoints"):
        for entry in root.iterdir():
            if entry.name.startswith(".step-") and entry.is_dir():  # a write that was interrupted
                shutil.rmtree(entry, ignore_errors=True)
        for old in _listed(root)[:-limit]:
            shutil.rmtree(old[1], ignore_errors=True)


# ----------------------------------------------------------------------------------------------- load
def _listed(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def verify(path: Path) -> str | None:
    """None when the checkpoint at ``path`` is complete and intact, else what is wrong with it."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        return f"no {MANIFEST} (the write did not finish)"
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        files = manifest["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            return f"{MANIFEST} is damaged (files is not a name -> checksum mapping)"
        if manifest.get("format") != FORMAT:
            return f"format {manifest.get('format')!r}, this version reads {FORMAT}"
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        return f"{MANIFEST} is damaged ({type(exc).__name__})"
    for name, expected in files.items():
        if "/" in name or "\\" in name or name in (".", ".."):
            return f"{MANIFEST} names a file outside the checkpoint ({name!r})"
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if _sha256(file) != expected:
            return f"{name} does not match its checksum (truncated or damaged)"
    for name in ("model.safetensors", "optimizer.pt", "scheduler.json", "rng.json", "progress.json"):
        if name not in files:
            return f"{name} is not listed in {MANIFEST}"
    return None


def latest_checkpoint(output_dir: str | Path) -> Checkpoint:
    """The newest intact checkpoint under ``output_dir/checkpoints``. Damaged ones are skipped with a
    warning naming the problem; ``CheckpointError`` when there is none to resume from."""
    root = Path(output_dir) / FOLDER
    listed = _listed(root)
    problems = []
    for step, path in reversed(listed):
        problem = verify(path)
        if problem is None:
            progress = json.loads((path / "progress.json").read_text(encoding="utf-8"))
            if problems:
                logger.warning(
                    "skipped damaged checkpoint(s): %s; resuming from %s", "; ".join(problems), path
                )
            return Checkpoint(path, step, progress)
        problems.append(f"{path}: {problem}")
    if not listed:
        raise CheckpointError(
            f"nothing to resume: no checkpoint in {root} (checkpoints are written every checkpoint_steps "
            "optimizer steps); run without --resume to start afresh"
        )
    raise CheckpointError("no intact checkpoint to resume from: " + "; ".join(problems))


def check_same_recipe(saved: dict, current: dict, path: Path) -> None:
    """A run resumes only with the recipe it started with (apart from ``RESUMABLE_CHANGES``)."""
    changed = sorted(
        key
        for key in set(saved) | set(current)
        if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
    )
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed[:6])
        raise CheckpointError(
            f"{path} was made with a different recipe ({detail}); resume with the same recipe, or start "
            "afresh with --overwrite"
        )


# ---------------------------------------------------------------------------------- the training loop's side
def check_output_dir(config: TrainConfig) -> Path:
    """The output folder may be new or empty; a non-empty one needs ``resume`` (continue its checkpoints)
    or ``overwrite`` (replace it once the new model is complete; its old checkpoints go now)."""
    out = Path(config.output_dir)
    recover(out)  # a save that a killed process left half done: put the previous folder back
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out} exists and is not a directory")
    _check_writable_beside(out)
    if config.resume:
        if config.overwrite:
            raise ConfigError("resume continues the run in output_dir and overwrite replaces it: pick one")
        return out
    if not (out.is_dir() and any(out.iterdir())):
        return out
    saved = _listed(out / FOLDER)
    if not config.overwrite:
        hint = (
            f"; it holds a checkpoint of step {saved[-1][0]}: pass --resume to continue that run"
            if saved
            else ""
        )
        raise ConfigError(
            f"output_dir {out} is not empty; pass --overwrite (overwrite: true) to replace it{hint}"
        )
    if replaces_a_protected_folder(out):
        raise ConfigError(
            f"output_dir {out} is {out.resolve()}, which holds the current folder or is a home or root "
            "folder; overwrite would replace it: choose a folder of its own"
        )
    if saved and os.environ.get("RANK", "0") == "0":  # one process removes them
        logger.warning("overwrite: removing the previous run's checkpoints in %s", out / FOLDER)
        with writing(out / FOLDER, "checkpoints"):
            shutil.rmtree(out / FOLDER, ignore_errors=True)
    return out


def _check_writable_beside(out: Path) -> None:
    """The final model is built beside output_dir and renamed into place: fail now, not after training,
    when that cannot work (a mount point cannot be renamed; the parent folder must be writable)."""
    target = out.resolve() if out.is_symlink() else out.absolute()
    if target.is_dir() and os.path.ismount(target):
        raise ConfigError(
            f"output_dir {out} is a mount point, which cannot be replaced by a rename; use a folder inside it"
        )
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write beside output_dir {out}: {parent} is not writable (the model is built next to "
            "output_dir, then renamed into place); choose a folder inside a writable one"
        )


def data_fingerprint(examples: list[Example]) -> str:
    """SHA-256 of the training examples in order (texts and targets): a resumed run must read the same."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([list(example.texts), example.target], default=str).encode("utf-8"))
    return digest.hexdigest()


def find_resume_point(config: TrainConfig, accelerator: Accelerator) -> Checkpoint:
    found = latest_checkpoint(config.output_dir)
    check_same_recipe(found.progress["config"], config.to_dict(), found.path)
    saved = found.progress["num_processes"]
    if saved != accelerator.num_processes:
        raise CheckpointError(
            f"{found.path} was written by a run on {saved} process(es); this one has "
            f"{accelerator.num_processes}: resume with the same number"
        )
    return found


def restore(found: Checkpoint, model, optimizer, scheduler, stream, accelerator) -> None:
    """Load the checkpoint's states, then draw (and drop) the batches it had consumed, so the data order
    continues where it stopped, and restore the random generators as they were at that point."""
    try:
        model.load_state_dict(found.model_state())
        optimizer.load_state_dict(found.optimizer_state())
        scheduler.load_state_dict(found.scheduler_state())
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{found.path}: does not fit this model and recipe ({exc})") from None
    if accelerator.scaler is not None and found.progress.get("scaler"):
        accelerator.scaler.load_state_dict(found.progress["scaler"])
    for _ in range(found.progress["micro_batches"]):
        next(stream)
    set_rng_state(found.rng_states()[accelerator.process_index])


def write_checkpoint(accelerator, out_dir, step, model, best_state, optimizer, scheduler, progress, config):
    """Write a checkpoint (main process) with every process's random generators; returns its path."""
    states = [rng_state()]
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        states = gather_object(states)
    path = None
    if accelerator.is_main_process:
        path = save_checkpoint(
            out_dir, step, model.state_dict(), best_state, optimizer.state_dict(), scheduler.state_dict(),
            states, progress, config.checkpoint_limit,
        )  # fmt: skip
        logger.info("checkpoint written: %s", path)
    accelerator.wait_for_everyone()
    return path or Path(out_dir) / FOLDER / f"step-{step:08d}"
