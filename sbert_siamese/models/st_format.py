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
sentence-transformers (classic and 5.x/6.x module names), giving the same embeddings.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import ConfigError, ModelFormatError, OutputError
from ..io.safe_io import inside, output_error, replaces_a_protected_folder, staged_dir
from .dense import Dense
from .pooling import Pooling
from .resolve import resolve_model_path

ST_TYPES = {
    "Transformer": "sentence_transformers.models.Transformer",
    "Pooling": "sentence_transformers.models.Pooling",
    "Dense": "sentence_transformers.models.Dense",
    "Normalize": "sentence_transformers.models.Normalize",
}
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "pytorch_model.pt")
MODULE_PICKLES = ("pytorch_model.bin", "model.pt", "pytorch_model.pt")  # a Dense or head folder
PICKLE_FLAG = "allow_pickle=True (--allow-pickle on the command line)"


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


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


def _pickle_files(folder: Path, names=PICKLE_WEIGHTS) -> list[str]:
    return [name for name in names if (folder / name).is_file()]


def _refuse_pickle(folder: Path, found: list[str]):
    raise ModelFormatError(
        f"{folder}: expected model.safetensors; found only pickle weights ({', '.join(found)}). "
        "Only safetensors are loaded unless you ask for pickle files: loading one can run code hidden in "
        f"it. If you trust where this model comes from, pass {PICKLE_FLAG}."
    )


def _warn_pickle(files: list[Path]) -> None:
    warnings.warn(
        f"loaded pickle weights ({', '.join(map(str, files))}) because allow_pickle=True; save the model "
        "again to convert it to safetensors, which load without the flag",
        UserWarning,
        stacklevel=2,
    )


def _refuse_custom_code(folder: Path) -> None:
    """A model that needs Python code from its own directory (``auto_map``, or a ``model_type`` this
    transformers does not ship) is refused here, before transformers sees it: custom code is never run."""
    from transformers import CONFIG_MAPPING

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelFormatError(f"{folder}: no config.json; expected a transformers model directory")
    config = _read_json(config_file)
    if not isinstance(config, dict):
        raise ModelFormatError(f"{config_file}: expected a JSON object, found {type(config).__name__}")
    never = "custom code from a model directory is never run (trust_remote_code stays off)"
    if "auto_map" in config:
        raise ModelFormatError(
            f"{config_file}: the model needs custom code (auto_map: {sorted(config['auto_map'])}); {never}"
        )
    model_type = config.get("model_type")
    if model_type is not None and model_type not in CONFIG_MAPPING:
        raise ModelFormatError(
            f"{config_file}: model_type {model_type!r} is not an architecture transformers ships, so it "
            f"would need custom code; {never}"
        )
    tokenizer_file = folder / "tokenizer_config.json"
    if tokenizer_file.is_file():
        tokenizer_config = _read_json(tokenizer_file)
        if isinstance(tokenizer_config, dict) and "auto_map" in tokenizer_config:
            raise ModelFormatError(f"{tokenizer_file}: the tokenizer needs custom code (auto_map); {never}")


def _check_shard_index(index_file: Path) -> None:
    """Every shard named in ``model.safetensors.index.json`` is a file inside the model folder."""
    index = _read_json(index_file)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelFormatError(f"{index_file}: expected an object with a 'weight_map'")
    for name in set(weight_map.values()):
        if not isinstance(name, str) or not _plain_relative(name):
            raise ModelFormatError(f"{index_file}: shard {name!r} is not a file inside {index_file.parent}")


def _plain_relative(name: str) -> bool:
    path = Path(name)
    return bool(name) and not path.is_absolute() and not path.drive and ".." not in path.parts


def _load_transformer(folder: Path, allow_pickle: bool = False):
    from transformers import AutoModel, AutoTokenizer

    _refuse_custom_code(folder)
    index = folder / "model.safetensors.index.json"
    safetensors = (folder / "model.safetensors").is_file() or index.is_file()
    if index.is_file():
        _check_shard_index(index)
    if not safetensors:
        found = _pickle_files(folder)
        if not found:
            raise ModelFormatError(
                f"{folder}: expected model.safetensors; no weights found (a hub download fetches pickle "
                "weights only with allow_pickle=True)"
            )
        if not allow_pickle:
            _refuse_pickle(folder, found)
        if not _pickle_files(folder, ("pytorch_model.bin", "pytorch_model.bin.index.json")):
            raise ModelFormatError(
                f"{folder}: found {', '.join(found)}; transformers loads pickle weights only as "
                "pytorch_model.bin (or its sharded index)"
            )
    try:
        # Pickle files go through torch.load(weights_only=True) inside transformers.
        model = AutoModel.from_pretrained(folder, use_safetensors=safetensors, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:  # SafetensorError: truncated
        detail = " ".join(str(exc).split())[:400]
        raise ModelFormatError(
            f"{folder}: transformers could not load it ({type(exc).__name__}: {detail})"
        ) from None
    if not safetensors:
        _warn_pickle([folder / name for name in _pickle_files(folder, ("pytorch_model.bin",))] or [folder])
    return model, tokenizer


def load_weights(folder: Path, allow_pickle: bool = False) -> dict:
    """The state dict in ``folder/model.safetensors``; with ``allow_pickle`` (and no safetensors file)
    ``folder/pytorch_model.bin`` through ``torch.load(weights_only=True)``, with a warning."""
    import torch

    weights = folder / "model.safetensors"
    if weights.is_file():
        try:
            return load_file(weights)
        except Exception as exc:  # SafetensorError is a plain Exception
            raise ModelFormatError(f"{weights}: cannot read ({type(exc).__name__}: {exc})") from None
    found = _pickle_files(folder, MODULE_PICKLES)
    if not found:
        raise ModelFormatError(f"{folder}: expected model.safetensors")
    if not allow_pickle:
        _refuse_pickle(folder, found)
    source = folder / found[0]
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (a forbidden object), EOFError, RuntimeError (not a zip)...
        raise ModelFormatError(
            f"{source}: cannot read as plain weights ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFormatError(f"{source}: expected a state dict (names -> tensors)")
    _warn_pickle([source])
    return state


def _module_folder(root: Path, entry: dict, position: int, modules_file: Path) -> Path:
    relative = entry.get("path", "")
    if not isinstance(relative, str):
        raise ModelFormatError(f"{modules_file}: entry {position}: 'path' must be a string, got {relative!r}")
    try:
        return inside(root, relative, "module path")
    except OutputError as exc:
        raise ModelFormatError(f"{modules_file}: entry {position}: {exc}") from None


def load_encoder(
    name_or_path: str | Path,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_seq_length: int | None = None,
    allow_pickle: bool = False,
):
    """Load a model directory (sentence-transformers layout or a plain transformer).

    Only safetensors weights are loaded unless ``allow_pickle=True``, which also loads ``pytorch_model.bin``
    files (through ``torch.load(weights_only=True)``, with a warning) where a part has no safetensors.
    Custom model code is never run; module paths in ``modules.json`` must stay inside the directory."""
    from .encoder import SiameseEncoder

    root = resolve_model_path(name_or_path, allow_pickle=allow_pickle)
    modules_file = root / "modules.json"
    if not modules_file.exists():
        # A plain transformer directory: wrap it with pooling (mean unless told otherwise).
        model, tokenizer = _load_transformer(root, allow_pickle)
        encoder = SiameseEncoder(
            model,
            tokenizer,
            pooling=pooling or "mean",
            normalize=bool(normalize),
            max_seq_length=max_seq_length,
        )
        encoder.source_path = root
        return encoder

    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not modules:
        raise ModelFormatError(f"{modules_file}: expected a non-empty JSON list of modules")
    parts: dict = {"dense": None, "normalize": False, "pool": None}
    transformer = tokenizer = None
    st_config: dict = {}

    def order(entry) -> int:
        idx = entry.get("idx", 0) if isinstance(entry, dict) else 0
        return idx if isinstance(idx, int) else 0

    for position, entry in enumerate(sorted(modules, key=order)):
        if not isinstance(entry, dict) or "type" not in entry:
            raise ModelFormatError(f"{modules_file}: entry {position} needs a 'type'")
        kind = _module_kind(entry["type"], modules_file)
        folder = _module_folder(root, entry, position, modules_file)
        if kind == "Transformer":
            if position != 0:
                raise ModelFormatError(f"{modules_file}: the Transformer must be the first module")
            transformer, tokenizer = _load_transformer(folder, allow_pickle)
            config_file = folder / "sentence_bert_config.json"
            st_config = _read_json(config_file) if config_file.exists() else {}
        elif kind == "Pooling":
            parts["pool"] = Pooling.from_st_config(
                _read_json(folder / "config.json"), str(folder / "config.json")
            )
        elif kind == "Dense":
            dense = Dense.from_st_config(_read_json(folder / "config.json"), str(folder / "config.json"))
            state = load_weights(folder, allow_pickle)
            try:
                dense.load_state_dict(state)
            except RuntimeError as exc:
                raise ModelFormatError(
                    f"{folder}: weights do not fit {dense.to_st_config()}: {exc}"
                ) from None
            parts["dense"] = dense
        elif kind == "Normalize":
            parts["normalize"] = True
    if transformer is None or parts["pool"] is None:
        raise ModelFormatError(f"{modules_file}: expected a Transformer and a Pooling module")
    pool = parts["pool"]
    if pooling is not None:
        pool = Pooling(pool.dimension, pooling)
    try:
        encoder = SiameseEncoder(
            transformer,
            tokenizer,
            pooling=pool,
            dense=parts["dense"],
            normalize=parts["normalize"] if normalize is None else normalize,
            max_seq_length=max_seq_length or st_config.get("max_seq_length"),
            do_lower_case=st_config.get("do_lower_case", False),
        )
    except ConfigError as exc:
        raise ModelFormatError(f"{modules_file}: {exc}") from None
    encoder.source_path = root
    return encoder
