"""Continual-learning metrics, every one computed from the accuracy matrix R.

``R`` is ``(T, T)``: ``R[i, j]`` is the test accuracy on experience ``j`` after training
experiences ``0..i`` (rows: time; columns: tasks; 0-based). ``b`` is ``(T,)``: the accuracy on
each experience of the model before any training (for forward transfer). Definitions follow
Lopez-Paz & Ranzato 2017 (GEM: ACC, BWT, FWT) and Chaudhry et al. 2018 (RWalk: forgetting).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fewshot.errors import FewshotError


def _matrix(R: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise FewshotError(f"an accuracy matrix is square (T, T) with T >= 1, got shape {R.shape}")
    return R


def average_accuracy(R, after: int | None = None) -> float:
    """``A_i = (1 / (i + 1)) * sum_{j <= i} R[i, j]``: the mean accuracy over the experiences
    seen so far after training experience ``i`` (default: the last, ``i = T - 1``, the
    "final average accuracy" ACC of GEM)."""
    R = _matrix(R)
    i = R.shape[0] - 1 if after is None else after
    return float(R[i, : i + 1].mean())


def average_forgetting(R) -> float:
    """``F = (1 / (T - 1)) * sum_{j < T - 1} max_{l in [j, T - 2]} (R[l, j] - R[T - 1, j])``:
    for every experience but the last, how far its final accuracy is below the best it ever had
    (Chaudhry et al. 2018); 0 for a single experience."""
    R = _matrix(R)
    T = R.shape[0]
    if T == 1:
        return 0.0
    drops = [R[j : T - 1, j].max() - R[T - 1, j] for j in range(T - 1)]
    return float(np.mean(drops))


def backward_transfer(R) -> float:
    """``BWT = (1 / (T - 1)) * sum_{j < T - 1} (R[T - 1, j] - R[j, j])``: how training later
    experiences changed the accuracy on earlier ones (negative: forgetting; GEM); 0 for T = 1."""
    R = _matrix(R)
    T = R.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


def forward_transfer(R, b: Sequence[float]) -> float:
    """``FWT = (1 / (T - 1)) * sum_{j >= 1} (R[j - 1, j] - b[j])``: the accuracy on experience
    ``j`` just before training it, above that of the untrained model ``b[j]`` (GEM); 0 for T = 1.

    In class- and task-incremental streams an experience's classes have no output before it
    is trained (``R[j - 1, j]`` is 0 or the share of one class), so FWT says nothing there;
    the trainer reports it for domain-incremental streams only."""
    R = _matrix(R)
    b = np.asarray(b, dtype=np.float64)
    T = R.shape[0]
    if b.shape != (T,):
        raise FewshotError(f"b must hold one accuracy per experience ({T}), got shape {b.shape}")
    if T == 1:
        return 0.0
    return float(np.mean([R[j - 1, j] - b[j] for j in range(1, T)]))


def summary(R, b: Sequence[float] | None = None) -> dict[str, float | list[float]]:
    """Every metric of this module, and the average accuracy after each experience."""
    R = _matrix(R)
    out: dict[str, float | list[float]] = {
        "average_accuracy": average_accuracy(R),
        "average_forgetting": average_forgetting(R),
        "backward_transfer": backward_transfer(R),
        "average_accuracy_per_step": [average_accuracy(R, i) for i in range(R.shape[0])],
    }
    if b is not None:
        out["forward_transfer"] = forward_transfer(R, b)
    return out


__all__ = ["average_accuracy", "average_forgetting", "backward_transfer", "forward_transfer", "summary"]
