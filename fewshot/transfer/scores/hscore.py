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


def data_span(centred: np.ndarray, ddof: int, rcond: float = 1e-15) -> tuple[np.ndarray, np.ndarray]:
    """With fewer items than features: ``(eigenvalues (k,), eigenvectors (d, k))`` of the
    covariance ``X^T X / (n - ddof)`` on the span of the centred rows, from the ``(n, n)`` Gram
    (the class-mean deviations lie in that span, so nothing outside it is needed)."""
    values, u = np.linalg.eigh(centred @ centred.T)
    keep = values > rcond * max(values.max(), 1e-300)
    vectors = centred.T @ u[:, keep] / np.sqrt(values[keep])
    return values[keep] / (centred.shape[0] - ddof), vectors


@SCORES.register("hscore")
class HScore(TransferScore):
    """H-score (Bao et al., ICIP 2019)."""

    name = "hscore"

    def compute(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
        deviations = class_mean_deviations(features, labels, n_classes)
        if features.shape[0] < features.shape[1]:
            values, vectors = data_span(features - features.mean(0), ddof=1)
            return float(((deviations @ vectors) ** 2 / values).sum())
        cov = np.cov(features, rowvar=False)
        return trace_pinv_product(np.atleast_2d(cov), deviations)


@SCORES.register("hscore-shrinkage")
class ShrinkageHScore(TransferScore):
    """Regularised H-score with Ledoit-Wolf shrinkage (Ibrahim et al., ECML-PKDD 2022)."""

    name = "hscore-shrinkage"

    def compute(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
        centred = features - features.mean(0)
        n, d = centred.shape
        if n < d:  # the shrunk covariance is (1 - a) S + a mu I: on the data's span, its eigenvalues
            shrink, mu = ledoit_wolf_shrinkage(centred)
            values, vectors = data_span(centred, ddof=0)
            deviations = class_mean_deviations(features, labels, n_classes) * np.sqrt(1 - shrink)
            return float(((deviations @ vectors) ** 2 / ((1 - shrink) * values + shrink * mu)).sum())
        cov, shrink = ledoit_wolf(centred)
        deviations = class_mean_deviations(features, labels, n_classes) * np.sqrt(1 - shrink)
        return trace_pinv_product(cov, deviations)


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``(shrunk covariance (d, d), shrinkage a)`` of centred ``x`` ``(n, d)``: Ledoit & Wolf's
    (2004) estimate, as scikit-learn's ``ledoit_wolf`` computes it, from one Gram matrix
    (the sum over ``X2^T X2`` is the sum of the rows' fourth powers of norms)."""
    n, d = x.shape
    shrink, mu = ledoit_wolf_shrinkage(x)
    cov = (1 - shrink) * (x.T @ x / n)
    cov[np.diag_indices(d)] += shrink * mu
    return cov, shrink


def ledoit_wolf_shrinkage(x: np.ndarray) -> tuple[float, float]:
    """``(shrinkage a, target scale mu = tr(S) / d)`` for centred ``x`` ``(n, d)``; uses the
    smaller Gram (``||X^T X||_F = ||X X^T||_F``)."""
    n, d = x.shape
    gram = x.T @ x if d <= n else x @ x.T
    trace = float(np.trace(gram)) / n
    mu = trace / d
    beta_ = float(((x**2).sum(1) ** 2).sum())
    delta_ = float((gram**2).sum()) / n**2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * trace + d * mu**2) / d
    shrink = 0.0 if beta == 0 or delta == 0 else min(beta, delta) / delta
    return shrink, mu
