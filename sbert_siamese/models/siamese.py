"""SiameseModel: what training optimises and saves: the shared encoder, an optional second (untied) tower,
and an optional comparison head.

Directory layout on top of the encoder's sentence-transformers layout (which ``SentenceTransformer(path)``
still loads: it is tower a)::

    head/config.json, head/model.safetensors   the softmax / weighted-L1 head, with label names
    tower_b/                                   the second tower of an untied (pseudo-Siamese) model
    threshold.json                             a calibrated decision threshold (``sbert-siamese calibrate``)
    sbert_siamese.json                         {"towers": "tied" | "untied", ...}
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from .._version import __version__
from ..errors import ConfigError, ModelFormatError, OutputError
from ..io.safe_io import inside
from .encoder import SiameseEncoder
from .heads import SoftmaxHead, WeightedL1Head
from .resolve import resolve_model_path
from .scoring import pair_scores
from .st_format import load_weights, staged_model_dir, write_encoder
from .threshold import Threshold, load_threshold, save_threshold

SIDES = ("a", "b")


class SiameseModel(nn.Module):
    """Encoder(s) + optional head. With ``tower_b`` None (the default) both sides share every weight.

    Column 0 of every example goes through tower a; the other columns (the b side of a pair, the positive
    and negative of a triplet) through tower b, which is tower a itself when the towers are tied.
    """

    def __init__(
        self,
        encoder: SiameseEncoder,
        head: nn.Module | None = None,
        tower_b: SiameseEncoder | None = None,
        label_names: Sequence[str] | None = None,
        threshold: Threshold | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.threshold = threshold  # calibrated "same" rule used by verify / predict / dedup
        self.tower_b = tower_b
        self.head = head
        self.label_names = list(label_names) if label_names else None
        if tower_b is not None and tower_b.embedding_dim != encoder.embedding_dim:
            raise ConfigError(
                "untied towers must embed into the same dimension: "
                f"{encoder.embedding_dim} vs {tower_b.embedding_dim}"
            )

    @property
    def untied(self) -> bool:
        return self.tower_b is not None

    def tower(self, side: str) -> SiameseEncoder:
        if side not in SIDES:
            raise ConfigError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
        return self.tower_b if side == "b" and self.tower_b is not None else self.encoder

    # ------------------------------------------------------------------------------------ training
    def forward(self, **features: torch.Tensor) -> torch.Tensor:
        """(B, k, T) features of k texts per example -> (B, k, D) embeddings."""
        batch, k, length = features["input_ids"].shape
        if self.tower_b is None or k == 1:
            flat = {name: t.reshape(batch * k, length) for name, t in features.items()}  # (B*k, T)
            return self.encoder(**flat).reshape(batch, k, -1)
        first = self.encoder(**{name: t[:, 0] for name, t in features.items()})  # (B, D)
        rest = {name: t[:, 1:].reshape(batch * (k - 1), length) for name, t in features.items()}
        others = self.tower_b(**rest).reshape(batch, k - 1, -1)  # (B, k-1, D)
        return torch.cat([first[:, None], others], dim=1)

    # ------------------------------------------------------------------------------------ inference
    def encode(self, texts, side: str = "a", **kwargs):
        """``SiameseEncoder.encode`` with the tower of ``side`` (``a``: queries / first texts)."""
        return self.tower(side).encode(texts, **kwargs)

    @torch.inference_mode()
    def head_probabilities(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(N, C) class probabilities of the head for embeddings u, v (N, D) already computed; for the
        verification head C = 2 (different, same). Evaluators use it to avoid encoding twice."""
        if self.head is None:
            raise ConfigError("this model has no classification head")
        was_training = self.head.training
        self.head.eval()
        device = next(self.head.parameters()).device
        logits = self.head(torch.as_tensor(u).to(device), torch.as_tensor(v).to(device)).float().cpu()
        self.head.train(was_training)
        if isinstance(self.head, WeightedL1Head):
            same = torch.sigmoid(logits)
            return torch.stack([1 - same, same], dim=1)
        return torch.softmax(logits, dim=-1)

    @torch.inference_mode()
    def predict(self, texts_a: Sequence[str], texts_b: Sequence[str], batch_size: int = 32) -> dict:
        """Labels and probabilities from the trained head for pairs (texts_a[i], texts_b[i]).

        Returns ``{"labels": [...], "probabilities": (N, C) array, "label_names": [...]}``; for the
        weighted-L1 verification head C = 2 (columns: different, same).
        """
        if self.head is None:
            raise ConfigError(
                "this model has no classification head (trained with a softmax or verification loss); "
                "use verify() with a calibrated threshold, or compare embeddings (encode + cosine)"
            )
        if len(texts_a) != len(texts_b):
            raise ConfigError(f"texts_a and texts_b differ in length: {len(texts_a)} vs {len(texts_b)}")
        u = self.encode(list(texts_a), side="a", batch_size=batch_size, convert_to="torch")
        v = self.encode(list(texts_b), side="b", batch_size=batch_size, convert_to="torch")
        probabilities = self.head_probabilities(u, v)
        index = probabilities.argmax(dim=1).numpy()
        if self.threshold is not None and self.threshold.score == "head" and probabilities.shape[1] == 2:
            index = self.threshold.decide(probabilities[:, 1].numpy()).astype(np.int64)  # calibrated
        names = self.label_names or [str(i) for i in range(probabilities.shape[1])]
        return {
            "labels": [names[i] for i in index],
            "label_ids": index,
            "probabilities": probabilities.numpy().astype(np.float32),
            "label_names": names,
        }

    def verify(
        self,
        texts_a: str | Sequence[str],
        texts_b: str | Sequence[str],
        threshold: float | Threshold | None = None,
        batch_size: int = 32,
    ) -> dict:
        """Same / different decisions for pairs under the calibrated threshold (``self.threshold``, set by
        ``sbert-siamese calibrate``) or an explicit one (a float on the calibrated score, default cosine).

        Returns ``{"same": (N,) bool, "scores": (N,) float, "threshold": t, "score": name}``; a single
        pair may be passed as two strings.

        Example:
            >>> model.verify("How do I learn Python?", "Best way to learn Python?")["same"]  # doctest: +SKIP
            array([ True])
        """
        if isinstance(texts_a, str) != isinstance(texts_b, str):
            raise ConfigError("give two strings or two lists of strings")
        if isinstance(texts_a, str):
            texts_a, texts_b = [texts_a], [texts_b]
        rule = threshold if isinstance(threshold, Threshold) else self.threshold
        if threshold is not None and not isinstance(threshold, Threshold):
            rule = Threshold(score=rule.score if rule else "cosine", threshold=float(threshold))
        if rule is None:
            raise ConfigError(
                "no calibrated threshold: run `sbert-siamese calibrate --model DIR --pairs FILE` "
                "(or pass threshold=...)"
            )
        scores = pair_scores(self, texts_a, texts_b, rule.score, batch_size)
        return {
            "same": rule.decide(scores),
            "scores": scores,
            "threshold": rule.threshold,
            "score": rule.score,
        }

    # ------------------------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the model directory (tower a in the sentence-transformers layout, plus head, tower b and
        threshold); returns the path.

        The whole directory is built under a hidden temporary name beside ``path`` and renamed into place when
        complete: a failed save (disk full, no permission: ``OutputError`` naming ``path``) leaves an earlier
        model at ``path`` untouched and no half-written folder. An existing model directory at ``path`` is
        replaced as a whole (nothing of an earlier model, head or tower b, survives next to the new one); a
        non-empty folder that holds no model is refused rather than wiped; an empty folder is fine."""
        with staged_model_dir(path) as stage:
            self._write_into(stage)
        return Path(path)

    def _write_into(self, path: Path) -> None:
        """Write every file of the model into the folder ``path`` (no staging: see ``save``)."""
        write_encoder(self.encoder, path)
        meta = {"library": "sbert-siamese", "towers": "untied" if self.untied else "tied"}
        # A directory that held a head or tower b before must not keep them: load() would mix two models.
        # (save() writes into a fresh folder, so this matters only to direct callers.)
        for stale, present in (("tower_b", self.tower_b is not None), ("head", self.head is not None)):
            if not present and (path / stale).is_dir():
                shutil.rmtree(path / stale)
        if self.tower_b is not None:
            write_encoder(self.tower_b, path / "tower_b")
        if self.head is not None:
            head_dir = path / "head"
            head_dir.mkdir(parents=True, exist_ok=True)
            config = {**self.head.config(), "label_names": self.label_names}
            (head_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(state, head_dir / "model.safetensors")
            meta["head"] = config["type"]
        meta["version"] = __version__
        save_threshold(path, self.threshold)  # also removes a stale threshold.json of an earlier model
        (path / "sbert_siamese.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, name_or_path: str | Path, allow_pickle: bool = False) -> SiameseModel:
        """Load a model directory: encoder, and the head and tower b when present.

        Safetensors only, unless ``allow_pickle=True`` (see ``SiameseEncoder.from_pretrained``)."""
        root = resolve_model_path(name_or_path, allow_pickle=allow_pickle)
        encoder = SiameseEncoder.from_pretrained(root, allow_pickle=allow_pickle)
        tower_dir, head_dir = _part(root, "tower_b"), _part(root, "head")
        tower_b = SiameseEncoder.from_pretrained(tower_dir, allow_pickle=allow_pickle) if tower_dir else None
        head, label_names = None, None
        if head_dir is not None:
            head, label_names = _load_head(head_dir, allow_pickle)
        threshold = load_threshold(root)
        return cls(encoder, head=head, tower_b=tower_b, label_names=label_names, threshold=threshold)


def _part(root: Path, name: str) -> Path | None:
    """``root / name`` when it is a folder inside ``root`` (a symlink leading out is refused), else None."""
    if not (root / name).is_dir():
        return None
    try:
        return inside(root, name, "model part")
    except OutputError as exc:
        raise ModelFormatError(f"{root / name}: {exc}") from None


def _load_head(folder: Path, allow_pickle: bool = False) -> tuple[nn.Module, list[str] | None]:
    config_file = folder / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{config_file}: cannot read head config ({exc})") from None
    if not isinstance(config, dict):
        raise ModelFormatError(f"{config_file}: expected a JSON object, found {type(config).__name__}")
    kind = config.get("type")
    try:
        if kind == "softmax":
            head = SoftmaxHead(config["dimension"], config["num_labels"], config.get("use_product", False))
        elif kind == "weighted_l1":
            head = WeightedL1Head(config["dimension"])
        else:
            raise ModelFormatError(
                f"{config_file}: unknown head type {kind!r}; expected softmax or weighted_l1"
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{config_file}: invalid head config ({type(exc).__name__}: {exc})") from None
    state = load_weights(folder, allow_pickle)
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFormatError(f"{folder}: weights do not match {config_file}: {str(exc)[:300]}") from None
    return head, config.get("label_names")
