"""sbert-siamese: Siamese (twin) sentence encoders on transformers and accelerate."""

from __future__ import annotations

__version__ = "0.1.0"

from .encoder import SiameseEncoder  # noqa: E402
from .errors import ConfigError, DataError, ModelFormatError, ModelNotFoundError, SbertSiameseError  # noqa: E402
from .pooling import Pooling  # noqa: E402

__all__ = [
    "ConfigError",
    "DataError",
    "ModelFormatError",
    "ModelNotFoundError",
    "Pooling",
    "SbertSiameseError",
    "SiameseEncoder",
    "__version__",
]
