"""Network adaptation as a `fewshot.run_loop` task: a unit is one epoch.

The first ``source_epochs`` units train the source-only model (encoder and head, source
cross-entropy); the source-only weights are kept in the state when that phase ends. The
remaining units adapt: each epoch runs over the source batches, pairs every one with a target
batch (cycled), and adds the method's loss to the source cross-entropy, with the learning
rate annealed as in DANN (``lr / (1 + 10 p)^0.75``). After every adaptation epoch the
validator scores the target predictions (no target labels) and the best-scoring weights are
kept; target labels, when given, only fill the log's ``target_accuracy`` column.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.adapt.base import NetworkAdapter, Step
from fewshot.adapt.config import AdaptConfig
from fewshot.adapt.selection import score, scores
from fewshot.data.tensors import LabeledTensors
from fewshot.learners.classifier import Classifier
from fewshot.run_loop import RunTask
from fewshot.seeding import seeded
from fewshot.transfer.finetune_loop import augment_batch

NO_SCORE = -math.inf  # source-phase units are never kept as the adapted model


@torch.no_grad()
def target_probabilities(
    model: Classifier, items: torch.Tensor, device, batch_size: int = 256
) -> torch.Tensor:
    """Softmax ``(n, C)`` of ``model`` on ``items`` in eval mode (left as it was found)."""
    was_training = model.training
    model.eval()
    try:
        parts = [
            model(items[i : i + batch_size].to(device)).float().softmax(-1).cpu()
            for i in range(0, len(items), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts)


def accuracy_of(p: torch.Tensor, labels: torch.Tensor | None) -> float | None:
    return None if labels is None else float((p.argmax(-1) == labels).double().mean())


class NetworkAdaptation(RunTask):
    """Train the source-only model, then adapt it with `adapter` (see the module docstring)."""

    command, unit = "adapt", "epoch"

    def __init__(
        self,
        model: Classifier,
        adapter: NetworkAdapter,
        source: LabeledTensors,
        target: torch.Tensor,
        config: AdaptConfig,
        target_labels: torch.Tensor | None = None,
    ) -> None:
        self.model, self.adapter, self.config = model, adapter, config
        self.source, self.target, self.target_labels = source, target, target_labels
        self.device = torch.device(config.device)
        self.model.to(self.device)
        with seeded(config.seed + 1):
            parts = adapter.modules(model.encoder.embed_dim, len(model.class_names))
        self.parts = None if parts is None else parts.to(self.device)
        adapter.attach(self.parts)
        params = list(model.parameters()) + ([] if self.parts is None else list(self.parts.parameters()))
        self.optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.adapt_units = config.epochs if adapter.trains else 1
        self.total = config.source_epochs + self.adapt_units
        self.steps_per_epoch = max(1, math.ceil(len(source) / config.batch_size))
        self.source_state: dict[str, torch.Tensor] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []

    # -- the run-loop contract --------------------------------------------------------------
    def start(self, progress, resumed: bool) -> None:
        if not resumed and self.config.source_epochs == 0:
            self.source_state = copy.deepcopy(self.model.state_dict())

    def run_unit(self, index: int) -> None:
        source_phase = index < self.config.source_epochs
        if source_phase:
            loss = self._source_epoch()
        elif self.adapter.trains:
            loss = self._adapt_epoch(index - self.config.source_epochs)
        else:
            self.adapter.update(self.model.encoder, self.target, self.device)
            loss = 0.0
        if index + 1 == self.config.source_epochs:
            self.source_state = copy.deepcopy(self.model.state_dict())
        self.history.append({"unit": index + 1, "phase": "source" if source_phase else "adapt", "loss": loss})

    def validate(self, done: int) -> float:
        row = self.history[-1]
        p = target_probabilities(self.model, self.target, self.device)
        row.update({k: round(v, 6) for k, v in scores(p).items()})
        acc = accuracy_of(p, self.target_labels)
        row["target_accuracy"] = None if acc is None else round(acc, 6)
        return NO_SCORE if done <= self.config.source_epochs else score(self.config.select, p)

    def keep_best(self, out, done: int, score_: float) -> None:
        self.best_state = copy.deepcopy(self.model.state_dict())

    def postfix(self, done: int) -> dict[str, str]:
        return {"loss": f"{self.history[-1]['loss']:.3f}"}

    def training_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "parts": {} if self.parts is None else self.parts.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "source_state": self.source_state or {},
            "best_state": self.best_state or {},
            "history": self.history,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.parts is not None:
            self.parts.load_state_dict(state["parts"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.source_state = state["source_state"] or None
        self.best_state = state["best_state"] or None
        self.history = list(state["history"])

    # -- epochs -----------------------------------------------------------------------------
    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.augment and x.dim() == 4:
            x = augment_batch(x, self.generator, False)
        return x.to(self.device)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.model.features(self.model.encoder(x))
        return z, self.model.head(z)

    def _source_epoch(self) -> float:
        self.model.train()
        order = torch.randperm(len(self.source), generator=self.generator)
        total = 0.0
        for start in range(0, len(order), self.config.batch_size):
            idx = order[start : start + self.config.batch_size]
            _, logits = self._forward(self._batch(self.source.data[idx]))
            loss = F.cross_entropy(logits, self.source.labels[idx].to(self.device))
            self._step(loss, self.config.lr)
            total += loss.item() * len(idx)
        return round(total / len(order), 6)

    def _adapt_epoch(self, epoch: int) -> float:
        config, adapter = self.config, self.adapter
        adapter.begin_round(lambda: target_probabilities(self.model, self.target, self.device), epoch)
        self.model.train()
        if self.parts is not None:
            self.parts.train()
        order = torch.randperm(len(self.source), generator=self.generator)
        rounds = math.ceil(self.steps_per_epoch * config.batch_size / len(self.target))
        torder = torch.cat(
            [torch.randperm(len(self.target), generator=self.generator) for _ in range(rounds)]
        )
        total, b = 0.0, config.batch_size
        for step in range(self.steps_per_epoch):
            idx, it = order[step * b : (step + 1) * b], torder[step * b : (step + 1) * b]
            xs, xt = self._batch(self.source.data[idx]), self.target[it]
            z, logits = self._forward(torch.cat([xs, self._batch(xt)]))
            ys, n = self.source.labels[idx].to(self.device), len(idx)
            progress = (epoch * self.steps_per_epoch + step) / (self.adapt_units * self.steps_per_epoch)
            batch = Step(
                z[:n],
                logits[:n],
                ys,
                z[n:],
                logits[n:],
                xt.to(self.device),
                it,
                progress,
                self._forward,
                self.generator,
            )
            loss = F.cross_entropy(logits[:n], ys) + adapter.loss(batch)
            self._step(loss, config.lr / (1 + 10 * progress) ** 0.75)
            total += loss.item() * n
        return round(total / len(order), 6)

    def _step(self, loss: torch.Tensor, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


__all__ = ["NetworkAdaptation", "accuracy_of", "target_probabilities"]
