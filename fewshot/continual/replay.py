"""Experience replay: every training batch of ``b`` current items is joined by ``replay_ratio x b``
items drawn from a fixed memory of past items (`fewshot.continual.buffer.ReplayBuffer`:
reservoir or class-balanced, stored as uint8). Options, each off by default:

- ``ace``: ER-ACE (Caccia et al. 2022): the current items' softmax covers only the current
  experience's classes, so new classes do not push down the old ones' logits, while the
  replayed items' softmax covers every class seen.
- ``augment``: replayed images are shifted (and mirrored) at random each time they are drawn
  (`fewshot.continual.augment`; Buzzega et al. 2020's independent buffer augmentation).
- ``distill``: the replayed items' logits are pulled towards the logits the model gave them at
  the end of the previous experience (after the re-fit below, when on), ``distill x MSE`` over
  the classes seen then (the loss of Dark Experience Replay, Buzzega et al. 2020, with the
  targets refreshed each experience).
- ``rebalance``: from the second experience on, after each one the heads are re-fitted for
  that many epochs on the class-balanced memory alone, on the encoder's frozen features (the
  balanced fine-tuning of End-to-End Incremental Learning, Castro et al. 2018): training on
  many new items and few old ones biases the heads towards the new classes; this removes it.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from fewshot.continual import STRATEGIES
from fewshot.continual.augment import Augment, augment_images, check_augment
from fewshot.continual.base import Strategy, TrainSettings, shuffled_batches
from fewshot.continual.buffer import ReplayBuffer
from fewshot.continual.model import ContinualModel, masked
from fewshot.continual.rebalance import memory_features, refit_heads
from fewshot.continual.scenarios import Experience
from fewshot.errors import FewshotError


@STRATEGIES.register("replay")
class Replay(Strategy):
    """Args: ``memory`` (items kept), ``buffer`` (``reservoir`` or ``class-balanced``), ``ace``,
    ``augment`` (``none``, ``shift``, ``shift-flip``), ``distill`` (weight, 0: off),
    ``rebalance`` (epochs, 0: off), ``replay_ratio`` (replayed items per current item)."""

    def __init__(
        self,
        memory: int = 200,
        buffer: Literal["reservoir", "class-balanced"] = "class-balanced",
        ace: bool = False,
        augment: Augment = "none",
        distill: float = 0.0,
        rebalance: int = 0,
        replay_ratio: int = 1,
    ) -> None:
        check_augment(augment)
        if distill < 0 or rebalance < 0 or replay_ratio < 1:
            raise FewshotError("--distill and --rebalance must be >= 0 and --replay-ratio >= 1")
        self.memory, self.buffer, self.ace, self.augment = int(memory), buffer, bool(ace), augment
        self.distill, self.rebalance, self.replay_ratio = float(distill), int(rebalance), int(replay_ratio)
        self.store = ReplayBuffer(self.memory, buffer)
        self.targets: torch.Tensor | None = None  # (m, n_classes): distill's logits per memory item
        self.target_classes: torch.Tensor | None = None  # bool (n_classes,): the classes seen then
        self._drawn: torch.Tensor | None = None  # the targets of the batch `batches` just made

    def batches(self, data, settings, generator):
        for x, y in shuffled_batches(data, settings.batch_size, generator):
            if not len(self.store):
                yield x, y
                continue
            idx = torch.randint(0, len(self.store), (self.replay_ratio * len(y),), generator=generator)
            bx, by = self.store.take(idx)
            if self.targets is not None:
                self._drawn = self.targets[idx]
            yield torch.cat([x, augment_images(bx, self.augment, generator)]), torch.cat([y, by])

    def loss(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, exp: Experience) -> torch.Tensor:
        if not len(self.store):
            return F.cross_entropy(model(x, model.class_mask()), y)
        n = len(y) // (1 + self.replay_ratio)  # the first n: current items; the rest: replayed (`batches`)
        logits = model.head_logits(model.features(x))
        if self.ace:
            current = F.cross_entropy(masked(logits[:n], model.class_mask(exp.classes)), y[:n])
            replayed = F.cross_entropy(masked(logits[n:], model.class_mask()), y[n:])
            loss = (current + replayed) / 2
        else:
            loss = F.cross_entropy(masked(logits, model.class_mask()), y)
        if self.distill and self.targets is not None:
            cols = self.target_classes.to(logits.device)
            target = self._drawn.to(logits.device)[:, cols]
            loss = loss + self.distill * F.mse_loss(logits[n:][:, cols], target)
        return loss

    def after_experience(
        self, model: ContinualModel, exp: Experience, settings: TrainSettings, generator: torch.Generator
    ) -> None:
        refit = self.rebalance and len(self.store) > 0  # from the second experience on
        self.store.update(exp.train, generator)
        if not (refit or self.distill):
            return
        memory = self.store.data()
        z = memory_features(model, memory, settings.device)  # the encoder stays as it is from here
        if refit:
            refit_heads(model, z, memory.labels, settings, generator, self.rebalance)
        if self.distill:  # after the re-fit: targets without the bias towards the newest classes
            with torch.no_grad():
                self.targets = model.head_logits(z).cpu()
            self.target_classes = model.class_mask().cpu()

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffer": self.store.state_dict(),
            "targets": self.targets,
            "target_classes": self.target_classes,
        }

    def load_state_dict(self, state: dict[str, Any], model: ContinualModel) -> None:
        self.store.load_state_dict(state["buffer"])
        self.targets, self.target_classes = state.get("targets"), state.get("target_classes")
