"""Fast encode backends behind the same ``encode`` call: ONNX Runtime (fp32, dynamic int8) and OpenVINO (fp32,
bf16, static int8): export, load, run, and the per-model choice of ``--backend auto``.

Every backend runs only the transformer; pooling, dense and normalisation stay in torch, so the embeddings'
layout and every pooling mode are the same on all of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ConfigError

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8")
# exact within 1e-5 of torch fp32; the others trade a measured quality loss for speed
EXACT = ("torch", "onnx", "openvino")
# what a user may ask for: a backend, or auto (the model's measured choice, see choice.py)
CHOICES = (*BACKENDS, "auto")


def check_backend(backend: str) -> str:
    if backend not in CHOICES:
        raise ConfigError(f"backend must be one of {', '.join(CHOICES)}, got {backend!r}")
    return backend


def runner_for(encoder, backend: str):
    """The runner (``hidden_states(batch) -> (B, T, H)``) of a non-torch backend for ``encoder``."""
    if backend.startswith("openvino"):
        from .openvino import runner_for as openvino_runner

        return openvino_runner(encoder, backend)
    from .onnx import runner_for as onnx_runner

    return onnx_runner(encoder, backend)


def exported_file(source, backend: str, fingerprint: str, warn: bool = True) -> Path | None:
    """The model folder's file for ``backend`` when ``export`` made it from the weights with this
    fingerprint; else None (with a warning, if ``warn``, when an export of other weights or without this
    backend is there: the caller exports again for its session)."""
    if source is None:
        return None
    if backend.startswith("openvino"):
        from .openvino import OPENVINO_DIR as folder
        from .openvino import read_export_info
    else:
        from .onnx import ONNX_DIR as folder
        from .onnx import read_export_info
    info = read_export_info(source)
    if info and info.get("weights") == fingerprint and backend in info["files"]:
        return Path(source) / folder / info["files"][backend]
    if info and warn:
        logger.warning(
            "%s was exported from other weights or without %s; exporting again for this session",
            Path(source) / folder,
            backend,
        )
    return None
