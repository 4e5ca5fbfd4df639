"""The one scoring function: queries against class prototypes.

ProtoNet, SimpleShot, the zero-shot classifier and Tip-Adapter all score queries this way,
so a zero-shot classifier is a ProtoNet whose prototypes come from text.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Metric = Literal["euclidean", "cosine"]


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean embedding per class: ``(n, d)``, ``(n,)`` in ``0..n_classes-1`` -> ``(n_classes, d)``."""
    sums = torch.zeros(n_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).to(embeddings.dtype)
    return sums / counts.unsqueeze(1)


def prototype_logits(
    queries: torch.Tensor,
    prototypes: torch.Tensor,
    metric: Metric = "euclidean",
    scale: float = 1.0,
) -> torch.Tensor:
    """Logits of queries ``(..., q, d)`` against prototypes ``(..., c, d)`` -> ``(..., q, c)``.

    ``euclidean``: ``-scale * ||q - p||^2`` (Snell et al.). ``cosine``: ``scale * cos(q, p)``
    (CLIP's zero-shot head, with scale = logit scale, 100 for CLIP).
    """
    if metric == "euclidean":
        squared = (
            queries.pow(2).sum(-1, keepdim=True)
            - 2 * queries @ prototypes.transpose(-1, -2)
            + prototypes.pow(2).sum(-1).unsqueeze(-2)
        )
        return -scale * squared.clamp(min=0)
    if metric == "cosine":
        return scale * F.normalize(queries, dim=-1) @ F.normalize(prototypes, dim=-1).transpose(-1, -2)
    raise ValueError(f"unknown metric {metric!r}: use 'euclidean' or 'cosine'")
