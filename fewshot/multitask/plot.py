"""The picture of a multi-task run: each task's test accuracy, shared model beside its own."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def accuracy_bars(report: dict[str, Any]) -> bytes:
    """PNG bytes: per task, a bar for the shared model and one for the task's own model (when
    the baseline ran), each labelled with its accuracy; no timings (a rerun draws the same)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = report["tasks"]
    x = np.arange(len(tasks))
    series = [("shared model", "shared_accuracy", "#1f77b4")]
    if report.get("single"):
        series.append(("one model per task", "single_accuracy", "#ff7f0e"))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(tasks), 4.2))
    for k, (label, key, colour) in enumerate(series):
        values = [t[key] or 0.0 for t in tasks]
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label, color=colour)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8, padding=2)
    names = [Path(t["name"].rstrip("/")).name or t["name"] for t in tasks]  # a folder: its own name
    ax.set_xticks(
        x, [f"{n}\n({t['classes']} classes)" for n, t in zip(names, tasks, strict=True)], fontsize=8
    )
    ax.set(ylabel="test accuracy", ylim=(0, 1.12))
    ax.set_title(f"multi-task ({report['sampling']} sampling, {report['weighting']} weights)", fontsize=10)
    ax.legend(fontsize=8, loc="upper right", ncol=len(series))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


__all__ = ["accuracy_bars"]
