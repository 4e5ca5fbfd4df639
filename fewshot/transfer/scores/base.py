"""What every transferability score shares: input checks and the call signature."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fewshot.errors import FewshotError


def as_array(x: Any, name: str) -> np.ndarray:
    """A numpy float64 copy of a tensor or array, refusing NaN / inf (one line naming it)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    out = np.asarray(x, dtype=np.float64)
    if out.size and not np.isfinite(out).all():
        raise FewshotError(f"{name} holds NaN or infinite values")
    return out


def check_inputs(features: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """``(features (n, d) float64, labels (n,) in 0..C-1, C)``; refuses bad shapes and fewer
    than two classes."""
    f = as_array(features, "features")
    if f.ndim != 2:
        raise FewshotError(f"features must be (n, d), got shape {tuple(f.shape)}")
    y, n_classes = check_labels(labels, f.shape[0])
    return f, y, n_classes


def check_labels(labels: Any, n: int | None = None) -> tuple[np.ndarray, int]:
    """``(labels (n,) mapped to 0..C-1, C)``; refuses a length other than ``n`` and one class."""
    y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels).reshape(-1)
    if n is not None and y.shape[0] != n:
        raise FewshotError(f"{n} feature rows but {y.shape[0]} labels")
    classes, y = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise FewshotError(f"a transferability score needs at least two classes, got {classes.size}")
    return y.astype(np.int64).reshape(-1), int(classes.size)


def check_source(source_probs: Any, n: int, score: str) -> np.ndarray:
    """The source model's class probabilities ``(n, s)``, rows summing to one."""
    if source_probs is None:
        raise FewshotError(f"{score} needs the source model's predictions (an encoder with its source head)")
    p = as_array(source_probs, "source_probs")
    if p.ndim != 2 or p.shape[0] != n:
        raise FewshotError(f"source_probs must be ({n}, s), got shape {tuple(p.shape)}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise FewshotError("source_probs must be probabilities (non-negative rows summing to 1)")
    return p


class TransferScore:
    """A transferability score: ``score(features, labels, source_probs=None) -> float``,
    higher meaning the encoder should transfer better to the target."""

    name: ClassVar[str] = ""
    #: True when the score reads the source model's class probabilities (LEEP, NCE).
    needs_source: ClassVar[bool] = False

    def __call__(self, features: Any, labels: Any, source_probs: Any = None) -> float:
        if self.needs_source:
            y, _ = check_labels(labels)
            return float(self.compute_source(check_source(source_probs, y.shape[0], self.name), y))
        f, y, c = check_inputs(features, labels)
        return float(self.compute(f, y, c))

    def compute(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
        raise NotImplementedError

    def compute_source(self, source_probs: np.ndarray, labels: np.ndarray) -> float:
        raise NotImplementedError
