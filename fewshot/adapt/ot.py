"""Optimal-transport mapping (Courty et al., TPAMI 2017) on frozen features, with POT.

Source features are moved to the barycentre of the target features each is transported to
(``ot.da.EMDTransport`` for ``reg = 0``, else entropic ``SinkhornTransport`` on the cost
matrix scaled to a maximum of 1); the head trained on the moved features reads target
features unchanged. POT is the ``adapt`` extra (``pip install 'fewshot[adapt]'``).
"""

from __future__ import annotations

import torch

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import FeatureAdapter
from fewshot.errors import FewshotError


def _pot():
    try:
        import ot
    except ImportError as err:
        raise FewshotError(
            "--method ot needs POT: pip install 'fewshot[adapt]' (or pip install pot)"
        ) from err
    return ot


@ADAPTERS.register("ot")
class OTMapping(FeatureAdapter):
    """Args: reg: entropic regularisation (0: exact transport, EMD)."""

    name = "ot"
    grid = ("reg", (0.0, 0.01, 0.1, 1.0))

    def __init__(self, reg: float = 0.0) -> None:
        self.reg = reg

    def fit(self, zs: torch.Tensor, ys: torch.Tensor, zt: torch.Tensor) -> OTMapping:
        ot = _pot()
        if self.reg > 0:
            mapping = ot.da.SinkhornTransport(reg_e=float(self.reg), norm="max", max_iter=2000)
        else:
            mapping = ot.da.EMDTransport(norm="max")
        xs, xt = zs.double().numpy(), zt.double().numpy()
        mapping.fit(Xs=xs, Xt=xt)
        self.mapped_ = torch.from_numpy(mapping.transform(Xs=xs)).float()
        self.source_ = zs.float()
        return self

    def source_features(self, zs: torch.Tensor) -> torch.Tensor:
        if zs.shape == self.source_.shape and torch.equal(zs.float(), self.source_):
            return self.mapped_
        raise FewshotError("ot maps the source features it was fitted on only")
