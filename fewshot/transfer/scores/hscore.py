"""H-score, plain and regularised (shrinkage covariance).

Bao, Li, Huang, Zheng. "An Information-Theoretic Approach to Transferability in Task
Transfer Learning", ICIP 2019: ``H(f) = tr(cov(f)^+ cov(E[f | y]))``, how much of the
features' variance lies between the class means, measured in the features' own metric.

Ibrahim, Ponomareva, Mazumder. "Newer is not always better: Rethinking transferability
metrics, their peculiarities, stability and performance", ECML-PKDD 2022: with many features
and few items ``cov(f)`` is badly estimated and the plain score blows up; the regularised
H-score replaces it by the Ledoit-Wolf shrinkage estimate
``(1 - a) cov(f) + a (tr cov(f) / d) I`` and scales the between-class term by ``(1 - a)``.

Both are invariant to renaming classes and to rotating and scaling the features (the plain
score to any invertible linear map of full-rank features).
"""

from __future__ import annotations

import numpy as np

from fewshot.transfer.scores import SCORES
from fewshot.transfer.scores.base import TransferScore


def class_mean_deviations(features: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, d)`` rows ``sqrt(n_c / (n - 1)) (mu_c - mu)``: their Gram ``D^T D`` is
    ``cov(E[f | y])`` (np.cov's ``n - 1`` normalisation), computed without an ``(n, d)`` copy."""
    n = features.shape[0]
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, features.shape[1]))
    np.add.at(sums, labels, features)
    means = sums / counts[:, None] - features.mean(0)
    return means * np.sqrt(counts / (n - 1))[:, None]


def trace_pinv_product(cov: np.ndarray, deviations: np.ndarray, rcond: float = 1e-15) -> float:
    """``tr(cov^+ D^T D)`` with ``cov`` symmetric ``(d, d)``, through its eigendecomposition."""
    values, vectors = np.linalg.eigh(cov)
    keep = values > rcond * max(values.max(), 1e-300)
    proj = deviations @ vectors[:, keep]  # (C, k)
    return float((proj**2 / values[keep]).sum())


@SCORES.register("hscore")
class HScore(TransferScore):
    """H-score (Bao et al., ICIP 2019)."""

    name = "hscore"

    def compute(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
        cov = np.cov(features, rowvar=False)
        return trace_pinv_product(np.atleast_2d(cov), class_mean_deviations(features, labels, n_classes))


@SCORES.register("hscore-shrinkage")
class ShrinkageHScore(TransferScore):
    """Regularised H-score with Ledoit-Wolf shrinkage (Ibrahim et al., ECML-PKDD 2022)."""

    name = "hscore-shrinkage"

    def compute(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
        cov, shrink = ledoit_wolf(features - features.mean(0))
        deviations = class_mean_deviations(features, labels, n_classes) * np.sqrt(1 - shrink)
        return trace_pinv_product(cov, deviations)


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``(shrunk covariance (d, d), shrinkage a)`` of centred ``x`` ``(n, d)``: Ledoit & Wolf's
    (2004) estimate, as scikit-learn's ``ledoit_wolf`` computes it, from one Gram matrix
    (the sum over ``X2^T X2`` is the sum of the rows' fourth powers of norms)."""
    n, d = x.shape
    emp = x.T @ x / n
    mu = float(np.trace(emp)) / d
    beta_ = float(((x**2).sum(1) ** 2).sum())
    delta_ = float((emp**2).sum())
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * float(np.trace(emp)) + d * mu**2) / d
    shrink = 0.0 if beta == 0 or delta == 0 else min(beta, delta) / delta
    cov = (1 - shrink) * emp
    cov[np.diag_indices(d)] += shrink * mu
    return cov, shrink
