"""LEEP: the log expected empirical prediction of the source model's head on the target.

Nguyen, Hassner, Seeger, Archambeau. "LEEP: A New Measure to Evaluate Transferability of
Learned Representations", ICML 2020 (arXiv:2002.12462).

With the source model's class probabilities ``theta`` ``(n, s)`` on the target images, the
empirical joint ``P(y, z) = 1/n sum_i theta_i(z) [y_i = y]`` gives ``P(y | z)``, and
``LEEP = 1/n sum_i log sum_z P(y_i | z) theta_i(z)``: the average log-likelihood of the
"expected empirical predictor" that maps source classes to target classes. Always <= 0.
Needs the source head (an ImageNet encoder's 1,000-class classifier); invariant to
reordering the source classes and renaming the target ones.
"""

from __future__ import annotations

import numpy as np

from fewshot.transfer.scores import SCORES
from fewshot.transfer.scores.base import TransferScore


def joint(source_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The empirical joint ``P(y, z)`` ``(C, s)`` of target label and (soft) source class."""
    n_classes = int(labels.max()) + 1
    out = np.zeros((n_classes, source_probs.shape[1]))
    np.add.at(out, labels, source_probs)
    return out / labels.shape[0]


@SCORES.register("leep")
class LEEP(TransferScore):
    """LEEP (Nguyen et al., ICML 2020): needs the source model's class probabilities."""

    name = "leep"
    needs_source = True

    def compute_source(self, source_probs: np.ndarray, labels: np.ndarray) -> float:
        pyz = joint(source_probs, labels)  # (C, s)
        pz = pyz.sum(0, keepdims=True)
        p_y_given_z = pyz / np.maximum(pz, 1e-300)
        eep = np.einsum("is,is->i", source_probs, p_y_given_z[labels])  # (n,)
        return float(np.log(np.maximum(eep, 1e-300)).mean())
