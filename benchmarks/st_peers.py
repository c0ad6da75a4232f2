"""sentence-transformers' fastest CPU backends as benchmark peers, run in their own virtual environment.

Why a separate environment: ST's ``onnx`` extra (optimum-onnx) and the optimum-intel release that goes with it
pin transformers < 4.58 (and so huggingface-hub < 1.0 and an older datasets), while this project runs on
transformers 5. So the peers live in ``.venv-peers`` (``make bench-peers``, exact pins in
``benchmarks/peers-requirements.txt``), never in the project's ``.venv``, and the benchmark talks to them
through a long-lived worker process.

This one file has two roles.

As a script, under the peers' interpreter, it is the worker::

    .venv-peers/bin/python benchmarks/st_peers.py --model MODEL_DIR --threads N --work-dir DIR

It reads one JSON request per line on stdin and answers one JSON line per request on stdout; everything else
(logs, warnings, progress, even C-level prints) goes to stderr. Requests:

- ``{"cmd": "prepare", "mode": M, "calibration": "texts.txt"}`` builds or loads mode M (exports are written
  under DIR, never into the model folder, and happen here, outside any timing); ``calibration`` (one text a
  line, or a ``.json`` list) is needed by ``st-openvino-int8`` only. Answer: ``{"ok": true, "mode": M,
  "detail": "..."}`` saying what was built and which thread settings were applied.
- ``{"cmd": "encode", "mode": M, "texts": "texts.txt" or "texts.json", "batch_size": 32, "out": "x.npy"}``
  times only ``model.encode(texts, batch_size=..., convert_to_numpy=True)`` with ``time.perf_counter``, saves
  the float32 embeddings to ``out`` and answers ``{"seconds": t}``.
- ``{"cmd": "versions"}`` answers the versions of the packages involved.
- ``{"cmd": "quit"}`` answers ``{"ok": true}`` and exits.

A failed request answers ``{"error": "..."}`` (traceback on stderr) and the worker carries on. Exports are
kept under DIR (``models/onnx``, ``models/openvino``, copies of the model folder) and reused by later workers;
the static int8 one is keyed by a hash of its calibration texts. It is the slow one: ST pads calibration
inputs to 384 tokens, about 1.5 minutes for 300 texts on 2 cores.

Modes (all ``SentenceTransformer(path, device="cpu", backend=...)``): ``st-torch`` (PyTorch fp32),
``st-onnx`` (fp32 ONNX export), ``st-onnx-int8`` (``export_dynamic_quantized_onnx_model`` with the config that
matches this CPU), ``st-openvino`` (fp32 IR; OpenVINO may still infer in bf16, which the prepare detail
reports) and ``st-openvino-int8`` (``export_static_quantized_openvino_model`` calibrated on the given texts,
handed to it as a local dataset folder since its default calibration set is on the hub).

Imported from the project's environment, it gives the client, :class:`StPeers`, and imports nothing of
sentence-transformers or torch::

    python = peers_python(repo_root)            # None until `make bench-peers` has run
    with StPeers(python, model_dir, threads=2, work_dir=Path("runs/st_peers")) as peers:
        detail = peers.prepare("st-openvino-int8", calibration=calibration_texts)
        embeddings, seconds = peers.encode("st-openvino-int8", texts, batch_size=32)
        print(peers.versions())
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

MODES = ("st-torch", "st-onnx", "st-onnx-int8", "st-openvino", "st-openvino-int8")

# Keeps the worker away from the hub: the model is a local folder and calibration texts are local files.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

PEERS_VENV = ".venv-peers"


def peers_python(repo_root: Path) -> Path | None:
    """The peers' interpreter (``.venv-peers/bin/python`` under ``repo_root``), or None if not built."""
    python = Path(repo_root) / PEERS_VENV / "bin" / "python"
    return python if python.exists() else None


# --------------------------------------------------------------------------------------------------------
# Client (project environment)
# --------------------------------------------------------------------------------------------------------


class StPeers:
    """Runs the worker under ``python`` (the peers' interpreter) and talks to it.

    Texts travel through files under ``work_dir`` (written once per distinct list); the worker times only
    ``model.encode``. Any worker error, or its death, raises RuntimeError with the tail of its stderr, which
    is also kept whole in ``work_dir/worker-stderr.log``.
    """

    def __init__(
        self,
        python: Path,
        model: Path,
        threads: int,
        work_dir: Path,
        timeout: float | None = None,
        echo_stderr: bool = False,
    ):
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "texts").mkdir(exist_ok=True)
        self.timeout = timeout
        self._echo = echo_stderr
        self._texts_cache: dict[int, tuple[list[str], Path]] = {}
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=60)
        self._log_path = self.work_dir / "worker-stderr.log"
        self._log = open(self._log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(OFFLINE_ENV)
        command = [
            str(python),
            str(Path(__file__).resolve()),
            "--model",
            str(Path(model).resolve()),
            "--threads",
            str(int(threads)),
            "--work-dir",
            str(self.work_dir),
        ]
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._answers: collections.deque[str | None] = collections.deque()
        self._answer_ready = threading.Condition()
        self._threads = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _pump_stdout(self) -> None:
        for line in self._proc.stdout:
            with self._answer_ready:
                self._answers.append(line)
                self._answer_ready.notify()
        with self._answer_ready:
            self._answers.append(None)  # end of stream: the worker is gone
            self._answer_ready.notify()

    def _pump_stderr(self) -> None:
        for line in self._proc.stderr:
            self._stderr_tail.append(line.rstrip("\n"))
            self._log.write(line)
            self._log.flush()
            if self._echo:
                sys.stderr.write(line)

    def _tail(self) -> str:
        time.sleep(0.2)  # let the stderr pump catch up with a dying worker
        return "\n".join(self._stderr_tail)

    def _request(self, payload: dict, timeout: float | None = None) -> dict:
        if self._proc.poll() is not None:
            code = self._proc.returncode
            raise RuntimeError(f"st_peers worker exited (code {code})\n--- worker stderr ---\n{self._tail()}")
        try:
            self._proc.stdin.write(json.dumps(payload) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            tail = self._tail()
            raise RuntimeError(f"st_peers worker is gone ({exc})\n--- worker stderr ---\n{tail}") from exc
        timeout = self.timeout if timeout is None else timeout
        with self._answer_ready:
            if not self._answer_ready.wait_for(lambda: self._answers, timeout=timeout):
                self._proc.kill()  # its late answer would otherwise be read as the next request's
                raise RuntimeError(
                    f"st_peers worker gave no answer to {payload['cmd']!r} within {timeout} s\n"
                    f"--- worker stderr ---\n{self._tail()}"
                )
            line = self._answers.popleft()
        if line is None:
            self._proc.wait(timeout=30)
            raise RuntimeError(
                f"st_peers worker died during {payload['cmd']!r} (exit code {self._proc.returncode})\n"
                f"--- worker stderr ---\n{self._tail()}"
            )
        try:
            answer = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"st_peers worker answered garbage: {line[:500]!r}") from exc
        if "error" in answer:
            raise RuntimeError(
                f"st_peers {payload['cmd']} {payload.get('mode', '')} failed: {answer['error']}\n"
                f"--- worker stderr ---\n{self._tail()}"
            )
        return answer

    def _texts_file(self, texts: list[str]) -> Path:
        cached = self._texts_cache.get(id(texts))
        if cached is not None and cached[0] is texts:
            return cached[1]
        blob = json.dumps(list(texts), ensure_ascii=False)
        path = self.work_dir / "texts" / f"{hashlib.sha1(blob.encode('utf-8')).hexdigest()[:16]}.json"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(blob, encoding="utf-8")
            tmp.replace(path)
        self._texts_cache[id(texts)] = (texts, path)
        return path

    # -- API ------------------------------------------------------------------------------------------------

    def prepare(self, mode: str, calibration: list[str] | None = None) -> str:
        """Build or load ``mode`` in the worker (exports included); returns what was built and how."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        payload = {"cmd": "prepare", "mode": mode}
        if calibration is not None:
            payload["calibration"] = str(self._texts_file(calibration))
        return self._request(payload)["detail"]

    def encode(self, mode: str, texts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
        """Encode ``texts`` with a prepared ``mode``: (float32 embeddings, seconds spent in model.encode)."""
        out = self.work_dir / f"out-{os.getpid()}-{mode}.npy"
        payload = {
            "cmd": "encode",
            "mode": mode,
            "texts": str(self._texts_file(texts)),
            "batch_size": int(batch_size),
            "out": str(out),
        }
        seconds = float(self._request(payload)["seconds"])
        try:
            embeddings = np.load(out)
        finally:
            out.unlink(missing_ok=True)
        return embeddings, seconds

    def versions(self) -> dict:
        """Versions of sentence-transformers, transformers, optimum*, openvino, onnxruntime, nncf, torch."""
        answer = self._request({"cmd": "versions"})
        return answer["versions"]

    def close(self) -> None:
        """Ask the worker to quit (killing it if it does not) and release everything."""
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.flush()
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        self._log.close()
        self._proc = None

    def __enter__(self) -> StPeers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------------
# Worker (peers environment)
# --------------------------------------------------------------------------------------------------------


def _read_texts(path: str) -> list[str]:
    """A ``.json`` list of strings, or a text file with one text a line."""
    p = Path(path)
    if p.suffix == ".json":
        texts = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{p}: expected a JSON list of strings")
        return texts
    lines = p.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _onnx_quantization_config_name() -> str:
    """ST's dynamic-quantization preset that matches this CPU."""
    flags = _cpu_flags()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _log(message: str) -> None:
    print(f"[st_peers] {message}", file=sys.stderr, flush=True)


class Worker:
    """Holds the prepared models; one method per request."""

    def __init__(self, model: Path, threads: int, work_dir: Path):
        if not (model / "modules.json").is_file():
            raise FileNotFoundError(f"{model}: not a sentence-transformers model folder (no modules.json)")
        self.source = model
        self.threads = threads
        self.work_dir = work_dir
        self.models: dict[str, object] = {}
        self.details: dict[str, str] = {}

        import torch

        torch.set_num_threads(threads)
        self.torch_threads = f"torch.set_num_threads({threads})"
        _log(f"model {model}, {self.torch_threads}, work dir {work_dir}")

    # -- model folders --------------------------------------------------------------------------------------

    def _copy(self, name: str) -> Path:
        """A private copy of the model folder for a backend's exports (the source is never written)."""
        import hashlib
        import shutil

        # keyed by the model's path and weights' size and time, so another model never reuses these exports
        weights = sorted(self.source.glob("*.safetensors")) + sorted(self.source.glob("*.bin"))
        stamp = f"{self.source.resolve()}|" + "|".join(
            f"{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights
        )
        key = hashlib.sha256(stamp.encode()).hexdigest()[:10]
        dest = self.work_dir / "models" / key / name
        if not (dest / "modules.json").exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            skip = shutil.ignore_patterns("onnx", "openvino", ".git*")
            shutil.copytree(self.source, tmp, ignore=skip)
            tmp.rename(dest)
        return dest

    def _onnx_kwargs(self) -> tuple[dict, str]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        kwargs = {"provider": "CPUExecutionProvider", "session_options": options}
        what = f"onnxruntime CPUExecutionProvider, SessionOptions.intra_op_num_threads={self.threads}"
        return kwargs, what

    def _ov_kwargs(self) -> tuple[dict, str]:
        ov_config = {"INFERENCE_NUM_THREADS": self.threads}
        return {"ov_config": ov_config}, f"ov_config={ov_config}"

    def _st(self, path: Path, backend: str, model_kwargs: dict | None = None):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(path), device="cpu", backend=backend, model_kwargs=model_kwargs)

    def _onnx_fp32(self) -> tuple[Path, str]:
        """Folder with ``onnx/model.onnx`` (exported by ST the first time), and how it came to be."""
        folder = self._copy("onnx")
        if (folder / "onnx" / "model.onnx").exists():
            return folder, "reused onnx/model.onnx"
        _log("exporting the fp32 ONNX model with ST (backend='onnx')")
        model = self._st(folder, "onnx", {"provider": "CPUExecutionProvider"})
        model.save_pretrained(str(folder))
        return folder, "exported onnx/model.onnx with SentenceTransformer(backend='onnx')"

    def _openvino_fp32(self) -> tuple[Path, str]:
        folder = self._copy("openvino")
        if (folder / "openvino" / "openvino_model.xml").exists():
            return folder, "reused openvino/openvino_model.xml"
        _log("exporting the fp32 OpenVINO IR with ST (backend='openvino')")
        model = self._st(folder, "openvino")
        model.save_pretrained(str(folder))
        return folder, "exported openvino/openvino_model.xml with SentenceTransformer(backend='openvino')"

    @staticmethod
    def _ov_runtime(model) -> str:
        """The settings the compiled OpenVINO model ended up with (precision, threads, streams, hint)."""
        ov_model = model[0].auto_model
        ov_model.compile()
        compiled = ov_model.request
        found = []
        for key in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT"):
            try:
                value = compiled.get_property(key)
                if hasattr(value, "get_type_name"):  # an openvino Type: bf16, f32, ...
                    value = value.get_type_name()
                found.append(f"{key}={value}")
            except Exception as exc:  # a property this plugin version lacks
                found.append(f"{key}=? ({type(exc).__name__})")
        return "compiled: " + ", ".join(found)

    # -- modes ----------------------------------------------------------------------------------------------

    def _prepare_st_torch(self, calibration):
        model = self._st(self.source, "torch")
        dtype = next(model.parameters()).dtype
        return model, f"PyTorch backend, {dtype}, {self.torch_threads}"

    def _prepare_st_onnx(self, calibration):
        folder, how = self._onnx_fp32()
        kwargs, threads = self._onnx_kwargs()
        model = self._st(folder, "onnx", {**kwargs, "file_name": "onnx/model.onnx"})
        return model, f"fp32 ONNX ({how}); {threads}"

    def _prepare_st_onnx_int8(self, calibration):
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
        from sentence_transformers import export_dynamic_quantized_onnx_model

        folder, how = self._onnx_fp32()
        preset = _onnx_quantization_config_name()
        config = getattr(AutoQuantizationConfig, preset)(is_static=False)
        suffix = f"{config.weights_dtype.name.lower()}_{preset}"
        file_name = f"onnx/model_{suffix}.onnx"
        if (folder / file_name).exists():
            made = f"reused {file_name}"
        else:
            _log(f"dynamic int8 ONNX quantization with preset {preset!r}")
            source = {"provider": "CPUExecutionProvider", "file_name": "onnx/model.onnx"}
            fp32 = self._st(folder, "onnx", source)
            export_dynamic_quantized_onnx_model(fp32, preset, str(folder))
            made = f"exported {file_name} with export_dynamic_quantized_onnx_model(model, {preset!r})"
        kwargs, threads = self._onnx_kwargs()
        model = self._st(folder, "onnx", {**kwargs, "file_name": file_name})
        summary = (
            f"preset {preset!r} = AutoQuantizationConfig.{preset}(is_static=False): "
            f"format={config.format.name}, mode={config.mode.name}, "
            f"weights={config.weights_dtype.name} per_channel={config.per_channel} "
            f"reduce_range={config.reduce_range}, activations={config.activations_dtype.name}, "
            f"operators={list(config.operators_to_quantize)}"
        )
        return model, f"dynamic int8 ONNX ({made}; fp32 source: {how}); {summary}; {threads}"

    def _prepare_st_openvino(self, calibration):
        folder, how = self._openvino_fp32()
        kwargs, threads = self._ov_kwargs()
        model = self._st(folder, "openvino", {**kwargs, "file_name": "openvino/openvino_model.xml"})
        return model, f"fp32 OpenVINO IR ({how}); {threads}; {self._ov_runtime(model)}"

    def _prepare_st_openvino_int8(self, calibration):
        if not calibration:
            raise ValueError(
                "st-openvino-int8 needs calibration texts (ST's default calibration set is on the hub)"
            )
        from optimum.intel import OVQuantizationConfig
        from sentence_transformers import export_static_quantized_openvino_model

        texts = [t for t in _read_texts(calibration) if t.strip()]
        digest = hashlib.sha1(json.dumps(texts).encode("utf-8")).hexdigest()[:10]
        folder, how = self._openvino_fp32()
        suffix = f"qint8_quantized_{digest}"
        file_name = f"openvino/openvino_model_{suffix}.xml"
        config = OVQuantizationConfig(num_samples=len(texts))
        if (folder / file_name).exists():
            made = f"reused {file_name}"
        else:
            # ST's exporter loads its calibration set with `datasets.load_dataset(dataset_name, name=...,
            # split=...)`; a local folder of data files is a dataset too, so the texts go there.
            data_dir = self.work_dir / "calibration" / digest
            data_dir.mkdir(parents=True, exist_ok=True)
            with open(data_dir / "train.jsonl", "w", encoding="utf-8") as f:
                for text in texts:
                    f.write(json.dumps({"sentence": text}) + "\n")
            _log(f"static int8 OpenVINO quantization calibrated on {len(texts)} texts")
            fp32 = self._st(folder, "openvino", {"file_name": "openvino/openvino_model.xml"})
            export_static_quantized_openvino_model(
                fp32,
                config,
                str(folder),
                dataset_name=str(data_dir),
                dataset_config_name="default",
                dataset_split="train",
                column_name="sentence",
                file_suffix=suffix,
            )
            made = (
                f"exported {file_name} with export_static_quantized_openvino_model(model, "
                f"OVQuantizationConfig(num_samples={len(texts)}), dataset_name=<local folder of "
                f"{len(texts)} calibration texts>) (calibration inputs padded to 384 tokens, as ST does)"
            )
        kwargs, threads = self._ov_kwargs()
        model = self._st(folder, "openvino", {**kwargs, "file_name": file_name})
        summary = f"quantization config {config.to_dict()}"
        runtime = self._ov_runtime(model)
        return model, f"static int8 OpenVINO ({made}; fp32 source: {how}); {summary}; {threads}; {runtime}"

    # -- requests -------------------------------------------------------------------------------------------

    def prepare(self, request: dict) -> dict:
        mode = request.get("mode")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        started = time.perf_counter()
        model, detail = getattr(self, "_prepare_" + mode.replace("-", "_"))(request.get("calibration"))
        self.models[mode] = model
        self.details[mode] = detail
        _log(f"prepared {mode} in {time.perf_counter() - started:.1f} s: {detail}")
        return {"ok": True, "mode": mode, "detail": detail}

    def encode(self, request: dict) -> dict:
        mode = request.get("mode")
        if mode not in self.models:
            raise ValueError(f"mode {mode!r} is not prepared")
        model = self.models[mode]
        texts = _read_texts(request["texts"])
        batch_size = int(request.get("batch_size", 32))
        started = time.perf_counter()
        embeddings = model.encode(texts, batch_size=batch_size, convert_to_numpy=True)
        seconds = time.perf_counter() - started
        out = Path(request["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, np.asarray(embeddings, dtype=np.float32))
        return {"seconds": seconds}

    @staticmethod
    def versions(request: dict) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        found = {}
        for dist in (
            "sentence-transformers",
            "transformers",
            "optimum",
            "optimum-onnx",
            "optimum-intel",
            "openvino",
            "onnxruntime",
            "nncf",
            "torch",
            "tokenizers",
            "datasets",
            "numpy",
        ):
            try:
                found[dist] = version(dist)
            except PackageNotFoundError:
                found[dist] = None
        found["python"] = sys.version.split()[0]
        return {"versions": found}


def _serve(args: argparse.Namespace) -> int:
    # The protocol owns the real stdout; anything else that writes to fd 1 (prints, C libraries) lands on
    # stderr instead.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    # Caches (datasets' calibration set, anything else of the hub's) stay under the work dir.
    os.environ["HF_HOME"] = str(work_dir / "hf-home")

    def answer(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")
        protocol.flush()

    try:
        worker = Worker(Path(args.model).resolve(), args.threads, work_dir)
    except Exception as exc:
        traceback.print_exc()
        answer({"error": f"worker start failed: {type(exc).__name__}: {exc}"})
        return 1

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            cmd = request.get("cmd")
            if cmd == "quit":
                answer({"ok": True})
                return 0
            if cmd not in ("prepare", "encode", "versions"):
                raise ValueError(f"unknown cmd {cmd!r}")
            answer(getattr(worker, cmd)(request))
        except Exception as exc:
            traceback.print_exc()
            answer({"error": f"{type(exc).__name__}: {exc}"})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="local sentence-transformers model folder")
    parser.add_argument("--threads", type=int, required=True, help="threads for torch / ORT / OpenVINO")
    parser.add_argument("--work-dir", required=True, help="where exports, caches and logs go")
    return _serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
