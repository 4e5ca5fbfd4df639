"""How a MAML learner runs a batch of tasks: the auto-tuner that picks the strategy, and the
batch methods of the learner contract that run it (`MetaBatching`, mixed into `MAML`).

With strategy ``auto`` the strategy is ``loop`` on a CPU (measured fastest there, see
benchmarks/RESULTS.md); on other devices every strategy of `fewshot.learners.maml_strategies`
is timed once on the first meta-batch of each shape, and the fastest is kept in the learner's
``_chosen`` cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

import torch

from fewshot.encoders.conv4 import Conv4
from fewshot.learners.maml_strategies import (
    STRATEGIES,
    MetaLearner,
    batch_query_logits,
    loop_meta_backward,
    stack_episodes,
    stacked_meta_loss,
)

if TYPE_CHECKING:
    from fewshot.episodes import Episode


def resolve_strategy(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    train: bool,
) -> str:
    """The learner's strategy; for ``auto``, the fastest for these shapes (timed once, then cached)."""
    if learner.strategy != "auto":
        return learner.strategy
    device = support_x.device
    if device.type == "cpu":
        return "loop"
    key = (device.type, tuple(support_x.shape), tuple(query_x.shape), train)
    if key not in learner._chosen:
        stacks = (support_x, support_y, query_x, query_y)
        candidates = [s for s in STRATEGIES if s != "grouped" or isinstance(learner.encoder, Conv4)]
        timings = {name: _time_strategy(learner, name, stacks, train) for name in candidates}
        learner._chosen[key] = min(timings, key=timings.get)
    return learner._chosen[key]


def _time_strategy(learner: MetaLearner, name: str, stacks: tuple[torch.Tensor, ...], train: bool) -> float:
    """Seconds of one call of strategy `name` (with the meta-backward when training)."""
    seconds = 0.0
    for _ in range(2):  # the first call warms up kernels
        _sync(stacks[0].device)
        start = time.perf_counter()
        if train:
            loss = stacked_meta_loss(learner, *stacks, name)[0]
            torch.autograd.grad(loss, list(learner.parameters()), allow_unused=True)
        else:
            batch_query_logits(learner, name, *stacks[:3], learner.test_inner_steps, False)
        _sync(stacks[0].device)
        seconds = time.perf_counter() - start
    return seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class MetaBatching:
    """The batch methods of MAML's learner contract; the class they are mixed into provides
    the `MetaLearner` protocol and ``check_ways(ways)`` (refuses more ways than the head has)."""

    def meta_batch_loss(self, episodes: list[Episode]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss and accuracy over a meta-batch of same-shape episodes (one meta-step)."""
        self.check_ways(episodes[0].ways)
        stacks = stack_episodes(episodes)
        return stacked_meta_loss(self, *stacks, resolve_strategy(self, *stacks, train=True))

    def meta_batch_backward(
        self,
        episodes: list[Episode],
        autocast: Callable[[], AbstractContextManager] = nullcontext,
        scale: Callable[[torch.Tensor], torch.Tensor] = lambda loss: loss,
    ) -> tuple[float, float]:
        """Accumulate one meta-step's gradient into ``.grad``; returns (mean query loss, accuracy).

        The gradient is that of `meta_batch_loss`. With the ``loop`` strategy each task's query
        loss is back-propagated as soon as it is computed, as learn2learn's recipe does, so only
        one task's graph is alive at a time (less memory, and faster on a CPU); the vectorised
        strategies back-propagate the whole meta-batch at once. Forward passes run under
        `autocast()`; `scale` wraps each loss before its backward (a GradScaler's ``scale``).
        """
        self.check_ways(episodes[0].ways)
        stacks = stack_episodes(episodes)
        strategy = resolve_strategy(self, *stacks, train=True)
        if strategy == "loop":
            return loop_meta_backward(self, episodes, autocast, scale)
        with autocast():
            loss, accuracy = stacked_meta_loss(self, *stacks, strategy)
        scale(loss).backward()
        return loss.item(), accuracy.item()

    @torch.no_grad()
    def batch_episode_predictions(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Many test episodes at once (fit + predict): ``(B, n_s, ...)``, ``(B, n_s)``, ``(B, n_q, ...)``
        -> predicted labels ``(B, n_q)``. The stored meta-parameters are not changed."""
        self.check_ways(int(support_y.max()) + 1)
        query_y = torch.zeros(query_x.shape[:2], dtype=torch.long, device=query_x.device)
        strategy = resolve_strategy(self, support_x, support_y, query_x, query_y, train=False)
        logits = batch_query_logits(
            self, strategy, support_x, support_y, query_x, self.test_inner_steps, False
        )
        return logits.argmax(-1)


__all__ = ["MetaBatching", "resolve_strategy"]
