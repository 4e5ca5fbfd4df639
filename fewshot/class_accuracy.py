"""Per-class and worst-class accuracy, and the same by group, so that a class (or a group of
classes: a folder level, a source) that a model fails does not hide in the mean.

``group_level`` names a level of the class path: image-folder classes are named by their
path under the root (``animals/dog``), and level 1 groups them by their first folder
(``animals``), level 2 by the first two; a class with fewer levels is its own group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def group_of(class_name: str, level: int) -> str:
    """The first ``level`` folders of a class path (``animals/dog``, 1 -> ``animals``)."""
    parts = class_name.split("/")
    return "/".join(parts[:level]) if len(parts) > level else class_name


class ClassTally:
    """Correct and total counts per class id, added to as predictions come."""

    def __init__(self, n_classes: int) -> None:
        self.correct = np.zeros(n_classes, dtype=np.int64)
        self.total = np.zeros(n_classes, dtype=np.int64)

    def add(self, class_ids: Any, correct: Any) -> None:
        """``class_ids`` and ``correct`` of the same shape (numpy or tensors; any shape)."""
        ids = _numpy(class_ids).reshape(-1).astype(np.int64)
        hits = _numpy(correct).reshape(-1).astype(np.int64)
        keep = ids >= 0  # padding of variable episodes
        np.add.at(self.correct, ids[keep], hits[keep])
        np.add.at(self.total, ids[keep], 1)

    def report(self, class_names: Sequence[str], group_level: int | None = None) -> dict[str, Any]:
        """``per_class`` {name: {accuracy, items}} of the classes seen, ``worst_class``, and with
        ``group_level`` ``per_group`` / ``worst_group`` (items pooled within a group)."""
        seen = np.flatnonzero(self.total > 0)
        per_class = {
            str(class_names[c]): {
                "accuracy": float(self.correct[c] / self.total[c]),
                "items": int(self.total[c]),
            }
            for c in seen
        }
        out: dict[str, Any] = {"per_class": per_class, "worst_class": _worst(per_class, "class")}
        if per_class:
            out["mean_per_class"] = float(np.mean([v["accuracy"] for v in per_class.values()]))
        if group_level is not None:
            groups: dict[str, list[int]] = {}
            for c in seen:
                group = groups.setdefault(group_of(str(class_names[c]), group_level), [0, 0])
                group[0] += int(self.correct[c])
                group[1] += int(self.total[c])
            per_group = {g: {"accuracy": hit / n, "items": n, "classes": 0} for g, (hit, n) in groups.items()}
            for c in seen:
                per_group[group_of(str(class_names[c]), group_level)]["classes"] += 1
            out.update(per_group=per_group, worst_group=_worst(per_group, "group"), group_level=group_level)
        return out


def class_accuracy(
    predictions: Any, labels: Any, class_names: Sequence[str], group_level: int | None = None
) -> dict[str, Any]:
    """`ClassTally.report` of predicted against true labels ``(n,)``."""
    tally = ClassTally(len(class_names))
    tally.add(labels, _numpy(predictions) == _numpy(labels))
    return tally.report(class_names, group_level)


def worst_lines(report: dict[str, Any], show: int = 3) -> list[str]:
    """Table lines: the worst classes (and the worst group) with their accuracy."""
    per_class = report.get("per_class") or {}
    if not per_class:
        return []
    ranked = sorted(per_class.items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))[:show]
    worst = ", ".join(f"{name} {100 * v['accuracy']:.1f}% ({v['items']})" for name, v in ranked)
    lines = [
        f"worst classes: {worst}; mean per class {100 * report['mean_per_class']:.2f}% over {len(per_class)}"
    ]
    if report.get("worst_group"):
        groups = sorted(report["per_group"].items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))
        shown = ", ".join(
            f"{g} {100 * v['accuracy']:.1f}% ({v['classes']} classes)" for g, v in groups[:show]
        )
        lines.append(f"by folder level {report['group_level']}: worst {shown}")
    return lines


def _worst(table: dict[str, dict], what: str) -> dict[str, Any] | None:
    if not table:
        return None
    name = min(table, key=lambda k: (table[k]["accuracy"], k))
    return {what: name, **table[name]}


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
