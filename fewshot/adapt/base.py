"""What every adaptation method is: hyperparameters from the constructor, and one of two kinds.

- `FeatureAdapter` works on frozen ``(n, d)`` features of any encoder: ``fit(zs, ys, zt)``
  learns a map; a linear head is trained on ``source_features(zs)`` and applied to target
  features through ``target_map()`` (an affine map, or None for the identity), so the adapted
  model is still encoder + linear head, a `fewshot.learners.classifier.Classifier`.
  ``grid`` names the hyperparameter whose values `fewshot.adapt.run` tries (one unit each)
  and the validator chooses among.
- `NetworkAdapter` trains the encoder and head: the trainer adds ``loss(step)`` (a
  `Step`: source and target features and logits, the schedule's progress) to the source
  cross-entropy. ``modules(feature_dim, n_classes)`` are its own trainable parts (a domain
  discriminator), ``begin_round`` runs before each epoch (pseudo-labels), ``needs_batchnorm``
  refuses encoders without BatchNorm, ``trains = False`` marks a method with no optimiser
  steps (AdaBN).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class Adapter:
    """Base of the methods: the constructor's parameters are the hyperparameters."""

    name = ""
    frozen_features = False
    needs_batchnorm = False

    @classmethod
    def param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        params = inspect.signature(cls.__init__).parameters
        return {k: p.default for k, p in params.items() if k != "self"}

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class FeatureAdapter(Adapter):
    """A map learned from source features ``(ns, d)`` with labels and target features ``(nt, d)``."""

    frozen_features = True
    #: (hyperparameter, values) tried one unit each when the user does not fix it
    grid: tuple[str, tuple[Any, ...]] | None = None

    def fit(self, zs: torch.Tensor, ys: torch.Tensor, zt: torch.Tensor) -> FeatureAdapter:
        raise NotImplementedError

    def source_features(self, zs: torch.Tensor) -> torch.Tensor:
        """What the head is trained on: ``(ns, k)``."""
        raise NotImplementedError

    def target_map(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(A (k, d), b (k,))`` with target features ``z -> A z + b``, or None (identity)."""
        return None

    def target_features(self, zt: torch.Tensor) -> torch.Tensor:
        mapping = self.target_map()
        return zt if mapping is None else zt @ mapping[0].T + mapping[1]


@dataclass
class Step:
    """One adaptation step's tensors: features ``(B, d)`` and logits ``(B, C)`` of a source
    batch (labels ``ys``) and a target batch (raw items ``xt``, their indices ``it`` into the
    target set); ``progress`` runs from 0 to 1 over the adaptation; ``forward(x)`` gives
    ``(features, logits)`` of other items (FixMatch's strong views)."""

    zs: torch.Tensor
    ls: torch.Tensor
    ys: torch.Tensor
    zt: torch.Tensor
    lt: torch.Tensor
    xt: torch.Tensor
    it: torch.Tensor
    progress: float
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    generator: torch.Generator


class NetworkAdapter(Adapter):
    """A loss on source and target batches added to the source cross-entropy."""

    trains = True

    def modules(self, feature_dim: int, n_classes: int) -> nn.Module | None:
        """The method's own trainable parts (built once, seeded by the caller), or None."""
        return None

    def attach(self, parts: nn.Module | None) -> None:
        self.parts = parts

    def begin_round(self, predict: Callable[[], torch.Tensor], index: int) -> None:
        """Before adaptation epoch ``index``: ``predict()`` gives target probabilities ``(nt, C)``."""

    def loss(self, step: Step) -> torch.Tensor:
        raise NotImplementedError

    def round_state(self) -> dict[str, Any]:
        """What ``begin_round`` computed that a resumed run needs (tensors only)."""
        return {}

    def restore_round(self, state: dict[str, Any]) -> None:
        pass


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


__all__ = ["Adapter", "FeatureAdapter", "NetworkAdapter", "Step", "has_batchnorm"]
