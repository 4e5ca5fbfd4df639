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


def _draw_distinct(rng: np.random.Generator, sizes: np.ndarray, k: int) -> np.ndarray:
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


def _class_name(cid: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and 0 <= cid < len(class_names):
        return f"{class_names[cid]!r} (id {cid})"
    return str(cid)


def _small_class_message(
    classes: np.ndarray, counts: np.ndarray, per_class: int, class_names: Sequence[str] | None
) -> str:
    worst = int(np.argmin(counts))
    small = int((counts < per_class).sum())
    return (
        f"class {_class_name(int(classes[worst]), class_names)} has only {int(counts[worst])} items "
        f"but shots + queries = {per_class} ({small} of {classes.size} classes are that small): "
        "lower --shots/--queries, or skip such classes (--skip-small-classes)"
    )


def _too_few_classes_message(ways: int, kept: int, per_class: int, skipped: bool) -> str:
    sized = f" with at least {per_class} items (shots + queries)" if skipped else ""
    if kept < 2:  # no --ways value can help: an episode needs two classes
        have = "no class" if kept == 0 else "only 1 class"
        fix = "lower --shots/--queries or add classes" if skipped else "add classes (subfolders)"
        return f"the data set has {have}{sized}: an episode needs at least 2; {fix}"
    return f"ways={ways} but the data set has only {kept} classes{sized}: use --ways {kept} or fewer"


class EpisodeSampler(EpisodeSource):
    """Draws N-way K-shot Q-query episodes from integer class labels.

    Args:
        labels: ``(n_items,)`` integer class label of every item.
        ways: classes per episode (N).
        shots: support items per class (K).
        queries: query items per class (Q).
        episodes: how many episodes one pass yields.
        seed: the seed; the same seed gives the same episodes everywhere.
        skip_small_classes: leave out classes with fewer than ``shots + queries`` items
            instead of raising an error.
        class_names: optional name of every class id, used only in error messages.

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
    ) -> None:
        _check_settings(ways, shots, queries, episodes)
        self.labels = as_label_array(labels)
        if self.labels.size == 0:
            raise EpisodeError("the data set has no items: check its path and split")
        self.ways, self.shots, self.queries = int(ways), int(shots), int(queries)
        self.n_episodes = int(episodes)
        self.seed = int(seed)
        self.class_ids, self.class_sizes, self._members = self._class_table(skip_small_classes, class_names)
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
            raise EpisodeError(_small_class_message(classes, counts, per_class, class_names))
        kept = np.nonzero(~small)[0]
        if kept.size < self.ways:
            raise EpisodeError(_too_few_classes_message(self.ways, kept.size, per_class, small.any()))
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)])
        sizes = counts[kept].astype(np.int64)
        members = np.full((kept.size, int(sizes.max())), -1, dtype=np.int64)
        for row, c in enumerate(kept):
            items = order[starts[c] : starts[c + 1]]
            members[row, : items.size] = items
        return classes[kept], sizes, members

    # -- drawing indices ------------------------------------------------------------------

    def _draw_block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Episodes ``block*BLOCK .. (block+1)*BLOCK - 1``: items ``(B, N, K+Q)``, classes ``(B, N)``."""
        rng = np.random.default_rng([self.seed, block])
        n_classes = self.class_ids.size
        rows = _draw_distinct(rng, np.full(BLOCK, n_classes, dtype=np.int64), self.ways)
        sizes = self.class_sizes[rows].reshape(-1)
        positions = _draw_distinct(rng, sizes, self.shots + self.queries)
        items = self._members[rows.reshape(-1, 1), positions].reshape(
            BLOCK, self.ways, self.shots + self.queries
        )
        return items, rows

    def sample_indices(self, start: int = 0, count: int | None = None) -> EpisodeIndices:
        """Indices of episodes ``start .. start+count-1`` as stacked arrays.

        Returns:
            `EpisodeIndices` with ``support`` ``(count, N, K)``, ``query`` ``(count, N, Q)``
            and ``class_ids`` ``(count, N)``.
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
            class_ids=self.class_ids[rows_all],
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
