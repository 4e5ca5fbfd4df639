"""NCE: the negative conditional entropy of target labels given the source model's labels.

Tran, Nguyen, Hassner. "Transferability and Hardness of Supervised Classification Tasks",
ICCV 2019 (arXiv:1908.08142).

The source model's hard predictions ``z_i = argmax theta_i`` and the target labels ``y_i``
give an empirical joint ``P(y, z)``; ``NCE = -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z)``.
Zero when the source labels determine the target ones, ``-log C`` at worst for ``C``
balanced classes. Invariant to renaming either set of classes and to the order of items.
"""

from __future__ import annotations

import numpy as np

from fewshot.transfer.scores import SCORES
from fewshot.transfer.scores.base import TransferScore
from fewshot.transfer.scores.leep import joint


@SCORES.register("nce")
class NCE(TransferScore):
    """NCE (Tran et al., ICCV 2019): needs the source model's predictions (their argmax)."""

    name = "nce"
    needs_source = True

    def compute_source(self, source_probs: np.ndarray, labels: np.ndarray) -> float:
        hard = np.eye(source_probs.shape[1])[source_probs.argmax(1)]  # (n, s) one-hot
        pyz = joint(hard, labels)
        pz = pyz.sum(0, keepdims=True)
        nonzero = pyz > 0
        return float((pyz[nonzero] * np.log((pyz / np.maximum(pz, 1e-300))[nonzero])).sum())
