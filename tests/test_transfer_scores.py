"""Transferability scores on synthetic Gaussian features where the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fewshot.errors import FewshotError
from fewshot.transfer.ranking import kendall_tau, rank_correlations, weighted_tau
from fewshot.transfer.scores import compute_score, get_score, score_names

ALL = ["hscore", "hscore-shrinkage", "leep", "logme", "nce", "transrate"]


def gaussian_task(separation: float, n: int = 400, d: int = 16, classes: int = 4, seed: int = 0):
    """Features of `classes` Gaussian clusters whose means are `separation` apart (in noise
    units), labels, and a 'source head' (softmax over distances to the class means)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, d))
    means *= separation / np.linalg.norm(means[0] - means[1])
    labels = np.arange(n) % classes
    features = means[labels] + rng.normal(size=(n, d))
    logits = -0.5 * ((features[:, None, :] - means[None]) ** 2).sum(-1)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return features, labels, probs / probs.sum(1, keepdims=True)


def test_registry_lists_every_score():
    assert score_names() == ALL
    assert [get_score(n).needs_source for n in ALL] == [False, False, True, False, True, False]


@pytest.mark.parametrize("name", ALL)
def test_better_separated_features_score_higher(name):
    values = [compute_score(name, *gaussian_task(sep)) for sep in (0.5, 1.5, 4.0)]
    assert values[0] < values[1] < values[2], values


def rotation(d: int, seed: int = 1) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


@pytest.mark.parametrize("name", ["logme", "hscore", "hscore-shrinkage", "transrate"])
def test_feature_scores_are_invariant_to_scale_rotation_renaming_and_order(name):
    f, y, _ = gaussian_task(1.5)
    base = compute_score(name, f, y)
    order = np.random.default_rng(2).permutation(len(y))
    variants = {
        "scale": compute_score(name, 7.5 * f, y),
        "rotation": compute_score(name, f @ rotation(f.shape[1]), y),
        "renamed classes": compute_score(name, f, np.array([10, 3, 7, 5])[y]),
        "item order": compute_score(name, f[order], y[order]),
    }
    for what, value in variants.items():
        assert value == pytest.approx(base, rel=1e-6, abs=1e-9), what


def test_hscore_is_invariant_to_any_invertible_linear_map():
    f, y, _ = gaussian_task(1.5)
    mixing = np.random.default_rng(3).normal(size=(16, 16)) + 4 * np.eye(16)
    assert compute_score("hscore", f @ mixing, y) == pytest.approx(compute_score("hscore", f, y), rel=1e-6)
    # the shrinkage form is not (isotropic shrinkage depends on the basis' scaling), by design
    assert compute_score("hscore-shrinkage", f @ mixing, y) != pytest.approx(
        compute_score("hscore-shrinkage", f, y), rel=1e-6
    )


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_source_scores_are_invariant_to_source_order_renaming_and_item_order(name):
    f, y, p = gaussian_task(1.5)
    base = compute_score(name, f, y, p)
    order = np.random.default_rng(2).permutation(len(y))
    assert compute_score(name, f, y, p[:, ::-1]) == pytest.approx(base)
    assert compute_score(name, f, np.array([9, 2, 4, 1])[y], p) == pytest.approx(base)
    assert compute_score(name, f[order], y[order], p[order]) == pytest.approx(base)


def test_nce_and_leep_known_values():
    y = np.arange(300) % 3
    perfect = np.eye(3)[y]
    assert compute_score("nce", None, y, perfect) == pytest.approx(0.0)
    assert compute_score("leep", None, y, perfect) == pytest.approx(0.0)
    # a source head whose class is independent of the target label: NCE = -H(Y) = -log 3
    independent = np.eye(2)[(np.arange(300) // 3) % 2]
    assert compute_score("nce", None, y, independent) == pytest.approx(-math.log(3))
    assert compute_score("leep", None, y, np.full((300, 4), 0.25)) == pytest.approx(-math.log(3))


def test_transrate_of_collapsed_classes_has_a_closed_form():
    from fewshot.transfer.scores.transrate import coding_rate

    rng = np.random.default_rng(0)
    means = rng.normal(size=(3, 5))
    y = np.arange(90) % 3
    f = means[y]  # every class collapsed onto one point z_c: R(Z_c) = 1/2 log(1 + |z_c|^2 / eps)
    z = f - f.mean(0)
    z /= np.sqrt((z**2).sum(1).mean())
    given = np.mean([0.5 * math.log(1 + (z[c] ** 2).sum() / 1e-4) for c in range(3)])
    assert compute_score("transrate", f, y) == pytest.approx(coding_rate(z, 1e-4) - given, rel=1e-6)


def direct_log_evidence(f: np.ndarray, t: np.ndarray) -> float:
    """max over alpha, beta of log N(t; 0, I / beta + F F^T / alpha), by Nelder-Mead."""
    from scipy.optimize import minimize
    from scipy.stats import multivariate_normal

    n = f.shape[0]

    def negative(log_ab):
        alpha, beta = np.exp(log_ab)
        cov = np.eye(n) / beta + f @ f.T / alpha
        return -multivariate_normal(np.zeros(n), cov).logpdf(t)

    best = min(
        (
            minimize(
                negative,
                start,
                method="Nelder-Mead",
                options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
            )
            for start in ([0.0, 0.0], [2.0, -1.0], [-2.0, 2.0])
        ),
        key=lambda r: r.fun,
    )
    return -best.fun / n


@pytest.mark.parametrize(("n", "d"), [(30, 5), (8, 12)])
def test_logme_matches_direct_evidence_maximisation(n, d):
    rng = np.random.default_rng(n)
    f = rng.normal(size=(n, d))
    y = np.arange(n) % 2
    y[: n // 4] = 1 - y[: n // 4]  # not linearly perfect
    expected = np.mean([direct_log_evidence(f, (y == c).astype(float)) for c in (0, 1)])
    assert compute_score("logme", f, y) == pytest.approx(expected, abs=1e-4)


def test_bad_inputs_are_refused_in_one_line():
    f, y, p = gaussian_task(1.0)
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(FewshotError, match="NaN"):
        compute_score("logme", bad, y)
    with pytest.raises(FewshotError, match="two classes"):
        compute_score("hscore", f, np.zeros(len(y)))
    with pytest.raises(FewshotError, match="labels"):
        compute_score("transrate", f, y[:-1])
    with pytest.raises(FewshotError, match="source model"):
        compute_score("leep", f, y)
    with pytest.raises(FewshotError, match="probabilities"):
        compute_score("nce", f, y, 2 * p)
    with pytest.raises(FewshotError, match="unknown transferability score"):
        compute_score("nope", f, y)


@pytest.mark.slow
def test_scores_of_10000_by_1280_features_take_seconds():
    import time

    rng = np.random.default_rng(0)
    f = rng.normal(size=(10_000, 1280)).astype(np.float32)
    y = np.arange(10_000) % 10
    for name in ["logme", "hscore", "hscore-shrinkage", "transrate"]:
        started = time.perf_counter()
        compute_score(name, f, y)
        assert time.perf_counter() - started < 30, name


def test_rank_correlations():
    acc = [0.1, 0.5, 0.7, 0.9]
    assert kendall_tau([1, 2, 3, 4], acc) == pytest.approx(1.0)
    assert weighted_tau([4, 3, 2, 1], acc) == pytest.approx(-1.0)
    assert kendall_tau([1, 2], [0.1, 0.2]) is None  # too few models
    # swapping the two best models costs weighted tau more than swapping the two worst
    assert weighted_tau([1, 2, 4, 3], acc) < weighted_tau([2, 1, 3, 4], acc)
    table = rank_correlations({"a": [1, None, 3, 4], "b": [1, 2, 3, 4]}, acc)
    assert table["a"]["models"] == 3 and table["b"]["kendall_tau"] == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "d"), [(200, 30), (40, 300)])
def test_hscores_match_the_direct_covariance_formulas(n, d):
    """Both sides of the n < d shortcut (the data's span) against d x d covariances, and the
    shrinkage against scikit-learn's Ledoit-Wolf."""
    from sklearn.covariance import LedoitWolf

    from fewshot.transfer.scores.hscore import class_mean_deviations, trace_pinv_product

    rng = np.random.default_rng(n)
    y = np.arange(n) % 4
    f = rng.normal(size=(n, d)) + 3 * rng.normal(size=(4, d))[y]
    deviations = class_mean_deviations(f, y, 4)
    plain = trace_pinv_product(np.cov(f, rowvar=False), deviations, rcond=1e-10)
    lw = LedoitWolf().fit(f)
    shrunk = trace_pinv_product(lw.covariance_, deviations * np.sqrt(1 - lw.shrinkage_))
    assert compute_score("hscore", f, y) == pytest.approx(plain, rel=1e-6)
    assert compute_score("hscore-shrinkage", f, y) == pytest.approx(shrunk, rel=1e-6)
