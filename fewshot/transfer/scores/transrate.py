"""TransRate: the coding rate of the features minus their rate given the labels.

Huang, Huang, Wei, Tian, Wei. "Frustratingly Easy Transferability Estimation", ICML 2022
(arXiv:2106.09362).

With centred features ``Z`` ``(n, d)``, the coding rate at distortion ``eps`` is
``R(Z) = 1/2 logdet(I + Z^T Z / (n eps))`` (rate-distortion of a Gaussian source), and
``TransRate = R(Z) - 1/C sum_c R(Z_c)``: the mutual information between features and labels
that the features can carry. As in the paper's code, each class's rate normalises by its own
item count. Our addition: features are first rescaled to a mean squared norm of one, so the
score does not depend on an encoder's feature scale and ``eps`` means the same for every
candidate. Each log-determinant uses the smaller of ``Z^T Z`` and ``Z Z^T`` (Sylvester's
identity), so 10,000 x 1,280 features take a second or two.
"""

from __future__ import annotations

import numpy as np

from fewshot.transfer.scores import SCORES
from fewshot.transfer.scores.base import TransferScore


def coding_rate(z: np.ndarray, eps: float) -> float:
    """``1/2 logdet(I_d + Z^T Z / (n eps))`` for ``z`` ``(n, d)``."""
    n, d = z.shape
    gram = z.T @ z if d <= n else z @ z.T
    _, logdet = np.linalg.slogdet(np.eye(gram.shape[0]) + gram / (n * eps))
    return 0.5 * float(logdet)


@SCORES.register("transrate")
class TransRate(TransferScore):
    """TransRate (Huang et al., ICML 2022) with ``eps = 1e-4``, on unit-mean-square features."""

    name = "transrate"

    def __init__(self, eps: float = 1e-4) -> None:
        self.eps = eps

    def compute(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
        z = features - features.mean(0)
        z = z / np.sqrt(max((z**2).sum(1).mean(), 1e-300))
        whole = coding_rate(z, self.eps)
        given = np.mean([coding_rate(z[labels == c], self.eps) for c in range(n_classes)])
        return whole - float(given)
