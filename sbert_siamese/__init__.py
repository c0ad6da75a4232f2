"""sbert-siamese: Siamese (twin) sentence encoders on transformers and accelerate."""

from __future__ import annotations

__version__ = "0.1.0"

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
]
