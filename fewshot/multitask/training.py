"""One multi-task model trained step by step: the settings and the step.

A step draws its tasks (`sampling.TaskBatches`), runs one forward pass per distinct drawn task
on its batches (a task drawn twice gives one pass over twice the items), combines the tasks'
mean cross-entropies (`weighting.LossWeighting`) and takes one optimiser step on the encoder
and the heads and, with uncertainty weighting, one Adam step on the ``s_t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError
from fewshot.multitask.model import MultiTaskModel
from fewshot.multitask.sampling import SAMPLINGS, TaskBatches
from fewshot.multitask.weighting import WEIGHTINGS, LossWeighting


@dataclass
class MultiTaskSettings:
    """How a multi-task model is trained (the options of `fewshot multitask`)."""

    steps: int = 500
    batch_size: int = 32  # items per drawn task
    lr: float = 0.01
    optimizer: str = "sgd"  # sgd (momentum 0.9) or adam
    sampling: str = "proportional"
    weighting: str = "fixed"
    weights: list[float] | None = None  # fixed weighting: one per task (default 1 each)
    tasks_per_step: int | None = None  # tasks drawn per step (default: the number of tasks)
    eval_every: int = 100  # steps per unit of the run: a resumable state after each
    device: str = "cpu"

    def check(self, n_tasks: int) -> None:
        """One line naming the option for a setting that cannot work with `n_tasks` tasks."""
        if self.sampling not in SAMPLINGS:
            raise FewshotError(f"--sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.weighting not in WEIGHTINGS:
            raise FewshotError(f"--weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise FewshotError(f"--optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.weights is not None:
            if self.weighting != "fixed":
                raise FewshotError("--weights are fixed weights: they need --weighting fixed")
            if len(self.weights) != n_tasks:
                raise FewshotError(f"--weights: give one per task ({n_tasks}), got {len(self.weights)}")
            if min(self.weights) < 0 or not sum(self.weights) > 0:
                raise FewshotError(f"--weights must be >= 0 and not all 0, got {self.weights}")
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1 or not self.lr > 0:
            raise FewshotError("--steps, --batch-size and --eval-every must be >= 1 and --lr > 0")
        if self.tasks_per_step is not None and self.tasks_per_step < 1:
            raise FewshotError(f"--tasks-per-step must be >= 1, got {self.tasks_per_step}")


class MultiTaskTraining:
    """A `MultiTaskModel` on `tasks` (labels ``0..C_t-1`` each), its optimiser and sampler.

    Heads (and nothing else) are drawn from `seed`; the encoder is used as given (trained in
    place). Every draw of the sampler comes from a generator seeded with `seed`.
    """

    def __init__(
        self,
        encoder: torch.nn.Module,
        tasks: Sequence[LabeledTensors],
        settings: MultiTaskSettings,
        seed: int,
    ) -> None:
        from fewshot.seeding import seeded

        self.tasks, self.settings, self.device = list(tasks), settings, torch.device(settings.device)
        with seeded(seed):
            weighting = LossWeighting(len(tasks), settings.weighting, settings.weights)
            self.model = MultiTaskModel(encoder, [t.n_classes for t in tasks], weighting).to(self.device)
        log_vars = self.model.weighting.log_vars
        params = [p for p in self.model.parameters() if p.requires_grad and p is not log_vars]
        if settings.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=settings.lr)
        else:
            self.optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=0.9)
        # The s_t take Adam's bounded steps whatever the network's optimiser: their gradient
        # 1 - exp(-s_t) L_t is unbounded, and under SGD with momentum one loss spike of a
        # memorised task (L_t near 0, s_t near -4) threw s_t to 15 and on to 58 (weight 1e-25).
        self.weighting_optimizer = (
            torch.optim.Adam([log_vars], lr=settings.lr) if isinstance(log_vars, torch.nn.Parameter) else None
        )
        generator = torch.Generator().manual_seed(seed)
        sizes = [len(t) for t in tasks]
        self.batches = TaskBatches(
            sizes, settings.sampling, settings.batch_size, generator, settings.tasks_per_step
        )
        self.steps_done = 0

    def step(self) -> dict[int, float]:
        """One optimiser step; returns each drawn task's mean loss."""
        drawn: dict[int, list[torch.Tensor]] = {}
        for t in self.batches.step_tasks():
            drawn.setdefault(t, []).append(self.batches.next_batch(t))
        self.model.train()
        losses = {}
        for t, parts in sorted(drawn.items()):
            idx = torch.cat(parts)
            x = self.tasks[t].data[idx].to(self.device)
            y = self.tasks[t].labels[idx].to(self.device)
            losses[t] = F.cross_entropy(self.model(x, t), y)
        loss = self.model.weighting(losses)
        optimizers = [o for o in (self.optimizer, self.weighting_optimizer) if o is not None]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        self.steps_done += 1
        return {t: float(v.detach()) for t, v in losses.items()}

    def train_steps(self, n: int) -> list[float | None]:
        """`n` steps; each task's mean loss over the steps that drew it (None: not drawn)."""
        sums, counts = [0.0] * len(self.tasks), [0] * len(self.tasks)
        for _ in range(n):
            for t, value in self.step().items():
                sums[t] += value
                counts[t] += 1
        self.model.eval()
        return [s / c if c else None for s, c in zip(sums, counts, strict=True)]

    def accuracies(self, tests: Sequence[LabeledTensors]) -> list[float]:
        """Each task's test accuracy (test labels in the task's ``0..C_t-1``)."""
        return [self.model.accuracy(t.data, t.labels, i) for i, t in enumerate(tests)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "weighting_optimizer": None
            if self.weighting_optimizer is None
            else self.weighting_optimizer.state_dict(),
            "sampler": self.batches.state_dict(),
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.weighting_optimizer is not None:
            self.weighting_optimizer.load_state_dict(state["weighting_optimizer"])
        self.batches.load_state_dict(state["sampler"])
        self.steps_done = int(state["steps_done"])


__all__ = ["MultiTaskSettings", "MultiTaskTraining"]
