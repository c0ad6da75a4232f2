"""``sbert-siamese serve``: the duplicate-question HTTP service over an archive (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging
import os

from ..errors import ConfigError
from .options import add_allow_pickle

log = logging.getLogger("sbert_siamese.cli")

EPILOG = """Endpoints (OpenAPI at /docs): POST /duplicates, POST /questions, GET|DELETE /questions/{id},
POST /similarity, POST /encode, GET /health, GET /metrics (Prometheus), and a page at /.

One process serves one archive: requests that arrive together are encoded together (micro-batching), and
adds are committed (fsync) before they are answered. Binds 127.0.0.1 unless --host says otherwise; put a
TLS-terminating proxy in front of it before exposing it.

  sbert-siamese serve --archive qa --port 8000 --api-key-env QA_KEY
  curl -s localhost:8000/duplicates -H 'Authorization: Bearer ...' -d '{"texts": ["How to learn Python?"]}'
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..archive.server import Limits
    from ..backends import CHOICES

    defaults = Limits()
    p = subparsers.add_parser(
        "serve", help="HTTP service: is this new question a duplicate? (FastAPI)", description=EPILOG
    )
    p.add_argument("--archive", required=True, help="the archive folder (sbert-siamese archive create)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require 'Authorization: Bearer <key>' on every endpoint but /health, the page and the docs, "
        "the key read from this environment variable",
    )
    p.add_argument(
        "--model", help="load the model from here instead of the path in archive.json (same weights)"
    )
    p.add_argument("--backend", choices=CHOICES, help="encode backend; default: the archive's")
    p.add_argument("--max-texts", type=int, default=defaults.max_texts, help="texts (or pairs) per request")
    p.add_argument("--max-text-chars", type=int, default=defaults.max_text_chars, help="characters per text")
    p.add_argument("--max-top-k", type=int, default=defaults.max_top_k)
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes, help="request body size")
    p.add_argument("--max-batch", type=int, default=defaults.max_batch, help="texts encoded together")
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=defaults.max_wait_ms,
        help="how long a request waits for others to batch with",
    )
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice, the cores)")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (info logs every request)",
    )
    add_allow_pickle(p)
    return p


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from ..archive import Archive
    from ..archive.server import Limits, create_app
    from ..models.siamese import SiameseModel

    for name in ("max_texts", "max_text_chars", "max_top_k", "max_body_bytes", "max_batch"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.batch_wait_ms < 0:
        raise ConfigError(f"--batch-wait-ms must be >= 0, got {args.batch_wait_ms}")
    if not 0 <= args.port < 65536:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set or empty"
            )
    if args.threads:
        torch.set_num_threads(args.threads)
    model = SiameseModel.load(args.model, allow_pickle=args.allow_pickle) if args.model else None
    archive = Archive.open(args.archive, model=model, backend=args.backend)
    limits = Limits(
        args.max_texts,
        args.max_text_chars,
        args.max_top_k,
        args.max_body_bytes,
        args.max_batch,
        args.batch_wait_ms,
    )
    app = create_app(archive, limits, api_key)
    info = archive.info()
    log.info(
        "serving %s (%d questions, index %s, backend %s) on http://%s:%d%s",
        args.archive,
        info["questions"],
        info["index"]["built"],
        archive.backend,
        args.host,
        args.port,
        " (API key required)" if api_key else "",
    )
    if archive.threshold is None:
        log.warning(
            "the archive has no threshold: duplicate decisions are null (calibrate the model, or "
            "create the archive with --threshold)"
        )
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            timeout_keep_alive=30,
        )
    finally:
        archive.close()
    return 0
