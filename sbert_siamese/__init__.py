"""sbert-siamese: Siamese (twin) sentence encoders on transformers and accelerate.

The names a user needs are importable from here (``from sbert_siamese import SiameseEncoder, train``);
the folders hold one concept each: ``models``, ``backends``, ``data``, ``losses``, ``training``,
``evaluation``, ``search``, ``io``, ``cli``. Everything but the encoder, pooling, bad-row policy and errors
is imported on first use, so ``import sbert_siamese`` stays light.
"""

from __future__ import annotations

import importlib

from ._version import __version__  # noqa: E402
from .data.readers import BadRows  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    ModelFormatError,
    ModelNotFoundError,
    OutputError,
    SbertSiameseError,
    TrainingDivergedError,
)
from .models.encoder import SiameseEncoder  # noqa: E402
from .models.pooling import Pooling  # noqa: E402

# name -> the module it lives in (imported when the name is first used)
_LAZY = {
    "Dense": "models.dense",
    "SiameseModel": "models.siamese",
    "SoftmaxHead": "models.heads",
    "WeightedL1Head": "models.heads",
    "TrainConfig": "config",
    "load_recipe": "config",
    "train": "training",
    "TrainResult": "training",
    "OBJECTIVES": "losses",
    "get_objective": "losses",
    "Threshold": "evaluation",
    "calibrate": "evaluation",
    "STSEvaluator": "evaluation",
    "PairClassificationEvaluator": "evaluation",
    "DuplicateMiningEvaluator": "evaluation",
    "RetrievalEvaluator": "evaluation",
    "TripletEvaluator": "evaluation",
    "OneShotEvaluator": "evaluation",
    "evaluate_sts_suite": "evaluation",
    "find_duplicates": "search",
    "semantic_search": "search",
    "mine_duplicates": "search",
    "cluster_duplicates": "search",
    "exact_topk": "search",
    "build_index": "search",
    "mine_hard_negatives": "search",
    "encode_to_disk": "io.streaming",
    "load_embeddings": "io.streaming",
    "export_onnx": "backends.onnx",
    "export_openvino": "backends.openvino",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BadRows",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ModelFormatError",
    "ModelNotFoundError",
    "OutputError",
    "Pooling",
    "SbertSiameseError",
    "SiameseEncoder",
    "TrainingDivergedError",
    "__version__",
    *_LAZY,
]
