"""The one episodic sampler: N-way K-shot Q-query episodes over any labelled data.

The sampler knows only the labels. It draws item *indices*; the same indices can gather
images, tensors or cached embeddings. Randomness comes from an explicit seed: episode ``i``
of a sampler with seed ``s`` is the same on every machine and does not depend on how many
episodes are drawn, because episodes are drawn in fixed-size blocks, each seeded by
``(s, block)``.

Typical use::

    sampler = EpisodeSampler(labels, ways=5, shots=1, queries=15, episodes=1000, seed=0)
    for episode in sampler.episodes(images):          # images: (n_items, ...) tensor
        logits = learner.fit(episode.support_x, episode.support_y).predict(episode.query_x)

or, with a torch ``Dataset`` of ``(x, label)`` pairs and worker processes::

    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=sampler.collate,
                        num_workers=4, pin_memory=True)

`Episode`, `EpisodeIndices` and what the sampler shares with an episode file live in
`fewshot.episodes`; reading and writing episode files in `fewshot.episode_files`. Every name
stays importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from fewshot.episode_draws import (
    draw_distinct,
    draw_distinct_upto,
    group_table,
    small_class_message,
    too_few_classes_message,
)
from fewshot.episode_files import EPISODE_FILE_VERSION, EpisodeFile, read_episode_settings, write_episode_file
from fewshot.episodes import Episode, EpisodeIndices, EpisodeSource, as_label_array, labels_fingerprint
from fewshot.errors import EpisodeError

BLOCK = 1024  # episodes drawn together from one seeded generator


def _is_whole(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_settings(ways: int, shots: int, queries: int, episodes: int) -> None:
    """Refuse an episode size or count that is not a positive whole number, and 1-way episodes."""
    for name, value in (("ways", ways), ("shots", shots), ("queries", queries), ("episodes", episodes)):
        if not _is_whole(value) or value < 1:
            raise EpisodeError(f"{name} must be a positive whole number, got {value!r}")
    if ways < 2:
        raise EpisodeError("ways must be at least 2: a 1-way episode has nothing to classify")


def _min_ways(ways: int, min_ways: int | None) -> int:
    """Variable episodes' fewest ways: ``min_ways``, else Meta-Dataset's 5 (at most ``ways``)."""
    low = min(5, ways) if min_ways is None else min_ways
    if not _is_whole(low) or not 2 <= low <= ways:
        raise EpisodeError(f"min_ways must be a whole number from 2 to ways={ways}, got {low!r}")
    return int(low)


class EpisodeSampler(EpisodeSource):
    """Draws N-way K-shot Q-query episodes from integer class labels.

    Args:
        labels: ``(n_items,)`` integer class label of every item.
        ways: classes per episode (N; with ``variable``, the most).
        shots: support items per class (K; with ``variable``, the most).
        queries: query items per class (Q).
        episodes: how many episodes one pass yields.
        seed: the seed; the same seed gives the same episodes everywhere.
        skip_small_classes: leave out classes with fewer than ``shots + queries`` items
            instead of raising an error.
        class_names: optional name of every class id, used only in error messages.
        class_groups: optional group of every class id (`LabeledTensors.class_groups`):
            every episode's classes then come from one group (Lake et al.'s within-alphabet
            episodes), the group drawn uniformly among those with enough classes.
        skip_small_groups: leave out groups with fewer than ``ways`` classes (``min_ways``
            when ``variable``) instead of raising an error that names the smallest.
        variable: variable-way, variable-shot episodes (simplified Meta-Dataset sampling):
            each episode draws its ways uniformly from ``min_ways..ways`` (at most its group's
            classes) and one shot count uniformly from ``1..shots`` for all its classes;
            ``queries`` stays fixed. Blocks hold episodes padded to ``(ways, shots)`` with -1;
            `iter_indices` and `gather` give each episode at its own size.
        min_ways: fewest ways of a variable episode (default ``min(5, ways)``).

    Raises:
        EpisodeError: settings that cannot give a single episode, with a message that says
            how to fix them.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        ways: int,
        shots: int,
        queries: int,
        episodes: int = 1000,
        seed: int = 0,
        skip_small_classes: bool = False,
        class_names: Sequence[str] | None = None,
        class_groups: Sequence[str] | None = None,
        skip_small_groups: bool = False,
        variable: bool = False,
        min_ways: int | None = None,
    ) -> None:
        _check_settings(ways, shots, queries, episodes)
        self.labels = as_label_array(labels)
        if self.labels.size == 0:
            raise EpisodeError("the data set has no items: check its path and split")
        self.ways, self.shots, self.queries = int(ways), int(shots), int(queries)
        self.n_episodes = int(episodes)
        self.seed = int(seed)
        self.variable = bool(variable)
        self.min_ways = _min_ways(self.ways, min_ways) if self.variable else self.ways
        self.class_ids, self.class_sizes, self._members = self._class_table(skip_small_classes, class_names)
        self.within_group = class_groups is not None
        self._groups = None
        if class_groups is not None:
            need = f"ways={self.min_ways}" + (" (min_ways)" if self.variable else "")
            self._groups = group_table(self.class_ids, class_groups, self.min_ways, skip_small_groups, need)
        self.fingerprint = labels_fingerprint(self.labels)

    def _class_table(
        self, skip_small_classes: bool, class_names: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The classes episodes are drawn from: their ids ``(C,)``, sizes ``(C,)`` and a padded
        table of their item indices ``(C, max size)`` (``members[c, :sizes[c]]``, then -1)."""
        per_class = self.shots + self.queries
        classes, inverse, counts = np.unique(self.labels, return_inverse=True, return_counts=True)
        small = counts < per_class
        if small.any() and not skip_small_classes:
            raise EpisodeError(small_class_message(classes, counts, per_class, class_names))
        kept = np.nonzero(~small)[0]
        if kept.size < self.min_ways:
            raise EpisodeError(too_few_classes_message(self.min_ways, kept.size, per_class, small.any()))
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)])
        sizes = counts[kept].astype(np.int64)
        members = np.full((kept.size, int(sizes.max())), -1, dtype=np.int64)
        for row, c in enumerate(kept):
            items = order[starts[c] : starts[c + 1]]
            members[row, : items.size] = items
        return classes[kept], sizes, members

    # -- drawing indices ------------------------------------------------------------------

    def _draw_rows(self, rng: np.random.Generator) -> np.ndarray:
        """The class-table rows of a block's episodes ``(BLOCK, N)``, -1 past an episode's ways."""
        if self._groups is None:
            population = np.full(BLOCK, self.class_ids.size, dtype=np.int64)
            rows = draw_distinct_upto(rng, population, self.ways)
        else:
            chosen = rng.integers(self._groups.sizes.size, size=BLOCK)
            population = self._groups.sizes[chosen]
            slots = draw_distinct_upto(rng, population, self.ways)
            rows = np.where(slots >= 0, self._groups.members[chosen[:, None], np.maximum(slots, 0)], -1)
        if self.variable:
            ways = rng.integers(self.min_ways, np.minimum(self.ways, population) + 1)
            rows[np.arange(self.ways)[None, :] >= ways[:, None]] = -1
        return rows

    def _draw_block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Episodes ``block*BLOCK .. (block+1)*BLOCK - 1``: items ``(B, N, K+Q)``, rows ``(B, N)``
        (-1 in the padding of variable episodes)."""
        rng = np.random.default_rng([self.seed, block])
        rows = self._draw_rows(rng)
        shots = rng.integers(1, self.shots + 1, size=BLOCK) if self.variable else None
        per_class = self.shots + self.queries
        safe = np.maximum(rows, 0)
        positions = draw_distinct(rng, self.class_sizes[safe].reshape(-1), per_class)
        items = self._members[safe.reshape(-1, 1), positions].reshape(BLOCK, self.ways, per_class)
        if shots is not None:
            items[rows < 0] = -1
            support = items[:, :, : self.shots]  # a view: masks the shots past each episode's own
            support[np.broadcast_to(np.arange(self.shots) >= shots[:, None, None], support.shape)] = -1
        return items, rows

    def sample_indices(self, start: int = 0, count: int | None = None) -> EpisodeIndices:
        """Indices of episodes ``start .. start+count-1`` as stacked arrays.

        Returns:
            `EpisodeIndices` with ``support`` ``(count, N, K)``, ``query`` ``(count, N, Q)``
            and ``class_ids`` ``(count, N)`` (variable episodes: padded with -1).
        """
        count = self.n_episodes - start if count is None else count
        first, last = start // BLOCK, (start + count - 1) // BLOCK
        items, rows = zip(*(self._draw_block(b) for b in range(first, last + 1)), strict=True)
        offset = start - first * BLOCK
        items_all = np.concatenate(items)[offset : offset + count]
        rows_all = np.concatenate(rows)[offset : offset + count]
        return EpisodeIndices(
            support=items_all[:, :, : self.shots],
            query=items_all[:, :, self.shots :],
            class_ids=np.where(rows_all >= 0, self.class_ids[np.maximum(rows_all, 0)], -1),
        )

    def _index_blocks(self) -> Iterator[EpisodeIndices]:
        """Blocks aligned with the seeded ones, so each is drawn once per pass."""
        for start in range(0, self.n_episodes, BLOCK):
            yield self.sample_indices(start, min(BLOCK, self.n_episodes - start))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write every episode's indices plus the settings and data fingerprint (atomic .npz)."""
        meta = {
            "ways": self.ways,
            "shots": self.shots,
            "queries": self.queries,
            "episodes": self.n_episodes,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "n_items": int(self.labels.size),
            "within_group": self.within_group,
            "variable": self.variable,
            "min_ways": self.min_ways,
        }
        return write_episode_file(path, self.sample_indices(), meta)


__all__ = [
    "BLOCK",
    "EPISODE_FILE_VERSION",
    "Episode",
    "EpisodeFile",
    "EpisodeIndices",
    "EpisodeSampler",
    "labels_fingerprint",
    "read_episode_settings",
]
