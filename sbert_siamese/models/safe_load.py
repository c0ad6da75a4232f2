"""Reading a model folder's files without trusting them: safetensors only unless pickle files are asked for
(``allow_pickle``), never custom model code, shard names that stay inside the folder, and a
``ModelFormatError`` naming the file for anything unreadable.

``models.st_format`` (the sentence-transformers layout) and ``models.siamese`` (the head) load through
these; they are the only places weights come from.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import ModelFormatError

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "pytorch_model.pt")
MODULE_PICKLES = ("pytorch_model.bin", "model.pt", "pytorch_model.pt")  # a Dense or head folder
PICKLE_FLAG = "allow_pickle=True (--allow-pickle on the command line)"


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


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
    config = read_json(config_file)
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
        tokenizer_config = read_json(tokenizer_file)
        if isinstance(tokenizer_config, dict) and "auto_map" in tokenizer_config:
            raise ModelFormatError(f"{tokenizer_file}: the tokenizer needs custom code (auto_map); {never}")


def _check_shard_index(index_file: Path) -> None:
    """Every shard named in ``model.safetensors.index.json`` is a file inside the model folder."""
    index = read_json(index_file)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelFormatError(f"{index_file}: expected an object with a 'weight_map'")
    for name in set(weight_map.values()):
        if not isinstance(name, str) or not _plain_relative(name):
            raise ModelFormatError(f"{index_file}: shard {name!r} is not a file inside {index_file.parent}")


def _plain_relative(name: str) -> bool:
    path = Path(name)
    return bool(name) and not path.is_absolute() and not path.drive and ".." not in path.parts


def load_transformer(folder: Path, allow_pickle: bool = False):
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
