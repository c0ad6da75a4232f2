"""Fast encode backends behind the same ``encode`` call: ONNX Runtime (fp32, dynamic int8) and OpenVINO (fp32,
bf16, static int8): export, load, run, and the per-model choice of ``--backend auto``.

Every backend runs only the transformer; pooling, dense and normalisation stay in torch, so the embeddings'
layout and every pooling mode are the same on all of them.
"""

from __future__ import annotations

from ..errors import ConfigError

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
