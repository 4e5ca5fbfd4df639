"""AdaBN (Li et al., 2016): re-estimate every BatchNorm layer's statistics on the target.

No weight changes: the running mean and variance of each BatchNorm layer are reset and
recomputed over the target items (batches in training mode without gradients, each batch's
statistics weighted by its size, so the mean is exactly the target mean); affine weights,
convolutions and the head stay as the source-only model has them. Needs an encoder with
BatchNorm (refused otherwise).
"""

from __future__ import annotations

import torch
from torch import nn

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import NetworkAdapter


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, items: torch.Tensor, device: torch.device, batch_size: int) -> None:
    """Set every BatchNorm's running statistics to those of ``items`` ``(n, ...)``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum, m.training) for m in norms]
    was_training = model.training
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.train()
    try:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            for m in norms:  # running = running + n/(seen+n) (batch - running): a size-weighted mean
                m.momentum = len(batch) / (start + len(batch))
            model(batch.to(device))
    finally:
        for m, momentum, training in saved:
            m.momentum = momentum
            m.train(training)
        model.train(was_training)


@ADAPTERS.register("adabn")
class AdaBN(NetworkAdapter):
    """Args: batch_size: target items per forward pass while the statistics are gathered."""

    name = "adabn"
    needs_batchnorm = True
    trains = False

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def update(self, encoder: nn.Module, target: torch.Tensor, device: torch.device) -> None:
        recompute_batchnorm(encoder, target, device, self.batch_size)
