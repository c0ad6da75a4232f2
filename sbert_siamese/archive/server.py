"""The HTTP service over an archive: ``create_app(archive, Limits(...), api_key=...)`` -> a FastAPI app.

``sbert-siamese serve`` runs it with uvicorn. Every request is checked before anything reaches the model or
the database: size of the body, API key, JSON shape (pydantic models, which are also the OpenAPI schema at
``/docs``) and the limits (texts per request, characters per text, top_k). A rejected request gets a 4xx
``{"error": {"field": ..., "message": ...}}`` and writes nothing. Accepted work goes to the micro-batching
worker (``archive.batcher``); ``POST /questions`` answers only after its rows are committed.

No endpoint takes a path, so no request can make the server read or write a file of its choosing.
"""

from __future__ import annotations

import logging
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import ArchiveError, IdConflictError, UnknownIdError
from .batcher import Batcher
from .checks import MAX_ID, check_rows, check_texts
from .metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; all are ``serve`` options."""

    max_texts: int = 256  # texts (or pairs) per request
    max_text_chars: int = 2000  # characters per text (the model reads at most its max_seq_length tokens)
    max_top_k: int = 100
    max_body_bytes: int = 1 << 20
    max_batch: int = 64  # texts encoded together
    max_wait_ms: float = 2.0  # how long a lone request waits for company


class ApiError(Exception):
    def __init__(self, status: int, field: str, message: str):
        self.status, self.field, self.message = status, field, message


def error_response(status: int, field: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=status, headers=headers)


# ---------------------------------------------------------------------------------------- request models
class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


Texts = Annotated[list[str], Field(description="questions, in the order the results come back")]


class DuplicatesRequest(_Strict):
    texts: Texts
    top_k: int = Field(5, description="matches per text")


class QuestionsRequest(_Strict):
    texts: Texts
    ids: list[int] | None = Field(None, description="one per text; default: counted on from the largest id")
    metadata: list[dict | None] | None = Field(None, description="one JSON object (or null) per text")


class SimilarityRequest(_Strict):
    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        description="[text_a, text_b] pairs"
    )


class EncodeRequest(_Strict):
    texts: Texts
    side: Literal["a", "b"] = Field("a", description="tower of an untied model: a = queries, b = archived")
    normalize: bool = False


class Match(BaseModel):
    id: int
    text: str
    score: float
    duplicate: bool | None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    metadata: dict | None = None


class DuplicatesResult(BaseModel):
    text: str
    matches: list[Match]


class DuplicatesResponse(BaseModel):
    results: list[DuplicatesResult]


class QuestionsResponse(BaseModel):
    ids: list[int]


class Question(BaseModel):
    id: int
    text: str
    metadata: dict | None


class SimilarityResult(BaseModel):
    score: float
    duplicate: bool | None
    probability: float | None = None
    probabilities: dict[str, float] | None = None


class SimilarityResponse(BaseModel):
    results: list[SimilarityResult]


class EncodeResponse(BaseModel):
    dimension: int
    embeddings: list[list[float]]


# ---------------------------------------------------------------------------------------- checks
def _check_texts(texts: list[str], limits: Limits, name: str = "texts") -> None:
    """The request limits (413), then what every archive input must be (``checks``: 422)."""
    if len(texts) > limits.max_texts:
        raise ApiError(413, name, f"{len(texts)} texts; at most {limits.max_texts} per request")
    for i, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            raise ApiError(413, f"{name}[{i}]", f"{len(text)} characters; at most {limits.max_text_chars}")
    check_texts(texts, name)


def _check_id(question_id: int) -> None:
    if not 0 <= question_id <= MAX_ID:
        raise ApiError(422, "id", f"must be an integer in 0..{MAX_ID}, got {question_id}")


def _field(loc) -> str:
    renamed = {"question_id": "id"}
    parts = [renamed.get(p, p) for p in loc if p not in ("body", "path", "query")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


class _Guard:
    """Pure ASGI middleware: body size limit, API key, request metrics (cheaper than BaseHTTPMiddleware)."""

    # No key needed: liveness, the page and the API's documentation (they hold no data; the page and /docs
    # ask for the key: the OpenAPI schema declares the bearer scheme, so /docs has an "Authorize" button).
    OPEN = ("/health", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json")

    def __init__(self, app, limits: Limits, api_key: str | None, metrics: Metrics):
        self.app, self.limits, self.metrics = app, limits, metrics
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_tracked(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            rejected = self._reject(scope)
            if rejected is None and scope["method"] in ("POST", "PUT", "PATCH"):
                scope = self._as_json(scope)
                body = await self._read_body(receive)
                if body is None:
                    rejected = self._too_large()
                else:
                    receive = self._replay(body, receive)
            if rejected is not None:
                await rejected(scope, receive, send_tracked)
            else:
                await self.app(scope, receive, send_tracked)
        finally:
            self.metrics.observe(scope["method"], scope["path"], status["code"], time.perf_counter() - start)

    async def _read_body(self, receive) -> bytes | None:
        """The whole body (chunked or not), or None once it passes the limit (nothing more is read)."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return b""  # the client left; the app sees an empty body and the response goes nowhere
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limits.max_body_bytes:
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, receive):
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    def _as_json(scope):
        """Every POST body is JSON: a client that left out the content type (``curl -d``) or sent
        curl's default form type gets its body read as JSON, not as a form."""
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}

    def _too_large(self) -> JSONResponse:
        return error_response(413, "body", f"request body over {self.limits.max_body_bytes} bytes")

    def _reject(self, scope) -> JSONResponse | None:
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limits.max_body_bytes):
            return self._too_large()
        if self.api_key is not None and scope["path"] not in self.OPEN:
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(token.strip(), self.api_key):
                return error_response(
                    401,
                    "authorization",
                    "missing or wrong API key: send 'Authorization: Bearer <key>'",
                    {"WWW-Authenticate": "Bearer"},
                )
        return None


def _page() -> str:
    try:
        return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return "<!doctype html><title>sbert-siamese</title><p>The page is missing from this install.</p>"


def _declare_bearer(app: FastAPI) -> None:
    """Add the bearer-token scheme to the OpenAPI schema (every operation needs it), for /docs' Authorize."""
    build = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the server's API key"}
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _handle_errors(app: FastAPI) -> None:
    """Every error as ``{"error": {"field", "message"}}`` with its 4xx (or a logged 500)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return error_response(
                400, "body", f"not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}"
            )
        if first.get("type") in ("missing", "model_attributes_type", "dict_type") and tuple(
            first.get("loc", ())
        ) == ("body",):
            return error_response(400, "body", "expected a JSON object body")
        return error_response(422, _field(first.get("loc", ())), first.get("msg", "invalid value"))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.field, exc.message)

    @app.exception_handler(UnknownIdError)
    async def unknown(request: Request, exc: UnknownIdError):
        return error_response(404, "id", str(exc))

    @app.exception_handler(ArchiveError)
    async def archive_error(request: Request, exc: ArchiveError):
        status = 409 if isinstance(exc, IdConflictError) else 422
        return error_response(status, exc.field or "body", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        field = "path" if exc.status_code == 404 else "method" if exc.status_code == 405 else "request"
        return error_response(exc.status_code, field, str(exc.detail))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):  # a bug or a full disk: logged, not shown
        logger.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "server", f"internal error ({type(exc).__name__}); see the server's log")


def _search_routes(app: FastAPI, batcher: Batcher, limits: Limits) -> None:
    """Reading the model and the archive: duplicates of new texts, pair scores, embeddings."""

    @app.post("/duplicates", response_model=DuplicatesResponse, response_model_exclude_none=True)
    async def duplicates(body: DuplicatesRequest):
        """For each text, the closest archived questions with scores and the duplicate decision."""
        _check_texts(body.texts, limits)
        if not 1 <= body.top_k <= limits.max_top_k:
            raise ApiError(422, "top_k", f"must be between 1 and {limits.max_top_k}, got {body.top_k}")
        found = await batcher.submit("duplicates", body.model_dump(), len(body.texts))
        return {
            "results": [
                {"text": t, "matches": [m.to_dict() for m in matches]}
                for t, matches in zip(body.texts, found, strict=True)
            ]
        }

    @app.post("/similarity", response_model=SimilarityResponse, response_model_exclude_none=True)
    async def similarity(body: SimilarityRequest):
        """Scores and decisions for pairs of texts (text_a through tower a, text_b through tower b)."""
        if not body.pairs:
            raise ApiError(422, "pairs", "must hold at least one pair")
        if len(body.pairs) > limits.max_texts:
            raise ApiError(413, "pairs", f"{len(body.pairs)} pairs; at most {limits.max_texts} per request")
        for i, pair in enumerate(body.pairs):
            _check_texts(pair, limits, f"pairs[{i}]")
        payload = {"texts_a": [p[0] for p in body.pairs], "texts_b": [p[1] for p in body.pairs]}
        verdict = await batcher.submit("similarity", payload, 2 * len(body.pairs))
        results = []
        for n in range(len(body.pairs)):
            row = {"score": round(float(verdict.scores[n]), 6), "duplicate": verdict.duplicate[n]}
            if verdict.probability is not None:
                row["probability"] = float(verdict.probability[n])
            if verdict.probabilities:
                row["probabilities"] = verdict.probabilities[n]
            results.append(row)
        return {"results": results}

    @app.post("/encode", response_model=EncodeResponse)
    async def encode(body: EncodeRequest):
        """Embeddings of texts with the archive's model."""
        _check_texts(body.texts, limits)
        vectors = await batcher.submit("encode", body.model_dump(), len(body.texts))
        if body.normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return {"dimension": int(vectors.shape[1]), "embeddings": vectors.tolist()}


def _question_routes(app: FastAPI, batcher: Batcher, limits: Limits) -> None:
    """Adding, reading and removing archived questions."""

    @app.post("/questions", response_model=QuestionsResponse, status_code=201)
    async def add_questions(body: QuestionsRequest):
        """Add questions; answers once they are committed (they survive a crash from then on)."""
        _check_texts(body.texts, limits)
        check_rows(body.texts, body.ids, body.metadata)  # before the queue: a bad request writes nothing
        ids = await batcher.submit("add", body.model_dump(), len(body.texts))
        return {"ids": ids}

    @app.get("/questions/{question_id}", response_model=Question)
    async def get_question(question_id: int):
        _check_id(question_id)
        question = await batcher.submit("get", {"id": question_id})
        return question.to_dict()

    @app.delete("/questions/{question_id}")
    async def delete_question(question_id: int):
        _check_id(question_id)
        removed = await batcher.submit("remove", {"id": question_id})
        if not removed:
            raise UnknownIdError(question_id)
        return {"id": question_id, "deleted": True}


def create_app(archive, limits: Limits | None = None, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving ``archive``; the batching worker starts and stops with the app."""
    limits = limits or Limits()
    metrics = Metrics(archive)
    batcher = Batcher(archive, limits.max_batch, limits.max_wait_ms, on_batch=metrics.batch)
    page = _page()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        batcher.stop()

    app = FastAPI(
        title="sbert-siamese duplicate-question service",
        version=__version__,
        description="Is this new question a duplicate of an archived one? Search, add, remove, compare.",
        lifespan=lifespan,
        redirect_slashes=False,  # /duplicates/ is a 404 in our error shape, not a 307 without a body
    )
    if api_key:
        _declare_bearer(app)

    _handle_errors(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page():
        return HTMLResponse(page)

    @app.get("/health")
    async def health():
        return {"status": "ok", "questions": metrics.size()}

    @app.get("/metrics", response_class=Response, summary="Prometheus metrics (text format)")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    _search_routes(app, batcher, limits)
    _question_routes(app, batcher, limits)

    app.state.archive = archive
    app.state.limits = limits
    app.add_middleware(_Guard, limits=limits, api_key=api_key, metrics=metrics)
    return app
