"""Did pretraining help? Learning curves, data efficiency and the negative-transfer gap.

- Learning curve: test accuracy after every epoch against optimisation steps, fine-tuning a
  pretrained encoder against the same network trained from scratch.
- Convergence speed: `steps_to_fraction` (steps until the accuracy first reaches 90% of the
  run's final accuracy) and `area_under_curve` (the mean accuracy over the run, the trapezoid
  area divided by the steps it spans; higher means good accuracy sooner).
- Data efficiency: final accuracy against labelled images per class, over seeds, with 95%
  Student-t intervals (``t_{0.975, n-1} s / sqrt(n)``, ``s`` with ``n - 1``: a handful of
  seeds is not a large sample).
- Negative transfer (Wang, Dai, Poczos, Carbonell, "Characterizing and Avoiding Negative
  Transfer", CVPR 2019): the gap ``error(with the source) - error(without it)`` on the same
  items; positive means the source hurt. Seeds pair the two runs (same training items), so
  the interval is of the paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, half-width of the 95% Student-t interval)``; half-width NaN for one value."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()) if v.size else math.nan, math.nan
    return float(v.mean()), float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def steps_to_fraction(curve: Sequence[tuple[int, float]], fraction: float = 0.9) -> int:
    """The first step at which accuracy reaches ``fraction`` of the run's final accuracy."""
    final = curve[-1][1]
    return next(step for step, acc in curve if acc >= fraction * final)


def area_under_curve(curve: Sequence[tuple[int, float]]) -> float:
    """Mean accuracy over the run: trapezoid area under accuracy-vs-steps over the steps it
    spans (a single point: its accuracy)."""
    steps = np.array([s for s, _ in curve], dtype=np.float64)
    acc = np.array([a for _, a in curve], dtype=np.float64)
    if steps.size < 2 or steps[-1] == steps[0]:
        return float(acc[-1])
    return float(np.trapezoid(acc, steps) / (steps[-1] - steps[0]))


def negative_transfer_gap(pretrained_acc: Sequence[float], scratch_acc: Sequence[float]) -> dict:
    """Wang et al.'s gap ``error(pretrained) - error(scratch)``, paired by seed: mean, 95%
    interval and a plain-words verdict (positive gap = negative transfer)."""
    gaps = (1 - np.asarray(pretrained_acc, dtype=np.float64)) - (
        1 - np.asarray(scratch_acc, dtype=np.float64)
    )
    mean, half = t_interval(gaps)
    return {"gap": mean, "ci95": half, "runs": int(gaps.size), "verdict": verdict(mean, half)}


def verdict(gap: float, half: float) -> str:
    """Plain words for a negative-transfer gap (error with the source minus without)."""
    points = f"{100 * abs(gap):.1f} points"
    certain = not math.isnan(half) and abs(gap) > half
    if gap > 0:
        return f"negative transfer: training from scratch makes {points} fewer errors" + (
            "" if certain else " (within the noise of these seeds)"
        )
    if gap < 0:
        return f"positive transfer: pretraining makes {points} fewer errors" + (
            "" if certain else " (within the noise of these seeds)"
        )
    return "no difference between pretrained and scratch"


def summarise_runs(runs: list[dict]) -> dict:
    """Mean and 95% interval of a group of runs' final accuracy, steps to 90% and AULC."""
    out = {}
    for key in ("accuracy", "steps_to_90", "aulc"):
        mean, half = t_interval([r[key] for r in runs])
        out[key] = {"mean": mean, "ci95": half}
    out["runs"] = len(runs)
    return out


def mean_curve(curves: list[list[tuple[int, float]]]) -> dict:
    """Per step (the curves share their steps): mean accuracy and 95% half-width."""
    steps = [s for s, _ in curves[0]]
    stats = [t_interval([c[i][1] for c in curves]) for i in range(len(steps))]
    return {"steps": steps, "mean": [m for m, _ in stats], "ci95": [h for _, h in stats]}
