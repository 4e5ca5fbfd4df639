"""What the CLIP adaptation learners share: a seeded training loop over the support set.

CoOp, CoCoOp, CLIP-Adapter, CLIP-LoRA, ZS-LP/CLAP and LP++ all fit a few parameters on the
support set alone, with fixed settings (no validation set; see each learner's module). The
loop here draws mini-batches of the support items epoch by epoch (full batch when the
support set is no larger than the batch), steps the optimiser, follows a cosine schedule
and records the loss of every step (``losses_``). ``seeded`` makes every fit reproducible
without touching the caller's random stream.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import torch

OptimiserName = str  # "sgd" (momentum 0.9) or "adamw"


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block on its own random stream seeded with ``seed`` (the caller's is restored)."""
    device = torch.device(device or "cpu")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """No gradients for ``module``'s own parameters inside the block (their flags are restored)."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def shots_of(labels: torch.Tensor) -> int:
    """Support items per class (the smallest class's count)."""
    return int(torch.bincount(labels).min())


def coop_epochs(shots: int) -> int:
    """CoOp's epochs by shots: 50 for 1-2 shots, 100 for 4-8, 200 for 16 and more."""
    return 50 if shots <= 2 else 100 if shots <= 8 else 200


def batches(n: int, batch_size: int, iterations: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``iterations`` index batches over ``n`` items, reshuffled each pass (full batch if it fits)."""
    done = 0
    while done < iterations:
        order = torch.randperm(n, generator=generator) if n > batch_size else torch.arange(n)
        for start in range(0, n, batch_size):
            if done == iterations:
                return
            yield order[start : start + batch_size]
            done += 1


def iterations_for(n: int, batch_size: int, epochs: int) -> int:
    """Optimiser steps of ``epochs`` passes over ``n`` items in batches of ``batch_size``."""
    return epochs * math.ceil(n / batch_size)


def make_optimiser(
    params: Sequence[torch.nn.Parameter], name: OptimiserName, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def train_steps(
    params: Sequence[torch.nn.Parameter],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    iterations: int,
    batch_size: int,
    optimiser: torch.optim.Optimizer,
    seed: int,
    cosine: bool = True,
    min_lr: float = 0.0,
) -> list[float]:
    """Minimise ``batch_loss(indices)`` over mini-batches of ``n`` support items; the losses.

    ``params`` must be the optimiser's parameters (their gradients are cleared each step).
    """
    losses: list[float] = []
    if iterations <= 0:
        return losses
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iterations, eta_min=min_lr) if cosine else None
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for index in batches(n, batch_size, iterations, generator):
            loss = batch_loss(index)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if schedule is not None:
                schedule.step()
            losses.append(float(loss.detach()))
    for p in params:
        p.grad = None
    return losses
