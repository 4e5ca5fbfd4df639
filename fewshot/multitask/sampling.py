"""Which tasks a multi-task step trains on, and each task's next mini-batch.

Each step draws ``tasks_per_step`` task indices (default: as many as there are tasks) with
replacement, with probabilities

- ``proportional``: ``p_t = n_t / sum_u n_u`` (``n_t`` the task's training items), so every
  training item is about equally likely to be seen, and big tasks dominate;
- ``uniform``: ``p_t = 1 / T``, so a small task is trained as often as a big one.

A drawn task gives its next ``batch_size`` items from a shuffled pass over its items (a new
order each pass), so within a pass no item repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

SAMPLINGS = ("proportional", "uniform")


def task_probabilities(sizes: Sequence[int], sampling: str) -> np.ndarray:
    """``(T,)`` probability of drawing each task (see the module docstring)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if sampling == "uniform":
        return np.full(len(sizes), 1.0 / len(sizes))
    return sizes / sizes.sum()


class TaskBatches:
    """Draws a step's tasks and each task's next mini-batch of item indices.

    Args:
        sizes: training items of each task.
        sampling: ``proportional`` or ``uniform``.
        batch_size: items per drawn task.
        generator: every draw comes from it (its state is the sampler's state, with the passes).
        tasks_per_step: tasks drawn per step (default ``len(sizes)``).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        sampling: str,
        batch_size: int,
        generator: torch.Generator,
        tasks_per_step: int | None = None,
    ) -> None:
        self.sizes, self.batch_size, self.generator = [int(n) for n in sizes], int(batch_size), generator
        self.probs = torch.as_tensor(task_probabilities(self.sizes, sampling))
        self.tasks_per_step = int(tasks_per_step or len(self.sizes))
        self.orders: list[torch.Tensor] = [torch.empty(0, dtype=torch.long) for _ in self.sizes]
        self.positions = [0] * len(self.sizes)
        self.draws = [0] * len(self.sizes)  # batches given out per task

    def step_tasks(self) -> list[int]:
        """The task indices of one step (with replacement, in draw order)."""
        if len(self.sizes) == 1:
            return [0] * self.tasks_per_step
        picked = torch.multinomial(
            self.probs, self.tasks_per_step, replacement=True, generator=self.generator
        )
        return picked.tolist()

    def next_batch(self, task: int) -> torch.Tensor:
        """``(b,)`` item indices of `task`'s next mini-batch (``b = min(batch_size, n_t)``)."""
        size = self.sizes[task]
        take = min(self.batch_size, size)
        if self.positions[task] + take > len(self.orders[task]):
            self.orders[task] = torch.randperm(size, generator=self.generator)
            self.positions[task] = 0
        start = self.positions[task]
        self.positions[task] += take
        self.draws[task] += 1
        return self.orders[task][start : start + take]

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "orders": list(self.orders),
            "positions": list(self.positions),
            "draws": list(self.draws),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.orders = [o.cpu() for o in state["orders"]]
        self.positions, self.draws = list(state["positions"]), list(state["draws"])


__all__ = ["SAMPLINGS", "TaskBatches", "task_probabilities"]
