"""Pooling: token embeddings (B, T, H) + attention mask (B, T) -> one sentence embedding (B, H).

Modes are named strings checked at construction. No mode edits its input in place.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

POOLING_MODES = ("mean", "cls", "max")


def check_pooling_mode(mode: str) -> str:
    if mode not in POOLING_MODES:
        raise ConfigError(f"unknown pooling mode {mode!r}; valid modes: {', '.join(POOLING_MODES)}")
    return mode


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the non-padding token vectors. (B, T, H), (B, T) -> (B, H)."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, T, 1)
    summed = (token_embeddings * mask).sum(dim=1)  # (B, H)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1); an all-padding row gives zeros, not NaN
    return summed / counts


def cls_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The first token's vector ([CLS] for BERT). (B, T, H) -> (B, H)."""
    return token_embeddings[:, 0]


def max_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over non-padding tokens. (B, T, H), (B, T) -> (B, H)."""
    padding = (attention_mask == 0).unsqueeze(-1)  # (B, T, 1)
    # masked_fill returns a new tensor: the caller's token embeddings are left untouched.
    # finfo.min rather than -1e9, which overflows float16.
    fill = torch.finfo(token_embeddings.dtype).min
    return token_embeddings.masked_fill(padding, fill).max(dim=1).values


_POOLERS = {"mean": mean_pool, "cls": cls_pool, "max": max_pool}


class Pooling(nn.Module):
    """Turns token embeddings into one vector per sentence.

    Example:
        >>> pool = Pooling(384, mode="mean")
        >>> pool(torch.ones(2, 5, 384), torch.ones(2, 5)).shape
        torch.Size([2, 384])
    """

    def __init__(self, dimension: int, mode: str = "mean"):
        super().__init__()
        self.dimension = int(dimension)
        self.mode = check_pooling_mode(mode)

    def forward(self, token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return _POOLERS[self.mode](token_embeddings, attention_mask)

    def extra_repr(self) -> str:
        return f"dimension={self.dimension}, mode={self.mode!r}"

    # sentence-transformers `1_Pooling/config.json` (the classic keys, which every version reads).
    def to_st_config(self) -> dict:
        return {
            "word_embedding_dimension": self.dimension,
            "pooling_mode_cls_token": self.mode == "cls",
            "pooling_mode_mean_tokens": self.mode == "mean",
            "pooling_mode_max_tokens": self.mode == "max",
            "pooling_mode_mean_sqrt_len_tokens": False,
        }

    @classmethod
    def from_st_config(cls, config: dict, source: str = "1_Pooling/config.json") -> Pooling:
        """Read both the classic boolean keys and the newer ``pooling_mode`` string."""
        dimension = config.get("word_embedding_dimension", config.get("embedding_dimension"))
        if dimension is None:
            raise ConfigError(f"{source}: expected 'word_embedding_dimension' or 'embedding_dimension'")
        if "pooling_mode" in config and isinstance(config["pooling_mode"], str):
            modes = [config["pooling_mode"]]
        else:
            names = {
                "pooling_mode_cls_token": "cls",
                "pooling_mode_mean_tokens": "mean",
                "pooling_mode_max_tokens": "max",
                "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
                "pooling_mode_weightedmean_tokens": "weightedmean",
                "pooling_mode_lasttoken": "lasttoken",
            }
            modes = [mode for key, mode in names.items() if config.get(key)]
        if len(modes) != 1 or modes[0] not in POOLING_MODES:
            raise ConfigError(
                f"{source}: pooling {modes or 'none'} is not supported; expected exactly one of "
                f"{', '.join(POOLING_MODES)}"
            )
        return cls(dimension, modes[0])
