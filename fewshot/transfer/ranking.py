"""How well a transferability score ranks models: Kendall's tau and weighted tau.

Weighted tau (Vigna, "A weighted correlation index for rankings with ties", WWW 2015;
``scipy.stats.weightedtau``) weighs disagreements among the top models more, which is what
matters when choosing one: the measure the LogME paper reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _finite_pairs(
    scores: Sequence[float | None], accuracies: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    s = np.array([np.nan if v is None else float(v) for v in scores], dtype=np.float64)
    a = np.asarray(accuracies, dtype=np.float64)
    keep = np.isfinite(s) & np.isfinite(a)
    return s[keep], a[keep]


def kendall_tau(scores: Sequence[float | None], accuracies: Sequence[float]) -> float | None:
    """Kendall's tau-b between scores and accuracies (models without a score left out);
    None with fewer than three models or no variation."""
    from scipy.stats import kendalltau

    s, a = _finite_pairs(scores, accuracies)
    if s.size < 3:
        return None
    tau = kendalltau(s, a).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def weighted_tau(scores: Sequence[float | None], accuracies: Sequence[float]) -> float | None:
    """Weighted tau (hyperbolic weights, ranked by accuracy: the best models count most)."""
    from scipy.stats import weightedtau

    s, a = _finite_pairs(scores, accuracies)
    if s.size < 3:
        return None
    tau = weightedtau(a, s, rank=True).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def rank_correlations(
    scores: dict[str, Sequence[float | None]], accuracies: Sequence[float]
) -> dict[str, dict[str, float | None]]:
    """``{score: {"kendall_tau": ..., "weighted_tau": ..., "models": n}}`` for each score."""
    out = {}
    for name, values in scores.items():
        s, _ = _finite_pairs(values, accuracies)
        out[name] = {
            "kendall_tau": kendall_tau(values, accuracies),
            "weighted_tau": weighted_tau(values, accuracies),
            "models": int(s.size),
        }
    return out
