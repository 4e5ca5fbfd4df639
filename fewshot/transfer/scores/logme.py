"""LogME: the log maximum evidence of a Bayesian linear model on the features.

You, Liu, Wang, Long. "LogME: Practical Assessment of Pre-trained Models for Transfer
Learning", ICML 2021 (arXiv:2102.11005).

For each class ``c`` the one-hot target column ``y_c`` is modelled as
``y_c = F w + noise`` with prior ``w ~ N(0, I / alpha)`` and noise ``N(0, I / beta)``; the
evidence ``p(y_c | F, alpha, beta)`` is maximised over ``alpha, beta`` by the paper's
fixed-point iteration (MacKay's updates), and LogME is the mean over classes of the maximum
log evidence divided by ``n``. One eigendecomposition of ``F^T F`` (or ``F F^T`` when
``n < d``) serves every class and every iteration, in float64: 10,000 x 1,280 features take
about a second on a CPU. Invariant to scaling and rotating the features (``alpha`` absorbs
the scale) and to renaming classes.
"""

from __future__ import annotations

import numpy as np

from fewshot.transfer.scores import SCORES
from fewshot.transfer.scores.base import TransferScore

TINY = 1e-300


def spectrum(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sigma, basis)``: the nonzero squared singular values ``(k,)`` of ``F`` ``(n, d)`` and
    the matching left singular vectors ``U`` ``(n, k)`` (so ``F = U S V^T``)."""
    n, d = features.shape
    if n > d:
        sigma, v = np.linalg.eigh(features.T @ features)  # (d,), (d, d)
        keep = sigma > sigma.max() * 1e-12
        sigma, v = sigma[keep], v[:, keep]
        return sigma, (features @ v) / np.sqrt(sigma)
    sigma, u = np.linalg.eigh(features @ features.T)  # (n,), (n, n)
    keep = sigma > sigma.max() * 1e-12
    return sigma[keep], u[:, keep]


def log_evidence(
    alpha: np.ndarray, beta: np.ndarray, sigma: np.ndarray, x2: np.ndarray, rest2: np.ndarray, n: int, d: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log evidence per target ``(C,)`` at ``alpha, beta`` ``(C,)``, with ``x2 = (U^T y)^2``
    ``(k, C)`` and ``rest2`` the part of ``||y||^2`` outside the column space ``(C,)``.
    Also returns ``||m||^2`` and ``||y - F m||^2`` (the posterior mean's norm and residual)."""
    denom = alpha + beta * sigma[:, None]  # (k, C)
    m2 = (beta**2 * sigma[:, None] * x2 / denom**2).sum(0)
    res2 = ((alpha / denom) ** 2 * x2).sum(0) + rest2
    logdet = np.log(denom).sum(0) + (d - sigma.size) * np.log(alpha)
    evidence = (
        0.5 * n * np.log(beta)
        + 0.5 * d * np.log(alpha)
        - 0.5 * n * np.log(2 * np.pi)
        - 0.5 * beta * res2
        - 0.5 * alpha * m2
        - 0.5 * logdet
    )
    return evidence, m2, res2


def maximum_evidence(features: np.ndarray, targets: np.ndarray, iterations: int = 100, tol: float = 1e-6):
    """Per target column of ``targets`` ``(n, C)``: ``(log evidence / n, alpha, beta)``, each ``(C,)``."""
    n, d = features.shape
    sigma, u = spectrum(features)
    proj = u.T @ targets  # (k, C)
    x2 = proj**2
    rest2 = np.maximum((targets**2).sum(0) - x2.sum(0), 0.0)
    alpha, beta = np.ones(targets.shape[1]), np.ones(targets.shape[1])
    for _ in range(iterations):
        gamma = (beta * sigma[:, None] / (alpha + beta * sigma[:, None])).sum(0)
        _, m2, res2 = log_evidence(alpha, beta, sigma, x2, rest2, n, d)
        new_alpha = gamma / np.maximum(m2, TINY)
        new_beta = np.maximum(n - gamma, TINY) / np.maximum(res2, TINY)
        done = np.abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
        alpha, beta = np.maximum(new_alpha, TINY), np.maximum(new_beta, TINY)
        if done.all():
            break
    evidence, _, _ = log_evidence(alpha, beta, sigma, x2, rest2, n, d)
    return evidence / n, alpha, beta


@SCORES.register("logme")
class LogME(TransferScore):
    """LogME (You et al., ICML 2021): mean over classes of the maximum log evidence / n."""

    name = "logme"

    def compute(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
        targets = np.eye(n_classes)[labels]  # (n, C) one-hot
        evidence, _, _ = maximum_evidence(features, targets)
        return float(evidence.mean())
