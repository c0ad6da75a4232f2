"""``sbert-siamese export``: write a model's ONNX and OpenVINO files (fp32, int8) for the fast ``--backend``s,
measure every backend on this machine and record the one ``--backend auto`` will use."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import ConfigError
from .options import add_allow_pickle, add_model, add_on_bad_rows, add_pair_columns, bad_rows, load_model

log = logging.getLogger("sbert_siamese.cli")

FORMATS = ("onnx", "openvino")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="write ONNX / OpenVINO files (fp32, int8) into a model directory for the fast --backends, and "
        "measure which one --backend auto uses",
    )
    add_model(p, help="model directory (or name, with --output)")
    p.add_argument("--format", nargs="+", default=list(FORMATS), choices=FORMATS, help="what to export")
    p.add_argument("--no-int8", action="store_true", help="only the fp32 files, no int8 quantised ones")
    p.add_argument(
        "--calibration-texts",
        metavar="FILE",
        help="texts like the ones you will encode, one per line (300 of them are used, spread over the "
        "file): the activation ranges of openvino-int8 and the speed and label-free quality measured for "
        "--backend auto. Default: the bundled sample of 760 short sentences",
    )
    p.add_argument(
        "--dev-data",
        metavar="FILE",
        help="labelled pairs to measure each backend's quality loss on (STS Spearman or 0/1 AP); "
        "without it, the loss is 1 - Spearman between fp32 and the backend's similarities of "
        "calibration-text pairs",
    )
    p.add_argument(
        "--dev-format", help="format of --dev-data: stsb, csv, tsv, tsv_quoted, jsonl, parquet (default: "
        "from the extension)",
    )  # fmt: skip
    add_pair_columns(p)
    p.add_argument("--label-column", default="label", help="--dev-data: the score or 0/1 label column")
    p.add_argument(
        "--dev-target",
        choices=("binary", "score"),
        help="--dev-data: what the label is (default: score for --dev-format stsb, else binary)",
    )
    p.add_argument(
        "--quality-budget",
        type=float,
        default=0.005,
        help="--backend auto takes the fastest backend whose quality loss is at most this",
    )
    p.add_argument("--no-measure", action="store_true", help="export only; do not measure the backends")
    p.add_argument(
        "--output",
        help="save the model with its export here (default: into --model, which must be a directory)",
    )
    add_on_bad_rows(p)
    add_allow_pickle(p)
    return p


def _dev_pairs(args: argparse.Namespace):
    if not args.dev_data:
        return None
    from ..data.examples import read_examples

    examples, _ = read_examples(
        args.dev_data,
        args.dev_format,
        [args.text_a_column, args.text_b_column],
        args.dev_target or ("score" if args.dev_format == "stsb" else "binary"),
        args.label_column,
        bad_rows=bad_rows(args),
    )
    if len(examples) < 2:
        raise ConfigError(f"--dev-data {args.dev_data}: expected at least 2 labelled pairs")
    return [e.texts[0] for e in examples], [e.texts[1] for e in examples], [e.target for e in examples]


def run(args: argparse.Namespace) -> int:
    from ..backends import BACKENDS
    from ..backends.choice import CHOICE_FILE, _exported, measure_backends, write_choice
    from ..backends.onnx import export_onnx, weights_fingerprint
    from ..backends.openvino import CALIBRATION_SAMPLE, export_openvino, read_calibration_texts

    if args.quality_budget < 0:
        raise ConfigError(f"--quality-budget must be >= 0, got {args.quality_budget}")
    calibration = read_calibration_texts(args.calibration_texts)
    source = args.calibration_texts or f"bundled sample ({CALIBRATION_SAMPLE.name})"
    pairs = _dev_pairs(args)
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
    encoder = model.tower("a")
    report: dict = {"model": str(folder), "files": {}}
    if "onnx" in args.format:
        log.info("exporting ONNX%s", "" if args.no_int8 else " (fp32 and dynamic int8)")
        info = export_onnx(encoder, folder, int8=not args.no_int8)
        report["files"].update({b: str(folder / "onnx" / name) for b, name in info["files"].items()})
    if "openvino" in args.format:
        log.info(
            "exporting OpenVINO%s", "" if args.no_int8 else f" (fp32 and static int8 calibrated on {source})"
        )
        info = export_openvino(
            encoder, folder, int8=not args.no_int8, calibration_texts=calibration, calibration_source=source
        )
        report["files"].update({b: str(folder / "openvino" / name) for b, name in info["files"].items()})
    report["weights"] = weights_fingerprint(encoder)
    encoder.source_path = folder  # measure the files just written
    if args.no_measure:
        # an earlier choice may name a file this export replaced: auto uses its fallback until measured
        (folder / CHOICE_FILE).unlink(missing_ok=True)
    else:
        # every backend with an export of these weights: the ones just written and any kept from before
        backends = tuple(b for b in BACKENDS if _exported(folder, b, report["weights"]))
        log.info("measuring %s on %d calibration texts", ", ".join(backends), len(calibration))
        measured = measure_backends(encoder, calibration, pairs, backends)
        record = write_choice(folder, report["weights"], measured, args.quality_budget)
        report["auto"] = record["choice"]
        report["measured"] = record["backends"]
    print(json.dumps(report, indent=2))
    return 0
