"""SiameseEncoder: one transformer + pooling [+ dense] [+ normalize], shared by both sides of a pair.

Weight sharing is by construction: there is a single transformer module, and both sides of a pair go
through it (in one forward pass during training: ``SiameseModel.forward`` flattens (B, k, T) to (B*k, T)).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..backends import runner_for
from ..backends.choice import resolve as resolve_backend
from ..errors import ConfigError
from .dense import Dense
from .pooling import Pooling
from .st_format import load_encoder, save_encoder

logger = logging.getLogger(__name__)

OUTPUT_TYPES = ("numpy", "torch")
PRECISIONS = ("fp32", "bf16", "fp16")


class SiameseEncoder(nn.Module):
    """A sentence encoder f with shared weights: u = f(a), v = f(b).

    Args:
        transformer: any ``transformers`` encoder whose output has ``last_hidden_state`` (B, T, H).
        tokenizer: the matching (fast) tokenizer.
        pooling: a ``Pooling`` module or a mode name (``mean``, ``cls``, ``max``).
        dense: optional ``Dense`` projection applied after pooling.
        normalize: L2-normalise the final embedding.
        max_seq_length: inputs are truncated to this many tokens (counted, see ``encode``); defaults to the
            smaller of the tokenizer's and the model's limits.
        do_lower_case: lower-case texts before tokenizing (sentence-transformers' flag of the same name).

    Example:
        >>> enc = SiameseEncoder.from_pretrained("all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> enc.encode(["A man is eating.", "Someone eats."]).shape  # doctest: +SKIP
        (2, 384)
    """

    def __init__(
        self,
        transformer: nn.Module,
        tokenizer,
        pooling: Pooling | str = "mean",
        dense: Dense | None = None,
        normalize: bool = False,
        max_seq_length: int | None = None,
        do_lower_case: bool = False,
    ):
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        # BERT's own pooler (the NSP head) never feeds a sentence embedding. Freezing it keeps it in the
        # checkpoint, unchanged, and stops distributed training from waiting for gradients it never gets.
        for name, param in transformer.named_parameters():
            if name.startswith("pooler."):
                param.requires_grad_(False)
        hidden = transformer.config.hidden_size
        self.pooling = pooling if isinstance(pooling, Pooling) else Pooling(hidden, pooling)
        if self.pooling.dimension != hidden:
            raise ConfigError(
                f"pooling dimension {self.pooling.dimension} != transformer hidden size {hidden}"
            )
        if dense is not None and dense.in_features != hidden:
            raise ConfigError(f"dense in_features {dense.in_features} != transformer hidden size {hidden}")
        self.dense = dense
        self.normalize = bool(normalize)
        self.max_seq_length = self._check_max_len(max_seq_length)
        self.do_lower_case = bool(do_lower_case)
        self.last_truncated: list[int] = []
        self.source_path: Path | None = None  # the directory it was loaded from (its onnx/ export is reused)
        self._runners: dict[str, tuple[tuple, object]] = {}  # backend -> (weights version, runner)

    # ---------------------------------------------------------------- construction / persistence
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_seq_length: int | None = None,
        allow_pickle: bool = False,
    ) -> SiameseEncoder:
        """Load a sentence-transformers model directory, or wrap a plain transformer (mean pooling).

        ``name_or_path`` is a local directory, a known offline name such as ``all-MiniLM-L6-v2``, or a
        hub id (used when online). Options given here override what the directory says.

        Only safetensors weights are loaded: a directory with only pickle weights (``pytorch_model.bin``,
        ``*.pt``) raises ``ModelFormatError`` unless ``allow_pickle=True`` (loading a pickle file can run
        code hidden in it; they are read with ``torch.load(weights_only=True)`` and a warning). Custom model
        code (``trust_remote_code``) is never run.
        """
        return load_encoder(
            name_or_path,
            pooling=pooling,
            normalize=normalize,
            max_seq_length=max_seq_length,
            allow_pickle=allow_pickle,
            encoder_class=cls,
        )

    def save(self, path: str | Path) -> Path:
        """Write the model in the sentence-transformers layout (safetensors only); returns the path.

        The folder is built beside ``path`` under a hidden temporary name and renamed into place when
        complete, so a failed save (disk full: ``OutputError``) leaves an earlier model at ``path`` intact.
        An existing model directory at ``path`` is replaced as a whole; a non-empty folder holding no model
        is refused."""
        return save_encoder(self, path)

    def _check_max_len(self, value: int | None) -> int:
        limits = [getattr(self.transformer.config, "max_position_embeddings", None)]
        model_max = getattr(self.tokenizer, "model_max_length", None)
        if model_max is not None and model_max < 1_000_000:
            limits.append(model_max)
        limits = [x for x in limits if x]
        cap = min(limits) if limits else 512
        if value is None:
            return cap
        if not 2 <= int(value) <= (limits[0] if limits and limits[0] else cap):
            raise ConfigError(f"max_seq_length must be in [2, {limits[0] if limits else cap}], got {value}")
        return int(value)

    # ---------------------------------------------------------------- properties
    @property
    def embedding_dim(self) -> int:
        return self.dense.out_features if self.dense is not None else self.pooling.dimension

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---------------------------------------------------------------- tokenization
    def prepare_text(self, text) -> str:
        text = str(text).strip()
        return text.lower() if self.do_lower_case else text

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize, truncate to ``max_seq_length`` and pad to the longest text. Returns (B, T) tensors."""
        features = self.tokenizer(
            [self.prepare_text(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="pt",
        )
        return {k: v for k, v in features.items() if k in self.tokenizer.model_input_names}

    def count_truncated(self, texts: Sequence[str]) -> list[int]:
        """Indices of texts longer than ``max_seq_length`` tokens (special tokens included).

        Only texts whose UTF-8 length could exceed the limit are tokenized again: a token covers at
        least one byte, so a shorter text cannot be truncated.
        """
        n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
        limit = self.max_seq_length
        candidates = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) + n_special > limit]
        if not candidates:
            return []
        ids = self.tokenizer([texts[i] for i in candidates], truncation=False, verbose=False)["input_ids"]
        return [i for i, seq in zip(candidates, ids, strict=True) if len(seq) > limit]

    # ---------------------------------------------------------------- forward
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, D) sentence embeddings."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in extra and extra["token_type_ids"] is not None:
            inputs["token_type_ids"] = extra["token_type_ids"]
        tokens = self.transformer(**inputs, return_dict=True).last_hidden_state  # (B, T, H)
        return self.embed_tokens(tokens, attention_mask)

    def forward_pairs(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Both sides of a batch of pairs in one pass through the shared encoder.

        ``features`` holds (B, 2, T) tensors (side 0 = a, side 1 = b); returns u, v of shape (B, D).
        """
        batch, sides, length = features["input_ids"].shape
        flat = {k: v.reshape(batch * sides, length) for k, v in features.items()}  # (2B, T)
        embeddings = self(**flat).reshape(batch, sides, -1)  # (B, 2, D)
        return embeddings[:, 0], embeddings[:, 1]

    # ---------------------------------------------------------------- inference
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool = False,
        convert_to: str = "numpy",
        normalize: bool = False,
        backend: str = "torch",
        precision: str = "fp32",
    ) -> np.ndarray | torch.Tensor:
        """Embed texts; returns (N, D) float32 in input order ((D,) for a single string).

        Texts are tokenized once, sorted by token length so that each batch pads little, and put back in
        input order. Inputs longer than ``max_seq_length`` are truncated and counted: their indices are in
        ``self.last_truncated`` and a warning is logged.

        Args:
            batch_size: texts per forward pass.
            show_progress_bar: a tqdm bar over texts.
            convert_to: ``"numpy"`` or ``"torch"`` (a CPU tensor).
            normalize: L2-normalise the output (on top of the model's own ``normalize`` setting).
            backend: ``torch`` (the model itself); ``onnx`` / ``openvino`` (fp32, equal within 1e-5);
                ``openvino-bf16`` (near-exact, CPUs with bf16 products); ``onnx-int8`` / ``openvino-int8``
                (int8, the fastest on CPU); ``auto`` (the fastest within the quality budget that
                ``sbert-siamese export`` measured for this model, else ``onnx``). Files come from the
                model directory's ``onnx/`` / ``openvino/`` exports when made from these weights, else they
                are exported once for this session. Pooling, dense and normalisation run in torch on every
                backend.
            precision: torch backend only: ``fp32``, or ``bf16`` / ``fp16`` autocast (for GPUs; fp16 needs
                CUDA, bf16 runs on CPU too but is slower there than fp32).
        """
        if convert_to not in OUTPUT_TYPES:
            raise ConfigError(f"convert_to must be one of {', '.join(OUTPUT_TYPES)}, got {convert_to!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        embed_batches = self._batch_embedder(resolve_backend(self, backend), precision)
        single = isinstance(texts, str)
        prepared = [self.prepare_text(t) for t in ([texts] if single else texts)]
        n = len(prepared)
        self.last_truncated = self.count_truncated(prepared) if n else []
        if self.last_truncated:
            logger.warning(
                "%d of %d inputs were longer than max_seq_length=%d tokens and were truncated",
                len(self.last_truncated),
                n,
                self.max_seq_length,
            )
        out = torch.empty(n, self.embedding_dim, dtype=torch.float32)
        if n:
            encoded = self.tokenizer(
                prepared, truncation=True, max_length=self.max_seq_length, padding=False, verbose=False
            )
            keys = [k for k in self.tokenizer.model_input_names if k in encoded]
            lengths = np.array([len(ids) for ids in encoded["input_ids"]])
            order = np.argsort(-lengths, kind="stable")  # longest first: the peak memory shows at once
            was_training = self.training
            if was_training:  # train() walks every submodule: ~1.5 ms a call, felt by one-text requests
                self.eval()
            device = self.device
            with (
                torch.inference_mode(),
                tqdm(total=n, disable=not show_progress_bar, desc="Encoding", unit="text") as bar,
            ):
                batches = (
                    (idx, self._pad([{k: encoded[k][i] for k in keys} for i in idx], device))
                    for idx in (order[start : start + batch_size] for start in range(0, n, batch_size))
                )
                for idx, embeddings in embed_batches(batches):
                    out[torch.from_numpy(idx)] = embeddings.float().cpu()
                    bar.update(len(idx))
            if was_training:
                self.train()
        if normalize:
            out = F.normalize(out, p=2, dim=-1)
        result = out[0] if single else out
        return result.numpy() if convert_to == "numpy" else result

    def _batch_embedder(self, backend: str, precision: str):
        """A function from an iterator of (idx, (B, T) features) to an iterator of (idx, (B, D) embeddings)
        for ``encode``: the model, or an exported runner for the transformer followed by this encoder's
        pooling / dense / normalisation. A runner may keep several batches in flight (OpenVINO does, so
        that padding and pooling overlap its inference); each result carries its own idx."""
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if backend == "torch":
            if precision == "fp32":
                return lambda batches: ((idx, self(**batch)) for idx, batch in batches)
            device = self.device.type
            if precision == "fp16" and device != "cuda":
                raise ConfigError("precision fp16 needs a CUDA GPU; use fp32 (or bf16) on CPU")
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16

            def autocast(batches):
                for idx, batch in batches:
                    with torch.autocast(device_type=device, dtype=dtype):
                        embeddings = self(**batch)
                    yield idx, embeddings  # the caller's code between batches runs without autocast

            return autocast
        if precision != "fp32":
            raise ConfigError(f"precision {precision} is for the torch backend; {backend} sets its own")
        runner = self.runner(backend)

        def exported(batches):
            for (idx, batch), hidden in runner.stream(batches):
                yield idx, self.embed_tokens(hidden.to(self.device), batch["attention_mask"])

        return exported

    def runner(self, backend: str):
        """The ONNX Runtime / OpenVINO runner of ``backend`` for the current weights (made again after they
        change)."""
        version = tuple((id(p), p._version) for p in self.transformer.parameters())
        cached = self._runners.get(backend)
        if cached is None or cached[0] != version:
            self._runners[backend] = (version, runner_for(self, backend))
        return self._runners[backend][1]

    def embed_tokens(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) token states -> (B, D) embeddings: pooling, then dense and normalisation if set."""
        embeddings = self.pooling(tokens, attention_mask)  # (B, H)
        if self.dense is not None:
            embeddings = self.dense(embeddings)  # (B, D)
        if self.normalize:
            embeddings = F.normalize(embeddings, p=2, dim=-1)
        return embeddings

    def _pad(self, rows: list[dict[str, list[int]]], device: torch.device) -> dict[str, torch.Tensor]:
        """Right-pad token lists to the longest row. Returns (B, T) tensors on ``device``."""
        length = max(len(r["input_ids"]) for r in rows)
        pad_values = {
            "input_ids": self.tokenizer.pad_token_id or 0,
            "attention_mask": 0,
            "token_type_ids": getattr(self.tokenizer, "pad_token_type_id", 0),
        }
        batch = {}
        for key in rows[0]:
            tensor = torch.full((len(rows), length), pad_values.get(key, 0), dtype=torch.long)
            for i, row in enumerate(rows):
                tensor[i, : len(row[key])] = torch.tensor(row[key], dtype=torch.long)
            batch[key] = tensor.to(device)
        return batch
