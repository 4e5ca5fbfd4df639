"""CORAL, correlation alignment (Sun, Feng and Saenko, AAAI 2016), on frozen features.

Source features are whitened with their own covariance and re-coloured with the target's,
``zs' = (zs - mu_s) Cs^-1/2 Ct^1/2 + mu_t`` with ``C = cov + eps * (tr(cov)/d) I`` (the
paper's regulariser, scaled to the features so one grid fits every encoder); the head trained
on ``zs'`` reads target features unchanged. ``center=False`` leaves the means alone, as in the
paper's formula on standardised features.
"""

from __future__ import annotations

import torch

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import FeatureAdapter


def _cov(z: torch.Tensor, eps: float) -> torch.Tensor:
    c = torch.cov(z.T).reshape(z.shape[1], z.shape[1])
    scale = float(torch.trace(c)) / z.shape[1] or 1.0
    return c + eps * scale * torch.eye(z.shape[1], dtype=z.dtype)


def matrix_power(c: torch.Tensor, power: float) -> torch.Tensor:
    """``c^power`` of a symmetric positive definite matrix ``(d, d)``."""
    values, vectors = torch.linalg.eigh(c)
    return (vectors * values.clamp_min(1e-12).pow(power)) @ vectors.T


@ADAPTERS.register("coral")
class Coral(FeatureAdapter):
    """Args: eps: covariance regulariser (a share of the mean variance); center: align means."""

    name = "coral"
    grid = ("eps", (0.01, 0.1, 1.0))

    def __init__(self, eps: float = 1.0, center: bool = True) -> None:
        self.eps, self.center = eps, center

    def fit(self, zs: torch.Tensor, ys: torch.Tensor, zt: torch.Tensor) -> Coral:
        zs, zt = zs.double(), zt.double()
        self.mean_s_, self.mean_t_ = zs.mean(0), zt.mean(0)
        self.transform_ = matrix_power(_cov(zs, self.eps), -0.5) @ matrix_power(_cov(zt, self.eps), 0.5)
        return self

    def source_features(self, zs: torch.Tensor) -> torch.Tensor:
        zs = zs.double()
        if not self.center:
            return (zs @ self.transform_).float()
        return ((zs - self.mean_s_) @ self.transform_ + self.mean_t_).float()
