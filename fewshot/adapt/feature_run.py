"""Frozen-feature adaptation as a `fewshot.run_loop` task: a unit is one hyperparameter value.

The encoder embeds the source and target items once; each unit fits the method with the next
value of its ``grid`` hyperparameter (or the one value the user fixed), trains the linear head
on the mapped source features, folds the target map into it, and scores the target
predictions with the validator (no target labels). The best head is kept in the state, so a
killed run resumes at the next value.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fewshot.adapt.base import FeatureAdapter
from fewshot.adapt.config import AdaptConfig
from fewshot.adapt.heads import fit_linear_head, fold, head_logits
from fewshot.adapt.selection import score, scores
from fewshot.adapt.trainer import accuracy_of
from fewshot.run_loop import RunTask


def candidates(cls: type[FeatureAdapter], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The hyperparameters of every unit: the grid's values unless the user fixed that one."""
    if cls.grid is None or cls.grid[0] in params:
        return [dict(params)]
    name, values = cls.grid
    return [{**params, name: value} for value in values]


class FeatureAdaptation(RunTask):
    """Fit `cls` on features ``zs (ns, d)`` with labels ``ys`` and ``zt (nt, d)``, one grid value a unit."""

    command, unit = "adapt", "setting"

    def __init__(
        self,
        cls: type[FeatureAdapter],
        zs: torch.Tensor,
        ys: torch.Tensor,
        zt: torch.Tensor,
        n_classes: int,
        config: AdaptConfig,
        target_labels: torch.Tensor | None = None,
    ) -> None:
        self.cls, self.zs, self.ys, self.zt, self.n_classes = cls, zs, ys, zt, n_classes
        self.config, self.target_labels = config, target_labels
        self.settings = candidates(cls, config.params)
        self.total = len(self.settings)
        self.history: list[dict[str, Any]] = []
        self.best_head: tuple[torch.Tensor, torch.Tensor] | None = None
        self.best_params: dict[str, Any] = {}

    def source_only_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return fit_linear_head(self.zs, self.ys, self.n_classes)

    def run_unit(self, index: int) -> None:
        params = self.settings[index]
        adapter = self.cls(**params).fit(self.zs, self.ys, self.zt)
        head = fit_linear_head(adapter.source_features(self.zs), self.ys, self.n_classes)
        self.current = fold(head, adapter.target_map()), params
        self.history.append(
            {"unit": index + 1, "phase": "adapt", **{k: _plain(v) for k, v in params.items()}}
        )

    def validate(self, done: int) -> float:
        p = head_logits(self.current[0], self.zt).softmax(-1)
        row = self.history[-1]
        row.update({k: round(v, 6) for k, v in scores(p).items()})
        acc = accuracy_of(p, self.target_labels)
        row["target_accuracy"] = None if acc is None else round(acc, 6)
        value = score(self.config.select, p)
        return value if math.isfinite(value) else -math.inf

    def keep_best(self, out, done: int, score_: float) -> None:
        self.best_head, self.best_params = self.current

    def training_state(self) -> dict[str, Any]:
        head = {} if self.best_head is None else {"weight": self.best_head[0], "bias": self.best_head[1]}
        params = {k: _plain(v) for k, v in self.best_params.items()}
        return {"best_head": head, "best_params": params, "history": self.history}

    def restore(self, state: dict[str, Any]) -> None:
        head = state["best_head"]
        self.best_head = (head["weight"], head["bias"]) if head else None
        self.best_params = dict(state["best_params"])
        self.history = list(state["history"])


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, bool, str)) or value is None else str(value)


__all__ = ["FeatureAdaptation", "candidates"]
