"""Optional projection after pooling: activation(W x + b), the sentence-transformers ``Dense`` module."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

# Activations a saved model may name. Looked up in this table, never imported by name from the file.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "torch.nn.modules.linear.Identity": nn.Identity,
    "torch.nn.modules.activation.Tanh": nn.Tanh,
    "torch.nn.modules.activation.ReLU": nn.ReLU,
    "torch.nn.modules.activation.GELU": nn.GELU,
    "torch.nn.modules.activation.Sigmoid": nn.Sigmoid,
}
SHORT_NAMES = {name.rsplit(".", 1)[-1].lower(): name for name in ACTIVATIONS}


def activation_name(name: str) -> str:
    """Accept 'tanh' or the full 'torch.nn.modules.activation.Tanh'; return the full name."""
    full = SHORT_NAMES.get(name.lower(), name)
    if full not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; valid: {', '.join(sorted(SHORT_NAMES))}")
    return full


class Dense(nn.Module):
    """(B, in_features) -> (B, out_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "tanh"):
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.bias = bool(bias)
        self.activation_function = activation_name(activation)
        self.linear = nn.Linear(self.in_features, self.out_features, bias=self.bias)
        self.activation = ACTIVATIONS[self.activation_function]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))

    def to_st_config(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_function": self.activation_function,
        }

    @classmethod
    def from_st_config(cls, config: dict, source: str = "Dense/config.json") -> Dense:
        try:
            return cls(
                config["in_features"],
                config["out_features"],
                bias=config.get("bias", True),
                activation=config.get("activation_function", "torch.nn.modules.linear.Identity"),
            )
        except KeyError as exc:
            raise ConfigError(f"{source}: missing key {exc.args[0]!r}") from None
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
