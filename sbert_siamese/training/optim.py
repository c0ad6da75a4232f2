"""The optimizer, the learning-rate schedule and gradient clipping of a training run."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn

from ..config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm; a freshly initialised head may get its own rate."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((name.startswith("head."), no_decay), []).append(param)
    head_lr = config.head_learning_rate if config.head_learning_rate is not None else config.learning_rate
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else config.weight_decay,
                "lr": head_lr if is_head else config.learning_rate,
                "is_head": is_head,
            }
            for (is_head, no_decay), params in groups.items()
        ],
        lr=config.learning_rate,
        # One kernel per step over all parameters instead of a Python loop per tensor: on 2 CPU cores the
        # per-tensor loop (torch's CPU default) took a quarter of each training step (benchmarks/).
        fused=True,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """Linear warmup then linear decay to 0. With ``head_only_steps`` N, the encoder's rate is 0 for the
    first N steps (only a new head learns, so its random start sends no noise into the encoder) and its
    warmup / decay then run over the remaining steps."""
    frozen = (
        min(config.head_only_steps, total_steps) if any(g["is_head"] for g in optimizer.param_groups) else 0
    )

    def linear(start: int):
        warmup = int(config.warmup_ratio * (total_steps - start))

        def factor(step: int) -> float:
            if step < start:
                return 0.0
            step -= start
            if step < warmup:  # the same factors as transformers' get_linear_schedule_with_warmup
                return step / max(1, warmup)
            return max(0.0, (total_steps - start - step) / max(1, total_steps - start - warmup))

        return factor

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [linear(0) if g["is_head"] else linear(frozen) for g in optimizer.param_groups]
    )


def clip_gradients(accelerator: Accelerator, model: nn.Module, max_norm: float) -> torch.Tensor | None:
    """Clip the global gradient norm; what ``accelerator.clip_grad_norm_`` does (unscale, then clip) but
    with torch's multi-tensor kernels, which its CPU default does not use (one Python step per tensor).
    Returns the norm before clipping."""
    if accelerator.distributed_type not in (
        DistributedType.NO,
        DistributedType.MULTI_CPU,
        DistributedType.MULTI_GPU,
    ):
        norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)  # None under some engines
        return None if norm is None else torch.as_tensor(norm)
    accelerator.unscale_gradients()
    params = [p for p in model.parameters() if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
