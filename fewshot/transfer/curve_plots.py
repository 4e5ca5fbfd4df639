"""The PNG of `fewshot curves`: learning curves (left) and data efficiency (right), pretrained
against scratch, with 95% intervals as bands. matplotlib is imported only here."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

COLOURS = {"pretrained": "tab:blue", "scratch": "tab:orange"}


def _band(ax, x, mean, half, colour, label) -> None:
    mean, half = np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(half, dtype=float))
    ax.plot(x, 100 * mean, "o-", color=colour, label=label, markersize=4)
    low, high = np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)  # accuracy stays in [0, 1]
    ax.fill_between(x, 100 * low, 100 * high, color=colour, alpha=0.2, linewidth=0)


def plot_curves(report: dict, path: str | Path) -> list[str]:
    """Draw both panels into ``path`` (written atomically); returns ``[path]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fewshot.fileio import atomic_write_bytes

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    curves = report["learning_curves"]
    for init in ("pretrained", "scratch"):
        c = curves[init]
        _band(left, c["steps"], c["mean"], c["ci95"], COLOURS[init], init)
    left.set(xlabel="optimisation steps", ylabel="test accuracy (%)")
    left.set_title(f"learning curves, {curves['size']} labelled per class")
    sizes = report["sizes"]
    per_class = [s["train_items"] / report["classes"] for s in sizes]
    for init in ("pretrained", "scratch"):
        mean = [s[init]["accuracy"]["mean"] for s in sizes]
        half = [s[init]["accuracy"]["ci95"] for s in sizes]
        _band(right, per_class, mean, half, COLOURS[init], init)
    right.set_xscale("log")
    right.set_xticks(
        per_class,
        [s["size"] if s["size"] != "all" else f"all\n({per_class[i]:.0f})" for i, s in enumerate(sizes)],
    )
    right.minorticks_off()
    right.set(xlabel="labelled images per class", ylabel="test accuracy (%)")
    right.set_title("data efficiency (last epoch)")
    worse = [
        s["size"]
        for s in sizes
        if s["negative_transfer"]["gap"] > 0 and not math.isnan(s["negative_transfer"]["gap"])
    ]
    if worse:
        right.text(
            0.02,
            0.02,
            f"scratch better at: {', '.join(worse)} per class",
            transform=right.transAxes,
            fontsize=8,
        )
    for ax in (left, right):
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(
        f"{report['encoder']} on {report['data']} ({report['settings']['seeds']} seeds, 95% t-intervals)",
        fontsize=10,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return [str(path)]
