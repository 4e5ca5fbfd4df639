"""The sampler's building blocks: seeded distinct draws, the class and group tables, and the
one-line errors for settings that cannot give an episode (used by `fewshot.sampling`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fewshot.errors import EpisodeError, FewshotError


def draw_distinct(rng: np.random.Generator, sizes: np.ndarray, k: int) -> np.ndarray:
    """For each row ``r``, ``k`` distinct positions in ``[0, sizes[r])`` in random order.

    Args:
        sizes: ``(M,)`` population sizes, each at least ``k``.
    Returns:
        ``(M, k)`` int64 positions.
    """
    m = sizes.shape[0]
    widest = int(sizes.max()) if m else 0
    if widest <= 256:
        # Random keys, padded slots pushed to the end: argsort gives uniform permutations.
        keys = rng.random((m, widest))
        keys[np.arange(widest)[None, :] >= sizes[:, None]] = 2.0
        return np.argsort(keys, axis=1)[:, :k].astype(np.int64)
    # Large populations: draw with replacement, redraw the few rows that collided.
    positions = (rng.random((m, k)) * sizes[:, None]).astype(np.int64)
    ordered = np.sort(positions, axis=1)
    collided = np.nonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))[0]
    for row in collided:
        positions[row] = rng.choice(int(sizes[row]), size=k, replace=False)
    return positions


def draw_distinct_upto(rng: np.random.Generator, sizes: np.ndarray, k: int) -> np.ndarray:
    """`draw_distinct`, where a row whose population is below ``k`` gets all of it in random
    order, then -1s (variable-way episodes in a small group). ``(M, k)`` int64."""
    big = sizes >= k
    if big.all():  # the usual case: the very draws of `draw_distinct`
        return draw_distinct(rng, sizes, k)
    out = np.full((sizes.shape[0], k), -1, dtype=np.int64)
    out[big] = draw_distinct(rng, sizes[big], k)
    for row in np.nonzero(~big)[0]:
        out[row, : sizes[row]] = rng.permutation(int(sizes[row]))
    return out


def class_name(cid: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and 0 <= cid < len(class_names):
        return f"{class_names[cid]!r} (id {cid})"
    return str(cid)


def small_class_message(
    classes: np.ndarray, counts: np.ndarray, per_class: int, class_names: Sequence[str] | None
) -> str:
    worst = int(np.argmin(counts))
    small = int((counts < per_class).sum())
    return (
        f"class {class_name(int(classes[worst]), class_names)} has only {int(counts[worst])} items "
        f"but shots + queries = {per_class} ({small} of {classes.size} classes are that small): "
        "lower --shots/--queries, or skip such classes (--skip-small-classes)"
    )


def too_few_classes_message(ways: int, kept: int, per_class: int, skipped: bool) -> str:
    sized = f" with at least {per_class} items (shots + queries)" if skipped else ""
    if kept < 2:  # no --ways value can help: an episode needs two classes
        have = "no class" if kept == 0 else "only 1 class"
        fix = "lower --shots/--queries or add classes" if skipped else "add classes (subfolders)"
        return f"the data set has {have}{sized}: an episode needs at least 2; {fix}"
    return f"ways={ways} but the data set has only {kept} classes{sized}: use --ways {kept} or fewer"


@dataclass(frozen=True)
class GroupTable:
    """The groups episodes are drawn within: ``names`` ``(G,)``, ``sizes`` ``(G,)`` (classes
    per group) and ``members`` ``(G, max size)``, rows of the sampler's class table, -1 padded."""

    names: list[str]
    sizes: np.ndarray
    members: np.ndarray


def group_table(
    class_ids: np.ndarray, class_groups: Sequence[str], need: int, skip_small: bool, what: str
) -> GroupTable:
    """Group the sampler's classes ``class_ids`` ``(C,)`` by ``class_groups[class id]``.

    Groups with fewer than ``need`` classes are refused, naming the smallest, unless
    ``skip_small``; then they are left out, and refused only when no group is left.
    ``what`` says what ``need`` counts (``ways=5``) in the messages.
    """
    groups = list(class_groups)
    if class_ids.size and int(class_ids.max()) >= len(groups):
        raise EpisodeError(
            f"class_groups names {len(groups)} classes but the labels go up to {int(class_ids.max())}"
        )
    of_class = np.array([str(groups[int(c)]) for c in class_ids])
    names, inverse, counts = np.unique(of_class, return_inverse=True, return_counts=True)
    small = counts < need
    if small.all():
        best = int(np.argmax(counts))
        raise EpisodeError(
            f"{what} but no group has that many classes (the largest, {str(names[best])!r}, has "
            f"{int(counts[best])}): use --ways {int(counts[best])} or fewer, or drop --within-group"
        )
    if small.any() and not skip_small:
        worst = int(np.argmin(counts))
        raise EpisodeError(
            f"group {str(names[worst])!r} has only {int(counts[worst])} classes but {what} "
            f"({int(small.sum())} of {names.size} groups are that small): lower --ways, or leave "
            "such groups out (--skip-small-groups)"
        )
    kept = np.nonzero(~small)[0]
    members = np.full((kept.size, int(counts[kept].max())), -1, dtype=np.int64)
    for row, g in enumerate(kept):
        rows = np.nonzero(inverse == g)[0]
        members[row, : rows.size] = rows
    return GroupTable([str(names[g]) for g in kept], counts[kept].astype(np.int64), members)


def episode_options(
    data, within_group: bool = False, skip_small_groups: bool = False, variable: bool = False
) -> dict[str, Any]:
    """`EpisodeSampler` keyword arguments for episodes within the class groups of `data`
    and/or variable-way, variable-shot episodes; refuses data without groups."""
    options: dict[str, Any] = {"variable": True} if variable else {}
    if within_group:
        groups = getattr(data, "class_groups", None)
        if groups is None:
            raise FewshotError(
                "--within-group: this data set has no class groups (Omniglot's are its alphabets; "
                "an image folder gives them as root/<group>/<class>/<image>)"
            )
        options.update(class_groups=groups, skip_small_groups=skip_small_groups)
    return options
