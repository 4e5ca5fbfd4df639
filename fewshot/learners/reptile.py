"""Reptile (Nichol, Achiam and Schulman, 2018): first-order meta-learning by interpolation.

For each task of a meta-batch, the network (encoder plus a ``ways``-output head, as MAML's)
is adapted by ``inner_steps`` SGD steps on the task's support set, with MAML's functional
inner loop (`fewshot.learners.maml.MAML._inner_loop`, shared, not rewritten: the stored
weights are never changed by the inner loop). The meta-update moves the weights towards the
adapted ones,

    theta <- theta + epsilon * (mean_i phi_i - theta),

which the toolkit's training loop performs through the existing hooks: ``meta_batch_backward``
stores ``theta - mean_i phi_i`` in ``.grad`` (the "Reptile gradient") and the optimiser
steps on it. With plain SGD of learning rate ``epsilon`` that is exactly the interpolation;
`fewshot train` uses Adam on it, the variant the paper describes ("treat ``theta - phi`` as a
gradient and plug it into an adaptive algorithm such as Adam"). No second-order term is ever
computed. The loss reported while training is the query loss of the adapted weights (the
queries play no part in the update: train with more shots than you test, as the paper does,
e.g. ``--shots 10`` for 5-way 1-shot Omniglot, and few queries).

**Transductive** (flagged ``transductive = True``): the network's BatchNorm uses batch
statistics, as MAML's does, so at test time the task's queries are normalised together; this
is the paper's "transduction" setting (its headline Omniglot and miniImageNet numbers).

Defaults: the paper's Omniglot settings where they carry over: 5 inner steps in training, 50
at test, a meta-batch of 5 tasks, a constant meta learning rate. The paper's inner optimiser is
Adam (lr 1e-3); the shared inner loop is plain SGD, with step size ``inner_lr`` 0.1 (MAML's
20-way step size; it suits 5 steps).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.maml import MAML
from fewshot.learners.maml_strategies import Params, Strategy, _WithGradients
from fewshot.sampling import Episode


@LEARNERS.register("reptile")
class Reptile(MAML):
    """Reptile over an encoder plus a ``ways``-output linear head (first-order by construction).

    Args:
        encoder: maps ``(n, C, H, W)`` to ``(n, d)``; its BatchNorm layers use batch statistics.
        ways: classes per training task (outputs of the head).
        inner_lr: SGD step size of the inner loop.
        inner_steps: inner steps per training task (the paper: 5 on Omniglot, 8 on miniImageNet).
        test_inner_steps: inner steps in ``fit`` (the paper: 50).
        strategy: how ``fit`` on a block of test episodes runs (MAML's strategies).

    Shapes: as `MAML`: ``fit(support_x (N*K, C, H, W), support_y (N*K,))``;
    ``logits(query_x (M, C, H, W))`` -> ``(M, N)``.
    """

    transductive = True

    def __init__(
        self,
        encoder: Encoder,
        ways: int = 5,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        test_inner_steps: int = 50,
        strategy: Strategy = "auto",
    ) -> None:
        super().__init__(
            encoder,
            ways,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            test_inner_steps=test_inner_steps,
            first_order=True,
            strategy=strategy,
        )

    def adapt(self, episode: Episode, steps: int | None = None) -> Params:
        """The weights adapted to the episode's support set (detached): MAML's inner loop."""
        start = {n: p.detach().requires_grad_() for n, p in self.meta_parameters().items()}
        with torch.enable_grad():
            adapted = self._inner_loop(
                start, episode.support_x, episode.support_y, episode.ways, steps or self.inner_steps, False
            )
        return {n: p.detach() for n, p in adapted.items()}

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """The adapted weights' query loss, whose gradient is the Reptile direction ``theta - phi``
        (``loss.backward()`` puts it in ``.grad``), and their query accuracy."""
        self.check_ways(episode.ways)
        adapted = self.adapt(episode)
        with torch.no_grad():
            loss, logits = self._query_loss(adapted, episode.query_x, episode.query_y, episode.ways)
        params = self.meta_parameters()
        directions = [p.detach() - adapted[n] for n, p in params.items()]
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return _WithGradients.apply(loss.detach().float(), directions, *params.values()), accuracy

    def meta_batch_loss(self, episodes: list[Episode]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of `episode_loss` over a meta-batch: its gradient is ``theta - mean_i phi_i``."""
        losses, accuracies = zip(*(self.episode_loss(e) for e in episodes), strict=True)
        return torch.stack(losses).mean(), torch.stack(accuracies).mean()

    def meta_batch_backward(
        self,
        episodes: list[Episode],
        autocast: Callable[[], AbstractContextManager] = nullcontext,
        scale: Callable[[torch.Tensor], torch.Tensor] = lambda loss: loss,
    ) -> tuple[float, float]:
        """Put ``theta - mean_i phi_i`` in ``.grad``, one task at a time; returns (mean query
        loss, accuracy). Forward passes run under `autocast()`; `scale` wraps each loss before its
        backward (a GradScaler's ``scale``; the optimiser step unscales it)."""
        total_loss, total_accuracy = 0.0, 0.0
        for episode in episodes:
            with autocast():
                loss, accuracy = self.episode_loss(episode)
            scale(loss / len(episodes)).backward()
            total_loss += loss.item() / len(episodes)
            total_accuracy += accuracy.item() / len(episodes)
        return total_loss, total_accuracy

    def train_defaults(self) -> dict:
        """The paper's meta-batch of 5 tasks and a constant meta learning rate."""
        return {"meta_batch": 5, "lr_step": 0}
