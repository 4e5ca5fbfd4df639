"""The picture of a continual run: accuracy on each experience after each training step."""

from __future__ import annotations

import io
from typing import Any


def accuracy_plot(report: dict[str, Any]) -> bytes:
    """PNG bytes: one line per experience (its test accuracy after each training step, from the
    step it was trained on), the average accuracy so far in black, and the matrix R as a heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    R = np.asarray(report["accuracy_matrix"], dtype=float)
    done, T = R.shape
    names = [e["name"] for e in report["experiences"]]
    steps = np.arange(1, done + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.5, 1]})
    for j in range(min(done, T)):
        left.plot(steps[j:], R[j:, j], marker="o", label=names[j])
    average = report["metrics"].get("average_accuracy_per_step", [])
    left.plot(steps[: len(average)], average, color="black", lw=2.5, ls="--", label="average so far")
    left.set(xlabel="after training experience", ylabel="test accuracy", ylim=(0, 1.02), xticks=steps)
    left.set_title(f"{report['strategy']}, {report['scenario']}")
    left.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower left", ncol=2)
    image = right.imshow(R, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(done):
        for j in range(T):
            right.text(
                j,
                i,
                f"{R[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if R[i, j] < 0.6 else "black",
            )
    right.set(xlabel="tested on experience", ylabel="after training experience", title="accuracy matrix R")
    right.set_xticks(range(T), [str(j + 1) for j in range(T)])
    right.set_yticks(range(done), [str(i + 1) for i in range(done)])
    fig.colorbar(image, ax=right, fraction=0.046)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


__all__ = ["accuracy_plot"]
