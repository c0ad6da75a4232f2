"""The accelerate side of a run: one ``Accelerator`` per ``train()`` call, and the few cross-process steps
the loop needs (work done once on the main process and shared, the global batch for batch-wide losses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, broadcast_object_list

from ..config import TrainConfig
from ..errors import ConfigError

T = TypeVar("T")


def has_accelerator() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or bool(mps is not None and mps.is_available())
        or bool(xpu is not None and xpu.is_available())
    )


def forget_previous_accelerator(config: TrainConfig) -> None:
    """accelerate keeps one process-wide state and refuses a second Accelerator with another precision
    or device setting ("restart your runtime"). A second ``train()`` in the same notebook or test session
    should just work, so the per-run part of that state is cleared; the process group (PartialState) stays.
    """
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and (
        str(state.get("_mixed_precision", config.mixed_precision)) != config.mixed_precision
        or state.get("_cpu") != (config.cpu or not has_accelerator())
    ):
        AcceleratorState._reset_state(reset_partial_state=False)


def check_environment(config: TrainConfig) -> None:
    """What a recipe asks of the machine (the recipe itself was validated by ``config``)."""
    if config.mixed_precision == "fp16" and (config.cpu or not torch.cuda.is_available()):
        raise ConfigError("mixed_precision=fp16 needs a CUDA GPU; use bf16 or no on CPU")


def make_accelerator(config: TrainConfig) -> Accelerator:
    forget_previous_accelerator(config)
    accelerator = Accelerator(
        # accelerate only forms a multi-process CPU (gloo) group when told it runs on the CPU.
        cpu=config.cpu or not has_accelerator(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    if config.batch_size % accelerator.num_processes:
        raise ConfigError(
            f"batch_size={config.batch_size} must be divisible by the number of processes "
            f"({accelerator.num_processes}): it is the global batch, split across processes"
        )
    return accelerator


def on_main_process(accelerator: Accelerator, work: Callable[[], T]) -> T:
    """Run ``work`` on the main process only and give every process its result (evaluation, mining):
    all processes then agree on it, e.g. on which step was best."""
    result = [work() if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        result = broadcast_object_list(result, from_process=0)
    return result[0]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's (B_k, ...) tensor into the global batch, keeping the autograd graph.

    Every process then computes the same global loss; the gather's backward sums each process's share of
    the gradient (N times dL/dx_k) and DDP's averaging divides by N again, so parameters get exactly the
    gradient of the global loss.
    """
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return torch.cat(all_gather(tensor.contiguous()), dim=0)
