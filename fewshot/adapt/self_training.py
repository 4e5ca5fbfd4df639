"""Self-training on the target: confidence-thresholded pseudo-labels, and FixMatch.

- ``self-training``: before every adaptation epoch (a *round*) the current model labels the
  target items; those it predicts with probability at least ``threshold`` join training with
  their predicted class (cross-entropy, averaged over the batch so that few confident items
  weigh little). The labels are refined round after round as the model improves.
- ``fixmatch`` (Sohn et al., NeurIPS 2020): per batch, the prediction on a weakly augmented
  view (random shifts) is the pseudo-label of a strongly augmented view (shift, contrast and
  brightness jitter, noise, a cut-out square) when its probability reaches ``threshold``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import NetworkAdapter, Step


def pseudo_labels(p: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities ``(n, C)`` -> ``(labels (n,), confident (n,) bool: max p >= threshold)``."""
    confidence, labels = p.max(dim=-1)
    return labels, confidence >= threshold


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the kept items, divided by the whole batch (0 when none is kept)."""
    losses = F.cross_entropy(logits, labels, reduction="none")
    return (losses * keep.to(losses.dtype)).sum() / max(1, len(labels))


@ADAPTERS.register("self-training")
class SelfTraining(NetworkAdapter):
    """Args: threshold: the least probability a pseudo-label needs; weight: its loss weight."""

    name = "self-training"

    def __init__(self, threshold: float = 0.9, weight: float = 1.0) -> None:
        self.threshold, self.weight = threshold, weight

    def begin_round(self, predict: Callable[[], torch.Tensor], index: int) -> None:
        self.labels_, self.confident_ = pseudo_labels(predict(), self.threshold)

    def loss(self, step: Step) -> torch.Tensor:
        idx = step.it.cpu()
        labels, keep = self.labels_[idx].to(step.lt.device), self.confident_[idx].to(step.lt.device)
        return self.weight * masked_cross_entropy(step.lt, labels, keep)


def strong_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``(B, C, H, W)`` in [0, 1]: random shift (up to 1/8 side), contrast 0.5-1.5, brightness
    +-0.2, Gaussian noise (std 0.05) and a cut-out square of a third of the side, zeroed."""
    b, _, h, w = x.shape
    cpu = x.detach().cpu()
    pad = max(1, h // 8)
    padded = F.pad(cpu, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
    contrast = 0.5 + torch.rand(b, 1, 1, 1, generator=generator)
    brightness = (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.4
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + brightness
    out = out + 0.05 * torch.randn(out.shape, generator=generator)
    side = max(1, h // 3)
    cy = torch.randint(0, h - side + 1, (b,), generator=generator).tolist()
    cx = torch.randint(0, w - side + 1, (b,), generator=generator).tolist()
    for i in range(b):
        out[i, :, cy[i] : cy[i] + side, cx[i] : cx[i] + side] = 0.0
    return out.clamp_(0.0, 1.0).to(x.device)


@ADAPTERS.register("fixmatch")
class FixMatch(NetworkAdapter):
    """Args: threshold: the paper's 0.95; weight: the unlabelled loss's weight (lambda_u = 1)."""

    name = "fixmatch"

    def __init__(self, threshold: float = 0.95, weight: float = 1.0) -> None:
        self.threshold, self.weight = threshold, weight

    def loss(self, step: Step) -> torch.Tensor:
        labels, keep = pseudo_labels(torch.softmax(step.lt.detach(), -1), self.threshold)
        if not bool(keep.any()):
            return step.lt.sum() * 0.0
        _, strong_logits = step.forward(strong_augment(step.xt, step.generator))
        return self.weight * masked_cross_entropy(strong_logits, labels, keep)
