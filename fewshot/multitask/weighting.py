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
        for t, loss in losses.items():
            if self.mode == "uncertainty":
                total = total + torch.exp(-self.log_vars[t]) * loss + self.log_vars[t]
            else:
                total = total + self.fixed[t] * loss
        return total

    @torch.no_grad()
    def task_weights(self) -> list[float]:
        """The weight each task's loss has now: ``w_t``, or ``exp(-s_t)``."""
        if self.mode == "uncertainty":
            return torch.exp(-self.log_vars).tolist()
        return self.fixed.tolist()


__all__ = ["WEIGHTINGS", "LossWeighting"]
