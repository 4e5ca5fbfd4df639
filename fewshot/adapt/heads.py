"""The linear head of the frozen-feature methods, and target maps folded into it.

`fit_linear_head` is multinomial logistic regression on centred features scaled to unit mean
variance, full batch with L-BFGS from zero weights (deterministic: the same features give the
same head); the scaling and a method's affine target map are folded into one ``(W, b)`` on the raw
encoder features, so the adapted model is an ordinary `Classifier`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

L2 = 1e-3


def fit_linear_head(
    z: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = L2, steps: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(n, k)``, labels ``(n,)`` -> ``W (C, k)``, ``b (C,)`` of ``logits = z W^T + b``."""
    z = z.detach().double()
    # one scale for every feature: per-feature scaling would blow up the low-variance
    # directions (noise after a subspace projection) that the head then overfits
    mean = z.mean(0)
    std = (z - mean).pow(2).sum(1).mean().sqrt().clamp_min(1e-6) / z.shape[1] ** 0.5
    x = (z - mean) / std
    w = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        weight = w / std
        bias = b - weight @ mean
    return weight.float(), bias.float()


def fold(
    head: tuple[torch.Tensor, torch.Tensor], mapping: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head on raw features ``(d,)`` when target features go ``z -> A z + c`` first."""
    weight, bias = head
    if mapping is None:
        return weight, bias
    a, c = mapping
    return weight @ a.float(), bias + weight @ c.float()


def head_logits(head: tuple[torch.Tensor, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    return z.float() @ head[0].T + head[1]


__all__ = ["fit_linear_head", "fold", "head_logits"]
