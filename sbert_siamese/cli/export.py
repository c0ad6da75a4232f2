"""``sbert-siamese export``: write a model's ONNX files (fp32 and int8) for ``--backend onnx`` /
``onnx-int8``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .options import add_allow_pickle, add_model, load_model


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="write ONNX files (fp32 and int8) into a model directory, for --backend onnx / onnx-int8",
    )
    add_model(p, help="model directory (or name, with --output)")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format")
    p.add_argument("--no-int8", action="store_true", help="only the fp32 file, no int8 quantised one")
    p.add_argument(
        "--output",
        help="save the model with its export here (default: into --model, which must be a directory)",
    )
    add_allow_pickle(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..backends.onnx import export_onnx

    model = load_model(args)
    if model.untied:
        raise ConfigError(
            f"{args.model}: untied towers are exported one at a time; export each tower's folder"
        )
    if args.output:
        folder = model.save(args.output)
    else:
        folder = Path(args.model)
        if not folder.is_dir():
            raise ConfigError(
                f"--model {args.model} is not a directory; give --output DIR to save it with the export"
            )
    info = export_onnx(model.tower("a"), folder, int8=not args.no_int8)
    files = {backend: str(folder / "onnx" / name) for backend, name in info["files"].items()}
    print(json.dumps({"model": str(folder), "files": files, "weights": info["weights"]}, indent=2))
    return 0
