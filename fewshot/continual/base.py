"""What every continual strategy shares: the training settings, the per-experience loop and
the hooks a strategy overrides.

A strategy is a class decorated ``@STRATEGIES.register("name")`` whose constructor takes only
its own hyperparameters (its signature is the list `fewshot continual` accepts, as with
learners). The trainer calls, for each experience in order, ``train_experience(model, exp,
settings, generator)``: by default ``before_experience`` (add the experience's new classes),
``settings.epochs`` passes of mini-batches from `batches` with loss ``loss(...) + penalty``,
then ``after_experience``. Whatever a strategy keeps between experiences (a buffer, a Fisher
matrix, the previous model) is in ``state_dict()`` so a killed run resumes exactly.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import SCENARIOS, Experience, Stream
from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError


@dataclass
class TrainSettings:
    """How each experience is trained (shared by every strategy that trains)."""

    epochs: int = 1
    lr: float = 0.01
    batch_size: int = 32
    optimizer: Literal["sgd", "adam"] = "sgd"  # sgd: momentum 0.9
    device: str = "cpu"
    #: forward passes in bfloat16 autocast or float32; ``auto``: `ContinualRun` decides
    #: (bf16 where `fewshot.cpu_bf16`'s check finds it faster); a strategy reads auto as fp32
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise FewshotError("--epochs and --batch-size must be >= 1 and --lr > 0")
        if self.optimizer not in ("sgd", "adam"):
            raise FewshotError(f"--optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise FewshotError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")

    def autocast(self) -> AbstractContextManager:
        """The context the training forward passes run in (the loss is float32 either way)."""
        if self.precision != "bf16":
            return nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)


class Strategy:
    """Naive fine-tuning; subclasses override the hooks. See the module docstring."""

    #: embed every item once with the frozen encoder; only heads are trained (or fitted)
    frozen_encoder: bool = False
    #: L2-normalise features before the heads (cosine classifiers)
    normalize: bool = False
    #: the scenarios it applies to (multi-head needs the task id at test time)
    scenarios: tuple[str, ...] = SCENARIOS

    @classmethod
    def param_names(cls) -> list[str]:
        """The hyperparameters its constructor takes."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def config(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def setup(self, stream: Stream) -> None:
        """Called once before training (a fresh run and a resumed one alike)."""

    # -- the loop --------------------------------------------------------------------------

    def train_experience(
        self, model: ContinualModel, exp: Experience, settings: TrainSettings, generator: torch.Generator
    ) -> None:
        self.before_experience(model, exp, generator)
        data = self.training_data(exp)
        params = [p for p in self.trainable(model) if p.requires_grad]
        if params and len(data):
            optimizer = make_optimizer(params, settings)
            model.train()
            for _ in range(settings.epochs):
                for x, y in self.batches(data, settings, generator):
                    with settings.autocast():
                        loss = self.loss(model, x.to(settings.device), y.to(settings.device), exp)
                    loss = loss + self.penalty(model)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        model.eval()
        self.after_experience(model, exp, settings, generator)

    def before_experience(self, model: ContinualModel, exp: Experience, generator: torch.Generator) -> None:
        model.add_classes(exp.classes)

    def training_data(self, exp: Experience) -> LabeledTensors:
        return exp.train

    def trainable(self, model: ContinualModel) -> list[torch.nn.Parameter]:
        return list(model.parameters())

    def batches(
        self, data: LabeledTensors, settings: TrainSettings, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from shuffled_batches(data, settings.batch_size, generator)

    def loss(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, exp: Experience) -> torch.Tensor:
        """Cross-entropy over every class seen so far."""
        return F.cross_entropy(model(x, model.class_mask()), y)

    def penalty(self, model: ContinualModel) -> torch.Tensor | float:
        return 0.0

    def after_experience(
        self, model: ContinualModel, exp: Experience, settings: TrainSettings, generator: torch.Generator
    ) -> None:
        """Called once training of `exp` ended (model in eval mode)."""

    # -- resumable state --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Tensors, lists and numbers only (the state is read with ``weights_only=True``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], model: ContinualModel) -> None:
        """Load `state_dict`'s entries back; `model` is already restored."""


def shuffled_batches(
    data: LabeledTensors, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(x (b, ...), y (b,))`` of `data` in an order drawn from `generator`."""
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield data.data[idx], data.labels[idx]


def make_optimizer(params: list[torch.nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    """A fresh optimiser for one experience: SGD with momentum 0.9, or Adam."""
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr)
    return torch.optim.SGD(params, lr=settings.lr, momentum=0.9)


def anchor(model: ContinualModel) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter, by name (the point a penalty pulls towards)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def quadratic_penalty(
    model: ContinualModel, weights: dict[str, torch.Tensor], centre: dict[str, torch.Tensor]
) -> torch.Tensor:
    """``sum_k weights_k * (theta_k - centre_k)^2`` over the parameters both dicts hold (a head
    added later has no weight and no penalty)."""
    total = torch.zeros(())
    for name, p in model.named_parameters():
        if name in weights and weights[name].shape == p.shape:
            total = total.to(p.device) + (weights[name] * (p - centre[name]).pow(2)).sum()
    return total


@torch.no_grad()
def evaluate(
    model: ContinualModel, data: LabeledTensors, mask: torch.Tensor | None, device: Any, batch_size: int = 512
) -> float:
    """Top-1 accuracy of `model` on `data`, the classes outside the bool `mask` ruled out."""
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x = data.data[start : start + batch_size].to(device)
        y = data.labels[start : start + batch_size].to(device)
        correct += int((model(x, mask).argmax(-1) == y).sum())
    return correct / max(1, len(data))


__all__ = [
    "Strategy",
    "TrainSettings",
    "anchor",
    "evaluate",
    "make_optimizer",
    "quadratic_penalty",
    "shuffled_batches",
]
