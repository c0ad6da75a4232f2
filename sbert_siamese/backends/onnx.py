"""ONNX Runtime inference for a ``SiameseEncoder``: export, int8 quantisation, and the runner ``encode`` uses.

Only the transformer is exported; pooling, the optional dense layer and normalisation stay in torch and run
on its output (a few per cent of the work), so every pooling mode and every model we load works the same on
both backends. The files go into the model directory in the layout sentence-transformers' own ONNX backend
reads (``onnx/model.onnx``: ``input_ids``, ``attention_mask`` [, ``token_type_ids``] ->
``last_hidden_state``):

    onnx/model.onnx        fp32, ONNX Runtime applies its graph optimisations when it loads it
    onnx/model_qint8.onnx  the same with dynamic int8 weights, one scale per output channel, on every MatMul
    onnx/export.json       which weights these files were made from (a fingerprint), opset, versions

Backends (``SiameseEncoder.encode(..., backend=...)``):
    ``torch``      the model itself (any device, any precision)
    ``onnx``       ONNX Runtime, fp32: equal to torch within 1e-5
    ``onnx-int8``  ONNX Runtime, int8 weights: the fastest on CPU; measured on STS-B test with
                   all-MiniLM-L6-v2 it loses about 0.002 Spearman (benchmarks/bench_encode.py)

Example:
    >>> enc = SiameseEncoder.from_pretrained("runs/stsb")  # doctest: +SKIP
    >>> export_onnx(enc, "runs/stsb")  # doctest: +SKIP
    >>> enc.encode(texts, backend="onnx-int8")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ModelFormatError, OutputError
from ..io.safe_io import safe_name, staged_dir
from ..io.streaming import weights_fingerprint as module_fingerprint

logger = logging.getLogger(__name__)

ONNX_DIR = "onnx"
FILES = {"onnx": "model.onnx", "onnx-int8": "model_qint8.onnx"}
EXPORT_INFO = "export.json"
OPSET = 17


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "the onnx backends need onnxruntime and onnx: pip install onnxruntime onnx"
        ) from exc
    return onnxruntime


class _HiddenStates(nn.Module):
    """The transformer alone, returning last_hidden_state: what gets exported."""

    def __init__(self, transformer: nn.Module, input_names: list[str]):
        super().__init__()
        self.transformer = transformer
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.transformer(**dict(zip(self.input_names, inputs, strict=True)), return_dict=True)[0]


def input_names(encoder) -> list[str]:
    names = [
        n
        for n in ("input_ids", "attention_mask", "token_type_ids")
        if n in encoder.tokenizer.model_input_names
    ]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise ConfigError(
            f"ONNX export needs a tokenizer that gives input_ids and attention_mask, "
            f"this one gives {encoder.tokenizer.model_input_names}"
        )
    return names


def weights_fingerprint(encoder) -> str:
    """The fingerprint of the transformer an export was made from (its pooling and dense run in torch)."""
    return module_fingerprint(encoder.transformer)


def _export_fp32(encoder, path: Path) -> None:
    names = input_names(encoder)
    sample = encoder.tokenize(["an example sentence to trace the graph", "another one"])
    args = tuple(sample[n].cpu() for n in names)
    module = _HiddenStates(encoder.transformer, names)
    was_training, device = encoder.transformer.training, encoder.device
    encoder.transformer.eval().to("cpu")
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer chatter about Python control flow on shapes
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    except OSError:
        raise  # disk full, no permission: export_onnx reports it as an OutputError naming the folder
    except Exception as exc:  # the exporter raises many types; name the model and the cause
        raise ModelFormatError(
            f"could not export {type(encoder.transformer).__name__} to ONNX: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        encoder.transformer.to(device).train(was_training)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    advice = _DropQuantizerAdvice()
    root.addFilter(advice)  # it logs, through the root logger, advice about a step that fails for BERT
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(source),
                str(target),
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
    finally:
        root.removeFilter(advice)


class _DropQuantizerAdvice(logging.Filter):
    """Drops what the quantizer logs through the root logger while it runs: a line per tensor at INFO, and
    advice about a pre-processing step that fails for BERT."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and record.levelno < logging.WARNING:
            return False
        return "pre-processing before quantization" not in record.getMessage()


def export_onnx(encoder, folder: str | Path, int8: bool = True) -> dict:
    """Write ``folder/onnx/model.onnx`` (and ``model_qint8.onnx`` unless ``int8=False``) for ``encoder``.

    The files are written to a temporary folder first and moved into place only when all of them are done,
    so an interrupted export never leaves a half-written model behind (an earlier ``onnx/`` stays until the
    new one is complete). A full disk or a missing permission raises ``OutputError`` naming the folder.
    Returns what ``export.json`` holds.
    """
    ort = _import_ort()
    target = Path(folder) / ONNX_DIR
    with staged_dir(target, "the ONNX export") as staging:
        _export_fp32(encoder, staging / FILES["onnx"])
        files = {"onnx": FILES["onnx"]}
        if int8:
            _quantize(staging / FILES["onnx"], staging / FILES["onnx-int8"])
            files["onnx-int8"] = FILES["onnx-int8"]
        info = {
            "weights": weights_fingerprint(encoder),
            "inputs": input_names(encoder),
            "output": "last_hidden_state",
            "opset": OPSET,
            "files": files,
            "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        }
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def read_export_info(folder: str | Path) -> dict | None:
    return read_info(Path(folder) / ONNX_DIR / EXPORT_INFO, "export_onnx", "ONNX")


def read_info(path: Path, writer: str, kind: str) -> dict | None:
    """An export's ``export.json`` (None when there is none), checked: an object whose ``files`` are plain
    file names in its own folder, so nothing is read from elsewhere."""
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: expected the JSON that {writer} writes ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("files"), dict):
        raise ModelFormatError(f"{path}: expected an object with 'weights' and 'files'")
    for name in info["files"].values():
        try:
            safe_name(name if isinstance(name, str) else "", f"{kind} file name")
        except OutputError as exc:
            raise ModelFormatError(f"{path}: {exc}") from None
    return info


class OnnxRunner:
    """An ONNX Runtime session over one exported file; ``hidden_states`` takes the padded (B, T) batch."""

    def __init__(self, path: str | Path, names: list[str], threads: int | None = None):
        ort = _import_ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # ORT's worker threads otherwise spin between runs and fight torch's threads over the same cores
        # (pooling runs in torch between batches).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelFormatError(f"{path}: ONNX Runtime could not load it: {exc}") from None
        graph_inputs = [i.name for i in self.session.get_inputs()]
        if sorted(graph_inputs) != sorted(names):
            raise ModelFormatError(f"{path}: graph inputs {graph_inputs}, expected {names}")
        self.names = names
        self.path = Path(path)

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {n: batch[n].cpu().numpy().astype(np.int64, copy=False) for n in self.names}
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        return torch.from_numpy(hidden)

    def stream(self, items):
        """(key, batch) pairs -> ((key, batch), hidden states), one batch at a time."""
        for key, batch in items:
            yield (key, batch), self.hidden_states(batch)


def runner_for(encoder, backend: str) -> OnnxRunner:
    """The runner for ``backend``: the model directory's exported file when it was made from these weights,
    else a fresh export in a temporary folder (about 10-20 s for a 6-layer model), kept for this session."""
    from . import exported_file

    names = input_names(encoder)
    saved = exported_file(getattr(encoder, "source_path", None), backend, weights_fingerprint(encoder))
    if saved is not None:
        return OnnxRunner(saved, names)
    with tempfile.TemporaryDirectory(prefix="sbert-siamese-onnx-") as tmp:
        export_onnx(encoder, tmp, int8=backend == "onnx-int8")
        return OnnxRunner(Path(tmp) / ONNX_DIR / FILES[backend], names)  # ORT holds the model in memory
