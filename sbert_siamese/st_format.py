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

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from . import __version__
from .dense import Dense
from .errors import ConfigError, ModelFormatError
from .pooling import Pooling
from .resolve import resolve_model_path

ST_TYPES = {
    "Transformer": "sentence_transformers.models.Transformer",
    "Pooling": "sentence_transformers.models.Pooling",
    "Dense": "sentence_transformers.models.Dense",
    "Normalize": "sentence_transformers.models.Normalize",
}
PICKLE_WEIGHTS = ("pytorch_model.bin", "model.pt", "pytorch_model.pt")


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def save_encoder(encoder, path: str | Path) -> Path:
    """Write ``encoder`` to ``path`` (created if needed). Returns the path."""
    import torch
    import transformers

    path = Path(path)
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
    return path


def _module_kind(type_name: str, source: Path) -> str:
    """Map 'sentence_transformers.models.Pooling' or '...modules.pooling.Pooling' to 'Pooling'."""
    kind = type_name.rsplit(".", 1)[-1]
    if kind not in ST_TYPES:
        raise ModelFormatError(
            f"{source}: module type {type_name!r} is not supported; expected one of {', '.join(ST_TYPES)}"
        )
    return kind


def _load_transformer(folder: Path):
    from transformers import AutoModel, AutoTokenizer

    if not (folder / "model.safetensors").exists() and not (folder / "model.safetensors.index.json").exists():
        found = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
        detail = f"found only pickle weights ({', '.join(found)})" if found else "no weights found"
        raise ModelFormatError(
            f"{folder}: expected model.safetensors; {detail}. Only safetensors are loaded."
        )
    model = AutoModel.from_pretrained(folder, use_safetensors=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    return model, tokenizer


def load_encoder(
    name_or_path: str | Path,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_seq_length: int | None = None,
):
    """Load a model directory (sentence-transformers layout or a plain transformer)."""
    from .encoder import SiameseEncoder

    root = resolve_model_path(name_or_path)
    modules_file = root / "modules.json"
    if not modules_file.exists():
        # A plain transformer directory: wrap it with pooling (mean unless told otherwise).
        model, tokenizer = _load_transformer(root)
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
    for position, entry in enumerate(sorted(modules, key=lambda m: m.get("idx", 0))):
        if not isinstance(entry, dict) or "type" not in entry:
            raise ModelFormatError(f"{modules_file}: entry {position} needs a 'type'")
        kind = _module_kind(entry["type"], modules_file)
        folder = root / entry.get("path", "")
        if kind == "Transformer":
            if position != 0:
                raise ModelFormatError(f"{modules_file}: the Transformer must be the first module")
            transformer, tokenizer = _load_transformer(folder)
            config_file = folder / "sentence_bert_config.json"
            st_config = _read_json(config_file) if config_file.exists() else {}
        elif kind == "Pooling":
            parts["pool"] = Pooling.from_st_config(
                _read_json(folder / "config.json"), str(folder / "config.json")
            )
        elif kind == "Dense":
            dense = Dense.from_st_config(_read_json(folder / "config.json"), str(folder / "config.json"))
            weights = folder / "model.safetensors"
            if not weights.exists():
                raise ModelFormatError(
                    f"{folder}: expected model.safetensors (pickle weights are not loaded)"
                )
            state = load_file(weights)
            try:
                dense.load_state_dict(state)
            except RuntimeError as exc:
                raise ModelFormatError(
                    f"{weights}: weights do not fit {dense.to_st_config()}: {exc}"
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
