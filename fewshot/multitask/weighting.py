"""How the tasks' losses of a step add up into the one loss the step minimises.

With ``L_t`` the mean cross-entropy of task ``t``'s batches in the step (only the tasks
drawn in it):

- ``fixed``: ``L = sum_t w_t * L_t``, the user's weights ``w_t`` (default 1 each);
- ``uncertainty`` (Kendall, Gal and Cipolla, CVPR 2018, "Multi-task learning using
  uncertainty to weigh losses"): ``L = sum_t exp(-s_t) * L_t + s_t`` with one learned
  ``s_t = log sigma_t^2`` per task (initially 0), trained with the network. A task whose loss
  stays high (noisy or hard) gets a larger ``s_t`` and so a smaller weight ``exp(-s_t)``; the
  ``+ s_t`` term stops ``s_t`` from growing without bound (at the optimum ``exp(-s_t) = 1/L_t``).
  This is the form the paper's classification likelihood reduces to, as commonly implemented.
  The ``s_t`` are trained on that loss; the network's gradient is that of
  ``sum_t (w_t / mean_u w_u) * L_t`` with ``w_t = exp(-s_t)`` held fixed: the learned weights
  set the tasks' relative importance, not the step size (GradNorm renormalises its weights the
  same way). Unnormalised, a memorised task (``L_t`` near 0.001) drew a weight of 80, and SGD
  with momentum diverged on every task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

WEIGHTINGS = ("fixed", "uncertainty")


class LossWeighting(nn.Module):
    """Combines per-task losses (see the module docstring).

    Args:
        n_tasks: T.
        mode: ``fixed`` or ``uncertainty``.
        weights: ``fixed``: ``(T,)`` weights (default all 1).

    ``log_vars`` ``(T,)`` is a parameter (``uncertainty``) or a zero buffer (``fixed``).
    """

    def __init__(self, n_tasks: int, mode: str = "fixed", weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.mode = mode
        fixed = torch.ones(n_tasks) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.register_buffer("fixed", fixed.clone())
        if mode == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(n_tasks))
        else:
            self.register_buffer("log_vars", torch.zeros(n_tasks))

    def forward(self, losses: dict[int, torch.Tensor]) -> torch.Tensor:
        """``{task: scalar loss}`` -> the step's scalar loss."""
        total = torch.zeros((), device=self.fixed.device)
        if self.mode != "uncertainty":
            for t, loss in losses.items():
                total = total + self.fixed[t] * loss
            return total
        drawn = sorted(losses)
        weights = torch.exp(-self.log_vars[drawn])
        relative = (weights / weights.mean()).detach()  # the network's weights, mean 1
        for i, t in enumerate(drawn):
            loss, fixed = losses[t], losses[t].detach()
            # the value is the paper's objective; the s_t see it with L_t held fixed and the
            # network sees relative[i] * L_t (the last two terms cancel in value)
            total = total + weights[i] * fixed + self.log_vars[t] + relative[i] * (loss - fixed)
        return total

    @torch.no_grad()
    def task_weights(self) -> list[float]:
        """The weight each task's loss has now: ``w_t``, or ``exp(-s_t)``."""
        if self.mode == "uncertainty":
            return torch.exp(-self.log_vars).tolist()
        return self.fixed.tolist()


__all__ = ["WEIGHTINGS", "LossWeighting"]
