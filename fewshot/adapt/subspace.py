"""Subspace alignment (Fernando et al., ICCV 2013) on frozen features.

PCA bases ``Ps``, ``Pt`` ``(d, k)`` of the centred source and target features; source features
go to ``(zs - mu_s) Ps M`` with ``M = Ps^T Pt`` (the source basis aligned onto the target's),
target features to ``(zt - mu_t) Pt``, an affine map the head absorbs. ``dim`` (k) is the
hyperparameter the paper bounds and the validator chooses from the grid. It is meant for
subspaces that are tilted, not turned around: with ``dim`` equal to the feature size the
alignment is the identity up to the target basis, and a large rotation is not undone.
"""

from __future__ import annotations

import torch

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import FeatureAdapter


def pca_basis(z: torch.Tensor, k: int) -> torch.Tensor:
    """The top ``k`` principal directions ``(d, k)`` of centred ``z`` ``(n, d)``."""
    _, _, vh = torch.linalg.svd(z - z.mean(0), full_matrices=False)
    return vh[:k].T


@ADAPTERS.register("subspace")
class SubspaceAlignment(FeatureAdapter):
    """Args: dim: subspace size (capped at the features' rank)."""

    name = "subspace"
    grid = ("dim", (8, 16, 32, 64))

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim

    def fit(self, zs: torch.Tensor, ys: torch.Tensor, zt: torch.Tensor) -> SubspaceAlignment:
        zs, zt = zs.double(), zt.double()
        k = max(1, min(int(self.dim), zs.shape[1], zs.shape[0] - 1, zt.shape[0] - 1))
        self.mean_s_, self.mean_t_ = zs.mean(0), zt.mean(0)
        self.ps_, self.pt_ = pca_basis(zs, k), pca_basis(zt, k)
        self.align_ = self.ps_.T @ self.pt_
        return self

    def source_features(self, zs: torch.Tensor) -> torch.Tensor:
        return ((zs.double() - self.mean_s_) @ self.ps_ @ self.align_).float()

    def target_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.pt_.T
        return a.float(), (-(a @ self.mean_t_)).float()
