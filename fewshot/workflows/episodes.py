"""How a command's episodes are drawn: the options `train`, `eval` and `compare` share
(``--within-group``, ``--skip-small-groups``, ``--variable-episodes``, ``--rotations``)."""

from __future__ import annotations

from typing import Any

from fewshot.errors import FewshotError


def rotated_split(dataset: str, split: str | None, rotations: bool | None) -> str | None:
    """The split that asks for rotated copies as extra classes (or none); ``rotations`` None
    leaves ``split`` as given. Data sets declare the option with ``with_rotations``."""
    if rotations is None:
        return split
    from fewshot.data.catalog import DATASETS, named_dataset

    named = named_dataset(dataset)
    if named is None or not hasattr(named, "with_rotations"):
        having = [n for n in DATASETS.names() if hasattr(DATASETS.get(n), "with_rotations")]
        raise FewshotError(f"--rotations/--no-rotations applies to {', '.join(having)} only, not {dataset}")
    return named.with_rotations(split, rotations)


def check_episodes(data, ways: int, shots: int, queries: int, seed: int, **options: Any) -> dict[str, Any]:
    """The sampler options for `data` (`fewshot.episode_draws.episode_options`), refused in one
    line before any long work when no episode can be drawn with them."""
    from fewshot.episode_draws import episode_options
    from fewshot.sampling import EpisodeSampler

    chosen = episode_options(data, **options)
    EpisodeSampler(data.labels, ways, shots, queries, episodes=1, seed=seed, **chosen)
    return chosen
