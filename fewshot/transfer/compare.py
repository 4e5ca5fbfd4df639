"""Several methods on the same episodes, shot by shot: one table and one plot.

For every number of shots the episodes are drawn once (or read from the given episode
files) and saved to an episode file that every method is evaluated on, so differences
between methods come from the methods, not from the episodes. Methods that share a frozen
encoder share one embedding of the data.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError
from fewshot.evaluation import evaluate
from fewshot.learners.base import caches_embeddings
from fewshot.sampling import EpisodeFile, EpisodeSampler


@dataclass
class CompareRow:
    """One method at one number of shots; ``mean`` and ``ci95`` are fractions. ``transductive``:
    the method scored each episode's queries jointly, using them unlabelled."""

    method: str
    shots: int
    ways: int
    queries: int
    mean: float
    ci95: float
    n_episodes: int
    seconds: float
    episode_file: str
    transductive: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def default_queries(labels: torch.Tensor, shots: list[int], wanted: int = 15) -> int:
    """As many queries per class as the smallest class allows at the largest shot, up to ``wanted``."""
    smallest = int(
        np.bincount(np.asarray(labels)).astype(np.int64)[np.bincount(np.asarray(labels)) > 0].min()
    )
    queries = min(wanted, smallest - max(shots))
    if queries < 1:
        raise FewshotError(
            f"the smallest class has {smallest} items: {max(shots)} shots leave no query; use fewer --shots"
        )
    return queries


def episode_files_for(
    labels: torch.Tensor,
    shots: list[int],
    ways: int,
    queries: int,
    episodes: int,
    seed: int,
    folder: Path,
    given: list[Path] | None = None,
    options: dict | None = None,
) -> dict[int, Path]:
    """One episode file per number of shots: the given files (keyed by their shots), else new ones
    (``options``: more `EpisodeSampler` arguments, such as ``class_groups`` or ``variable``)."""
    files: dict[int, Path] = {}
    for path in given or []:
        episode_file = EpisodeFile(path, labels)  # checks the file belongs to these data
        files[int(episode_file.shots)] = Path(path)
    for k in shots:
        if k not in files:
            sampler = EpisodeSampler(
                labels, ways, k, queries, episodes=episodes, seed=seed, **(options or {})
            )
            files[k] = sampler.save(folder / f"episodes-{ways}way-{k}shot-seed{seed}.npz")
    return {k: files[k] for k in sorted(files)}


def compare_methods(
    learners: dict[str, torch.nn.Module],
    data: LabeledTensors,
    episode_files: dict[int, Path],
    device: torch.device | str = "cpu",
    progress: bool | None = None,
    batch_size: int | None = None,
    data_for: dict[str, LabeledTensors] | None = None,
) -> list[CompareRow]:
    """Evaluate every learner on every episode file; rows ordered by method, then shots.

    ``progress``: bars while embedding and evaluating (None: on when stderr is a terminal).
    ``data_for``: a learner's own copy of the data (the same labels, its images prepared as its
    checkpoint expects), by name; the others use ``data``."""
    embeddings: dict[int, torch.Tensor] = {}
    rows = []
    for name, learner in learners.items():
        own = (data_for or {}).get(name, data)
        frozen = caches_embeddings(learner)
        for shots, path in episode_files.items():
            cached = None
            if frozen:
                key = id(learner.encoder)
                if key not in embeddings:
                    encoder = learner.encoder.to(device)
                    embeddings[key] = encoder.encode_batched(own.data, batch_size, progress=progress)
                cached = embeddings[key]
            result = evaluate(
                learner, own, episode_file=str(path), device=device, progress=progress, embeddings=cached
            )
            rows.append(
                CompareRow(
                    name,
                    shots,
                    result.ways,
                    result.queries,
                    result.mean,
                    result.ci95,
                    result.n_episodes,
                    result.seconds,
                    str(path),
                    bool(getattr(learner, "transductive", False)),
                )
            )
    return rows


def format_table(rows: list[CompareRow]) -> str:
    """Methods as rows, shots as columns: ``accuracy +- 95% CI`` in percent; transductive
    methods are marked ``*`` (with a note under the table)."""
    shots = sorted({r.shots for r in rows})
    marked = {r.method for r in rows if r.transductive}
    rows = [replace(r, method=f"{r.method} *") if r.method in marked else r for r in rows]
    methods = list(dict.fromkeys(r.method for r in rows))
    cell = {(r.method, r.shots): _cell(r) for r in rows}
    width = max([len("method")] + [len(m) for m in methods])
    col = max([14] + [len(v) for v in cell.values()])
    lines = [f"{'method':<{width}}  " + "  ".join(f"{f'{k}-shot':>{col}}" for k in shots)]
    for m in methods:
        lines.append(f"{m:<{width}}  " + "  ".join(f"{cell.get((m, k), '-'):>{col}}" for k in shots))
    if marked:
        lines.append("* transductive: uses each episode's unlabelled queries together")
    return "\n".join(lines)


def _cell(row: CompareRow) -> str:
    """``accuracy +- ci`` in percent; "n/a" where a number is not finite (never "nan +- nan")."""
    if not np.isfinite(row.mean):
        return "n/a"
    ci = f"{100 * row.ci95:.2f}" if np.isfinite(row.ci95) else "n/a"
    return f"{100 * row.mean:.2f} +- {ci}"


def _clipped_errors(means: list[float], cis: list[float], top: float = 100.0) -> list[list[float]]:
    """Asymmetric error bars ``[below, above]`` that stop at 0 and ``top`` (accuracy is in [0, 100])."""
    below = [min(ci, mean) for mean, ci in zip(means, cis, strict=True)]
    above = [min(ci, top - mean) for mean, ci in zip(means, cis, strict=True)]
    return [below, above]


def plot_rows(rows: list[CompareRow], path: str | Path, title: str = "") -> Path:
    """Accuracy (%) against shots (log2 axis) with 95% CI error bars, one line per method (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise FewshotError(
            "plotting needs matplotlib: pip install 'fewshot[plot]' (or pip install matplotlib)"
        ) from err
    from fewshot.fileio import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(8.0, 4.4), dpi=120)
    shots = sorted({r.shots for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    colours = plt.get_cmap("tab20").colors  # 20 distinct colours: no two methods share one
    transductive = {r.method for r in rows if r.transductive}
    for i, method in enumerate(methods):
        mine = sorted((r for r in rows if r.method == method), key=lambda r: r.shots)
        dodge = 2 ** (0.04 * (i - (len(methods) - 1) / 2))  # side by side, so error bars stay visible
        means = [100 * r.mean for r in mine]
        ax.errorbar(
            [r.shots * dodge for r in mine],
            means,
            yerr=_clipped_errors(means, [100 * r.ci95 for r in mine]),
            marker="o",
            capsize=3,
            color=colours[i % len(colours)],
            linestyle="--" if method in transductive else "-",
            label=f"{method} *" if method in transductive else method,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots)
    ax.set_xticklabels([str(k) for k in shots])
    ax.set_xlabel("shots (support items per class)")
    ax.set_ylabel("accuracy (%), 95% CI")
    ax.grid(True, alpha=0.3)
    ax.legend(  # beside the axes, never over the lines
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title="* transductive" if transductive else None,
        title_fontsize=8,
    )
    top = max([100 * (r.mean + r.ci95) for r in rows] + [0.0])
    if top >= 99.0:  # room for the markers at 100%, and no axis beyond it
        ax.set_ylim(top=100.5)
    if title:
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(title, width=60)), fontsize=9)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def temporary_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="fewshot-compare-")
