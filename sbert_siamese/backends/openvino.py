"""OpenVINO inference for a ``SiameseEncoder``: export (fp32 IR, static int8) and the runner ``encode`` uses.

As with ONNX, only the transformer is exported; pooling, dense and normalisation run in torch on its output.
The files go into the model directory in the layout sentence-transformers' OpenVINO backend reads
(``openvino/openvino_model.xml``: ``input_ids``, ``attention_mask`` [, ``token_type_ids``] ->
``last_hidden_state``):

    openvino/openvino_model.xml/.bin                  fp32 weights (also run in bf16, see below)
    openvino/openvino_model_qint8_quantized.xml/.bin  static int8: weights and activations, calibrated
    openvino/export.json                              the weights' fingerprint, the calibration, versions

Backends (``SiameseEncoder.encode(..., backend=...)``):
    ``openvino``       fp32 throughout: equal to torch within 1e-5.
    ``openvino-bf16``  the fp32 file run with bf16 matrix products, on CPUs that have them (AVX512_BF16 or
                       AMX; elsewhere it is refused rather than silently run in fp32). Near-exact: about 2e-3
                       per embedding value, STS-B Spearman within 0.0005 of fp32 for all-MiniLM-L6-v2.
    ``openvino-int8``  int8 weights and activations (NNCF post-training quantisation), the rest in fp32:
                       the fastest on CPU. Its activation ranges are calibrated on texts at export time:
                       the user's own (``export --calibration-texts``) or the bundled sample
                       (``calibration.txt``: 760 short sentences written for this project), each run alone
                       so that padding never enters the ranges.

Example:
    >>> export_openvino(enc, "runs/stsb", calibration_texts=my_questions)  # doctest: +SKIP
    >>> enc.encode(texts, backend="openvino-int8")  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import itertools
import json
import logging
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, ModelFormatError
from ..io.safe_io import staged_dir
from .onnx import _export_fp32, input_names, read_info, weights_fingerprint

logger = logging.getLogger(__name__)

OPENVINO_DIR = "openvino"
FILES = {"openvino": "openvino_model.xml", "openvino-int8": "openvino_model_qint8_quantized.xml"}
EXPORT_INFO = "export.json"
CALIBRATION_SAMPLE = Path(__file__).with_name("calibration.txt")
CALIBRATION_SIZE = 300  # texts used to calibrate int8 (NNCF's own default subset size)
PRECISIONS = {"openvino": "f32", "openvino-bf16": "bf16", "openvino-int8": "f32"}


def _import_ov():
    try:
        import openvino
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError("the openvino backends need OpenVINO: pip install openvino nncf") from exc
    return openvino


def file_of(backend: str) -> str:
    """The IR file a backend runs: bf16 runs the fp32 file with bf16 products."""
    return FILES["openvino" if backend == "openvino-bf16" else backend]


def cpu_has_bf16() -> bool:
    """Whether OpenVINO can run bf16 products on this CPU (AVX512_BF16 or AMX)."""
    return "BF16" in _import_ov().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def read_calibration_texts(path: str | Path | None = None, limit: int = CALIBRATION_SIZE) -> list[str]:
    """Up to ``limit`` distinct non-empty lines of ``path`` (one text per line), spread evenly over the file
    so that a file sorted by topic or length is sampled throughout; the bundled sample when ``path`` is None.
    """
    source = Path(path) if path is not None else CALIBRATION_SAMPLE
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"--calibration-texts {source}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: expected UTF-8 text, one text per line ({exc})") from None
    texts = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if not texts:
        raise ConfigError(f"{source}: no texts to calibrate on (expected one text per line)")
    if len(texts) > limit:
        texts = [texts[i] for i in np.linspace(0, len(texts) - 1, limit).round().astype(int)]
    return texts


def _calibration_items(encoder, texts: list[str]) -> list[dict[str, np.ndarray]]:
    names = input_names(encoder)
    items = []
    for text in texts:  # one text per item: padded positions would widen the activation ranges
        features = encoder.tokenize([encoder.prepare_text(text)])
        items.append({n: features[n].cpu().numpy().astype(np.int64) for n in names})
    return items


@contextlib.contextmanager
def _root_logging_kept():
    """Put the root logger's level, filters, handlers and their levels back after a call into OpenVINO /
    NNCF, which set them for their own output (nncf.set_log_level, for one, sets every handler it reaches)."""
    root = logging.getLogger()
    level, filters, handlers = root.level, list(root.filters), list(root.handlers)
    handler_levels = [h.level for h in handlers]
    try:
        yield
    finally:
        root.setLevel(level)
        root.filters[:] = filters
        root.handlers[:] = handlers
        for handler, handler_level in zip(handlers, handler_levels, strict=True):
            handler.setLevel(handler_level)


def _quantize(model, items: list[dict[str, np.ndarray]]):
    # Importing NNCF sets the process's logger class and gives the "nncf" logger a handler of its own on
    # stdout; NNCF logs its steps at INFO and draws progress bars. Library code prints nothing: the logger
    # class is put back, and while quantising, NNCF's warnings go through the application's logging instead.
    logger_class = logging.getLoggerClass()
    try:
        import nncf
    finally:
        logging.setLoggerClass(logger_class)
    nncf_logger = logging.getLogger("nncf")
    saved = nncf_logger.level, nncf_logger.propagate, list(nncf_logger.handlers)
    nncf_logger.setLevel(logging.WARNING)
    nncf_logger.propagate = True
    nncf_logger.handlers.clear()
    try:
        with (
            _root_logging_kept(),
            contextlib.redirect_stdout(io.StringIO()),  # the progress bars
            contextlib.redirect_stderr(io.StringIO()),
        ):
            return nncf.quantize(
                model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items)
            )
    finally:
        nncf_logger.setLevel(saved[0])
        nncf_logger.propagate = saved[1]
        nncf_logger.handlers[:] = saved[2]


def export_openvino(
    encoder,
    folder: str | Path,
    int8: bool = True,
    calibration_texts: list[str] | None = None,
    calibration_source: str | None = None,
) -> dict:
    """Write ``folder/openvino/openvino_model.xml`` (fp32) and, unless ``int8=False``, the static int8 model
    calibrated on ``calibration_texts`` (default: the bundled sample, see ``read_calibration_texts``).

    Written to a temporary folder and moved into place when complete, like ``export_onnx``; a full disk
    or a missing permission raises ``OutputError`` naming the folder. Returns what ``export.json`` holds.
    """
    ov = _import_ov()
    if int8 and calibration_texts is None:
        calibration_texts, calibration_source = read_calibration_texts(), "bundled sample"
    target = Path(folder) / OPENVINO_DIR
    with staged_dir(target, "the OpenVINO export") as staging, tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        _export_fp32(encoder, onnx_file)
        try:
            with _root_logging_kept():
                model = ov.convert_model(str(onnx_file))
        except Exception as exc:
            raise ModelFormatError(f"OpenVINO could not convert the exported graph: {exc}") from exc
        ov.save_model(model, str(staging / FILES["openvino"]), compress_to_fp16=False)
        files = {"openvino": FILES["openvino"], "openvino-bf16": FILES["openvino"]}
        info: dict = {"weights": weights_fingerprint(encoder), "inputs": input_names(encoder)}
        if int8:
            quantized = _quantize(model, _calibration_items(encoder, calibration_texts))
            ov.save_model(quantized, str(staging / FILES["openvino-int8"]), compress_to_fp16=False)
            files["openvino-int8"] = FILES["openvino-int8"]
            digest = hashlib.sha256("\n".join(calibration_texts).encode("utf-8")).hexdigest()
            info["calibration"] = {
                "source": calibration_source or "texts given to export_openvino",
                "texts": len(calibration_texts),
                "sha256": digest,
            }
        info["output"] = "last_hidden_state"
        info["files"] = files
        info["versions"] = {"torch": torch.__version__, "openvino": ov.__version__}
        if int8:
            from importlib.metadata import version

            info["versions"]["nncf"] = version("nncf")
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def read_export_info(folder: str | Path) -> dict | None:
    return read_info(Path(folder) / OPENVINO_DIR / EXPORT_INFO, "export_openvino", "OpenVINO")


class OpenVinoRunner:
    """An OpenVINO model over one IR file, compiled for the CPU in two ways, each on first use:

    - for many batches (``stream``), the THROUGHPUT hint: several streams, each on its own cores, with
      one request more in flight than there are streams, so that padding and pooling in Python overlap
      inference. On 2 cores: 2 streams of 1 thread, 10-20% faster than one stream of 2 threads
      (benchmarks/README.md);
    - for one batch (``hidden_states``, or a ``stream`` of one batch: a service's single question), the
      LATENCY hint: one stream using every thread.

    ``precision`` is OpenVINO's inference precision for the products that are not int8: ``f32`` (exact;
    also used around the int8 products so that their results do not depend on the CPU) or ``bf16``."""

    def __init__(
        self, path: str | Path, names: list[str], precision: str = "f32", threads: int | None = None
    ):
        ov = _import_ov()
        if precision == "bf16" and not cpu_has_bf16():
            raise ConfigError(
                "backend openvino-bf16 needs a CPU with bf16 products (AVX512_BF16 or AMX); this one has "
                "none: use openvino (fp32) or openvino-int8"
            )
        self.path = Path(path)
        try:
            self.model = ov.Core().read_model(str(path))
        except Exception as exc:
            raise ModelFormatError(f"{path}: OpenVINO could not read it: {exc}") from None
        graph_inputs = [i.get_any_name() for i in self.model.inputs]
        if sorted(graph_inputs) != sorted(names):
            raise ModelFormatError(f"{path}: graph inputs {graph_inputs}, expected {names}")
        self.names = names
        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        self._compiled: dict[str, object] = {}
        self._request = None
        self._lock = threading.Lock()

    def compiled(self, hint: str):
        """The model compiled with ``PERFORMANCE_HINT`` ``hint`` (LATENCY or THROUGHPUT)."""
        if hint not in self._compiled:
            config = {
                "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": hint,
                "INFERENCE_PRECISION_HINT": self.precision,
            }
            try:
                self._compiled[hint] = _import_ov().Core().compile_model(self.model, "CPU", config)
            except Exception as exc:
                raise ModelFormatError(f"{self.path}: OpenVINO could not compile it: {exc}") from None
        return self._compiled[hint]

    def _feeds(self, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {n: batch[n].cpu().numpy().astype(np.int64, copy=False) for n in self.names}

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with self._lock:  # one request, shared by the threads of a service (Archive.query)
            if self._request is None:
                self._request = self.compiled("LATENCY").create_infer_request()
            hidden = self._request.infer(self._feeds(batch))[0]  # a copy: the request's buffer is reused
        return torch.from_numpy(hidden)

    def stream(self, items):
        """(key, batch) pairs -> ((key, batch), hidden states), in the order given; each stream call has
        requests of its own."""
        items = iter(items)
        first = next(items, None)
        if first is None:
            return
        second = next(items, None)
        if second is None:  # one batch: all threads on it
            yield first, self.hidden_states(first[1])
            return
        compiled = self.compiled("THROUGHPUT")
        jobs = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") + 1
        idle = [compiled.create_infer_request() for _ in range(jobs)]
        # Requests in flight, oldest first, waited for in that order. No completion callbacks: a callback
        # needs the GIL on OpenVINO's thread, which can deadlock against a compiled model freed (with the
        # GIL held) on this one.
        busy: collections.deque = collections.deque()
        for item in itertools.chain((first, second), items):
            if not idle:
                request, finished = busy.popleft()
                request.wait()
                yield finished, torch.from_numpy(request.get_output_tensor(0).data.copy())
                idle.append(request)
            request = idle.pop()
            request.start_async(self._feeds(item[1]))
            busy.append((request, item))
        while busy:
            request, finished = busy.popleft()
            request.wait()
            yield finished, torch.from_numpy(request.get_output_tensor(0).data.copy())


def runner_for(encoder, backend: str) -> OpenVinoRunner:
    """The runner for ``backend``: the model directory's exported file when it was made from these weights,
    else a fresh export in a temporary folder (int8: calibrated on the bundled sample), kept for this
    session."""
    from . import exported_file

    names = input_names(encoder)
    precision = PRECISIONS[backend]
    saved = exported_file(getattr(encoder, "source_path", None), backend, weights_fingerprint(encoder))
    if saved is not None:
        return OpenVinoRunner(saved, names, precision)
    with tempfile.TemporaryDirectory(prefix="sbert-siamese-openvino-") as tmp:
        export_openvino(encoder, tmp, int8=backend == "openvino-int8")
        return OpenVinoRunner(Path(tmp) / OPENVINO_DIR / file_of(backend), names, precision)
