"""bfloat16 autocast for convolutional training on CPU, chosen by a timing check.

CPUs with native bfloat16 arithmetic (AVX-512 BF16, AMX) run the convolutions and matrix
products of a training step in bfloat16 much faster than in float32 (the shipped Conv-4 at
batch 64 on 28 px, channels-last: 1.9x on a 2-core AMD EPYC with avx512_bf16); CPUs without
it emulate bfloat16 and are several times slower. So it is never assumed: `prefer_bf16` times
a few training steps both ways on a copy of the model, in the layout it will train in, and
keeps bfloat16 only when it is clearly faster. The answer is cached per machine with the
channels-last answers (`fewshot.cpu_layout`), so one machine always makes the same choice.
``FEWSHOT_CPU_BF16=1`` or ``0`` overrides the check.

Only the forward pass runs under `torch.autocast`: weights, gradients, optimiser state and
evaluation stay float32, as do the losses, which are computed on float32 logits.
"""

from __future__ import annotations

import copy

import torch

from fewshot.cpu_layout import speedup, timed_choice

ENV_VAR = "FEWSHOT_CPU_BF16"
MIN_SPEEDUP = 1.2  # bfloat16 rounds the forward pass: it must save a sixth of a step to be chosen


def _is_channels_last(model: torch.nn.Module) -> bool:
    return any(p.dim() == 4 and not p.is_contiguous() for p in model.parameters())


def measure(model: torch.nn.Module, sample: torch.Tensor) -> float:
    """How many times faster a training step of a copy of ``model`` runs under bfloat16
    autocast on ``sample`` ``(n, C, H, W)`` (> 1: faster). ``model`` itself is not touched."""
    timed = copy.deepcopy(model).cpu().train()
    return speedup(timed, timed, sample, bf16=True)


def prefer_bf16(model: torch.nn.Module, sample: torch.Tensor, device: torch.device | str) -> bool:
    """Whether training ``model`` (in its current memory layout) on batches like ``sample``
    ``(n, C, H, W)`` on ``device`` should run its forward passes under bfloat16 autocast."""
    kind = f"bf16 {'channels-last' if _is_channels_last(model) else 'contiguous'}|"
    return timed_choice(kind, ENV_VAR, MIN_SPEEDUP, lambda: measure(model, sample), model, sample, device)


__all__ = ["ENV_VAR", "MIN_SPEEDUP", "measure", "prefer_bf16"]
