"""Save and load encoders in the sentence-transformers directory layout (safetensors only).

A saved directory looks like::

    modules.json                      the module list: Transformer, Pooling[, Dense][, Normalize]
    config_sentence_transformers.json versions and similarity function
    sentence_bert_config.json         max_seq_length, do_lower_case
    config.json, model.safetensors, tokenizer files   the transformer, at the top level
    1_Pooling/config.json
    2_Dense/config.json, 2_Dense/model.safetensors    (when there is a projection)
    N_Normalize/                                      (when embeddings are normalised)
    sbert_siamese.json                our own metadata (ignored by sentence-transformers)

``SentenceTransformer(path)`` loads it; ``load_encoder`` loads it and directories written by
sentence-transformers (classic and 5.x/6.x module names), giving the same embeddings. The files are read
through ``models.safe_load`` (safetensors only unless asked, no custom code).

This module does not know the encoder class: ``load_encoder`` is given it (``SiameseEncoder.from_pretrained``
passes itself), so the encoder depends on its format and not the other way round.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import save_file

from .._version import __version__
from ..errors import ConfigError, ModelFormatError, OutputError
from ..io.safe_io import inside, output_error, replaces_a_protected_folder, staged_dir
from .dense import Dense
from .pooling import Pooling
from .resolve import resolve_model_path
from .safe_load import load_transformer, load_weights, read_json

__all__ = [  # load_weights is re-exported: the head of a SiameseModel loads through it
    "ST_TYPES",
    "is_model_dir",
    "load_encoder",
    "load_weights",
    "save_encoder",
    "save_target",
    "staged_model_dir",
    "write_encoder",
]

ST_TYPES = {
    "Transformer": "sentence_transformers.models.Transformer",
    "Pooling": "sentence_transformers.models.Pooling",
    "Dense": "sentence_transformers.models.Dense",
    "Normalize": "sentence_transformers.models.Normalize",
}


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------ saving
def is_model_dir(path: Path) -> bool:
    """A sentence-transformers / sbert-siamese model folder (a bare ``config.json`` is not enough: many
    projects have one)."""
    return (path / "modules.json").is_file() or (path / "sbert_siamese.json").is_file()


def save_target(path: str | Path) -> Path:
    """The folder a save builds beside and then replaces: absolute, a symlink followed (the link stays and
    points at the new model). Refused (``OutputError``): a file; a non-empty folder that holds no model (no
    ``modules.json`` / ``sbert_siamese.json``), which saving would wipe; the current working directory or a
    folder holding it, the home folder and ``/``. An empty folder, a missing one or an earlier model
    directory are fine."""
    given = Path(os.path.abspath(path))
    try:
        target = given.resolve() if given.is_symlink() else given
        if replaces_a_protected_folder(target):
            raise OutputError(
                f"cannot save a model to {given}: it is the current working directory (or holds it), the "
                "home folder or /, which saving would replace; save into a subfolder"
            )
        if target.exists():
            if not target.is_dir():
                raise OutputError(f"cannot save a model to {given}: it exists and is not a folder")
            if any(target.iterdir()) and not is_model_dir(target):
                raise OutputError(
                    f"cannot save a model to {given}: the folder is not empty and holds no model (no "
                    "modules.json or sbert_siamese.json); saving replaces the whole folder, so choose a new "
                    "or empty folder"
                )
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(exc, given, "the model") from None
    return target


@contextlib.contextmanager
def staged_model_dir(path: str | Path) -> Iterator[Path]:
    """A new empty folder to write a whole model into; when the block ends it replaces ``path`` (checked by
    ``save_target``). On any error ``path`` is left as it was and the temporary folder is removed; a full
    disk or a missing permission is an ``OutputError`` naming ``path``."""
    target = save_target(path)
    with staged_dir(target, "the model") as stage:  # OSError inside becomes OutputError naming target
        yield stage


def save_encoder(encoder, path: str | Path) -> Path:
    """Write ``encoder`` to ``path`` (created if needed). Returns the path.

    The directory is built under a hidden temporary name beside ``path`` and renamed into place once
    complete: an interrupted or failed save (disk full...) leaves an earlier model at ``path`` untouched.
    An existing model directory at ``path`` is replaced as a whole; a non-empty folder that holds no model
    is refused (``OutputError``) rather than wiped."""
    with staged_model_dir(path) as stage:
        write_encoder(encoder, stage)
    return Path(path)


def write_encoder(encoder, path: Path) -> None:
    """Write ``encoder``'s files into ``path`` (created if needed); no staging: see ``save_encoder``."""
    import torch
    import transformers

    path.mkdir(parents=True, exist_ok=True)
    encoder.transformer.save_pretrained(path, safe_serialization=True)
    encoder.tokenizer.save_pretrained(path)
    _write_json(
        path / "sentence_bert_config.json",
        {"max_seq_length": encoder.max_seq_length, "do_lower_case": encoder.do_lower_case},
    )
    modules = [{"idx": 0, "name": "0", "path": "", "type": ST_TYPES["Transformer"]}]

    def add(kind: str) -> Path:
        idx = len(modules)
        folder = f"{idx}_{kind}"
        modules.append({"idx": idx, "name": str(idx), "path": folder, "type": ST_TYPES[kind]})
        (path / folder).mkdir(exist_ok=True)
        return path / folder

    _write_json(add("Pooling") / "config.json", encoder.pooling.to_st_config())
    if encoder.dense is not None:
        dense_dir = add("Dense")
        _write_json(dense_dir / "config.json", encoder.dense.to_st_config())
        state = {k: v.detach().cpu().contiguous() for k, v in encoder.dense.state_dict().items()}
        save_file(state, dense_dir / "model.safetensors")
    if encoder.normalize:
        add("Normalize")
    _write_json(path / "modules.json", modules)
    _write_json(
        path / "config_sentence_transformers.json",
        {
            "__version__": {
                "sentence_transformers": "3.0.0",
                "transformers": transformers.__version__,
                "pytorch": torch.__version__,
            },
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    _write_json(path / "sbert_siamese.json", {"library": "sbert-siamese", "version": __version__})


# ------------------------------------------------------------------------------------------------ loading
def _module_kind(type_name: str, source: Path) -> str:
    """Map 'sentence_transformers.models.Pooling' or '...modules.pooling.Pooling' to 'Pooling'."""
    kind = type_name.rsplit(".", 1)[-1]
    if kind not in ST_TYPES:
        raise ModelFormatError(
            f"{source}: module type {type_name!r} is not supported; expected one of {', '.join(ST_TYPES)}"
        )
    return kind


def _module_folder(root: Path, entry: dict, position: int, modules_file: Path) -> Path:
    relative = entry.get("path", "")
    if not isinstance(relative, str):
        raise ModelFormatError(f"{modules_file}: entry {position}: 'path' must be a string, got {relative!r}")
    try:
        return inside(root, relative, "module path")
    except OutputError as exc:
        raise ModelFormatError(f"{modules_file}: entry {position}: {exc}") from None


def _module_order(entry) -> int:
    """Where an entry of ``modules.json`` goes: its ``idx`` (0 when missing or not an integer)."""
    idx = entry.get("idx", 0) if isinstance(entry, dict) else 0
    return idx if isinstance(idx, int) else 0


@dataclass
class _Modules:
    """What the modules of a sentence-transformers folder hold, before an encoder is built from them."""

    transformer: object = None
    tokenizer: object = None
    st_config: dict = field(default_factory=dict)  # sentence_bert_config.json: max_seq_length, do_lower_case
    pooling: Pooling | None = None
    dense: Dense | None = None
    normalize: bool = False


def _load_dense(folder: Path, allow_pickle: bool) -> Dense:
    dense = Dense.from_st_config(read_json(folder / "config.json"), str(folder / "config.json"))
    state = load_weights(folder, allow_pickle)
    try:
        dense.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFormatError(f"{folder}: weights do not fit {dense.to_st_config()}: {exc}") from None
    return dense


def _read_modules(root: Path, modules_file: Path, allow_pickle: bool) -> _Modules:
    """Load every module listed in ``modules_file``, in ``idx`` order; the Transformer must come first and
    a Pooling must be there."""
    modules = read_json(modules_file)
    if not isinstance(modules, list) or not modules:
        raise ModelFormatError(f"{modules_file}: expected a non-empty JSON list of modules")
    parts = _Modules()
    for position, entry in enumerate(sorted(modules, key=_module_order)):
        if not isinstance(entry, dict) or "type" not in entry:
            raise ModelFormatError(f"{modules_file}: entry {position} needs a 'type'")
        kind = _module_kind(entry["type"], modules_file)
        folder = _module_folder(root, entry, position, modules_file)
        if kind == "Transformer":
            if position != 0:
                raise ModelFormatError(f"{modules_file}: the Transformer must be the first module")
            parts.transformer, parts.tokenizer = load_transformer(folder, allow_pickle)
            config_file = folder / "sentence_bert_config.json"
            parts.st_config = read_json(config_file) if config_file.exists() else {}
        elif kind == "Pooling":
            config_file = folder / "config.json"
            parts.pooling = Pooling.from_st_config(read_json(config_file), str(config_file))
        elif kind == "Dense":
            parts.dense = _load_dense(folder, allow_pickle)
        elif kind == "Normalize":
            parts.normalize = True
    if parts.transformer is None or parts.pooling is None:
        raise ModelFormatError(f"{modules_file}: expected a Transformer and a Pooling module")
    return parts


def load_encoder(
    name_or_path: str | Path,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_seq_length: int | None = None,
    allow_pickle: bool = False,
    *,
    encoder_class,
):
    """Load a model directory (sentence-transformers layout or a plain transformer) as an ``encoder_class``
    (``SiameseEncoder``: it takes transformer, tokenizer, pooling, dense, normalize, max_seq_length and
    do_lower_case); options given here override what the directory says.

    Only safetensors weights are loaded unless ``allow_pickle=True``, which also loads ``pytorch_model.bin``
    files (through ``torch.load(weights_only=True)``, with a warning) where a part has no safetensors.
    Custom model code is never run; module paths in ``modules.json`` must stay inside the directory."""
    root = resolve_model_path(name_or_path, allow_pickle=allow_pickle)
    modules_file = root / "modules.json"
    if not modules_file.exists():
        # A plain transformer directory: wrap it with pooling (mean unless told otherwise).
        model, tokenizer = load_transformer(root, allow_pickle)
        encoder = encoder_class(
            model,
            tokenizer,
            pooling=pooling or "mean",
            normalize=bool(normalize),
            max_seq_length=max_seq_length,
        )
        encoder.source_path = root
        return encoder
    parts = _read_modules(root, modules_file, allow_pickle)
    pool = parts.pooling if pooling is None else Pooling(parts.pooling.dimension, pooling)
    try:
        encoder = encoder_class(
            parts.transformer,
            parts.tokenizer,
            pooling=pool,
            dense=parts.dense,
            normalize=parts.normalize if normalize is None else normalize,
            max_seq_length=max_seq_length or parts.st_config.get("max_seq_length"),
            do_lower_case=parts.st_config.get("do_lower_case", False),
        )
    except ConfigError as exc:
        raise ModelFormatError(f"{modules_file}: {exc}") from None
    encoder.source_path = root
    return encoder
