"""Plain-Python references shared by the loss tests: distances and similarities written from their
definitions, seeded random inputs, and gradient / state-dict checks."""

from __future__ import annotations

import io
import math

import torch

ALL = ["cosine", "dot", "euclidean", "squared_euclidean", "manhattan", "rbf"]
NON_NEGATIVE = [name for name in ALL if name != "dot"]

# ---------------------------------------------------------------------------------------------------------
# plain-Python helpers
# ---------------------------------------------------------------------------------------------------------


def py_distance(name: str, u: list[float], v: list[float]) -> float:
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    sq = sum((x - y) ** 2 for x, y in zip(u, v, strict=True))
    return {
        "cosine": lambda: 1.0 - dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))),
        "dot": lambda: -dot,
        "euclidean": lambda: math.sqrt(sq),
        "squared_euclidean": lambda: sq,
        "manhattan": lambda: sum(abs(x - y) for x, y in zip(u, v, strict=True)),
        "rbf": lambda: 1.0 - math.exp(-sq),
    }[name]()


def py_similarity(name: str, u: list[float], v: list[float]) -> float:
    if name == "cosine":
        return 1.0 - py_distance(name, u, v)
    return -py_distance(name, u, v)  # dot: -(-u.v) = u.v


def rand(*shape: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rand_labels(b: int, high: int, seed: int) -> torch.Tensor:
    return torch.randint(0, high, (b,), generator=torch.Generator().manual_seed(seed))


def relu(x: float) -> float:
    return max(x, 0.0)


def check_finite_backward(loss: torch.Tensor, *leaves: torch.Tensor) -> None:
    assert torch.isfinite(loss)
    loss.backward()
    for leaf in leaves:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def round_trip(head: torch.nn.Module, fresh: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    torch.save(head.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


def check_state_dict_round_trip(make, adjust=lambda head: head) -> None:
    """A head saved and loaded into a freshly made one computes the same logits and has the same config.
    ``adjust`` moves a head off a constant initialisation, so that the check means something."""
    torch.manual_seed(1)
    head = adjust(make())
    torch.manual_seed(2)
    fresh = make()
    u, v = rand(3, 4, seed=95, dtype=torch.float32), rand(3, 4, seed=96, dtype=torch.float32)
    assert not torch.equal(head(u, v), fresh(u, v))
    loaded = round_trip(head, fresh)
    assert torch.equal(loaded(u, v), head(u, v))
    assert loaded.config() == head.config()
