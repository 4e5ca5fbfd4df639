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
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewshot.errors import EpisodeError, FewshotError

BLOCK = 1024  # episodes drawn together from one seeded generator
EPISODE_FILE_VERSION = 1


@dataclass
class Episode:
    """One N-way K-shot task.

    Attributes:
        support_x: ``(N*K, ...)`` support items, grouped by class (class 0's K items first).
        support_y: ``(N*K,)`` int64 labels in ``0..N-1``.
        query_x: ``(N*Q, ...)`` query items, grouped by class.
        query_y: ``(N*Q,)`` int64 labels in ``0..N-1``.
        class_ids: ``(N,)`` int64 original class ids; ``class_ids[j]`` is episode label ``j``.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    class_ids: torch.Tensor

    @property
    def ways(self) -> int:
        return int(self.class_ids.numel())

    @property
    def shots(self) -> int:
        return self.support_y.numel() // self.ways

    @property
    def queries(self) -> int:
        return self.query_y.numel() // self.ways

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Episode:
        """A copy of the episode with every tensor on `device`."""
        return Episode(
            *(
                t.to(device, non_blocking=non_blocking)
                for t in (self.support_x, self.support_y, self.query_x, self.query_y)
            ),
            class_ids=self.class_ids,
        )


@dataclass(frozen=True)
class EpisodeIndices:
    """Item indices of one episode: ``support`` ``(N, K)``, ``query`` ``(N, Q)``, ``class_ids`` ``(N,)``."""

    support: np.ndarray
    query: np.ndarray
    class_ids: np.ndarray


def labels_fingerprint(labels: Sequence[int] | np.ndarray | torch.Tensor) -> str:
    """A short hash of a label vector: episode files remember which data set they belong to."""
    array = np.ascontiguousarray(_as_label_array(labels), dtype=np.int64)
    return hashlib.sha256(array.tobytes()).hexdigest()[:16]


def _as_label_array(labels: Any) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise EpisodeError(f"labels must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise EpisodeError(f"labels must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _is_whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


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


class EpisodeSampler:
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
        for name, value in (("ways", ways), ("shots", shots), ("queries", queries), ("episodes", episodes)):
            if not _is_whole(value) or value < 1:
                raise EpisodeError(f"{name} must be a positive whole number, got {value!r}")
        if ways < 2:
            raise EpisodeError("ways must be at least 2: a 1-way episode has nothing to classify")
        self.labels = _as_label_array(labels)
        if self.labels.size == 0:
            raise EpisodeError("the data set has no items: check its path and split")
        self.ways, self.shots, self.queries = int(ways), int(shots), int(queries)
        self.n_episodes = int(episodes)
        self.seed = int(seed)
        per_class = self.shots + self.queries

        classes, inverse, counts = np.unique(self.labels, return_inverse=True, return_counts=True)
        small = counts < per_class
        if small.any() and not skip_small_classes:
            raise EpisodeError(_small_class_message(classes, counts, per_class, class_names))
        kept = np.nonzero(~small)[0]
        if kept.size < self.ways:
            raise EpisodeError(_too_few_classes_message(self.ways, kept.size, per_class, small.any()))
        self.class_ids = classes[kept]
        # Padded table of item indices per kept class: members[c, :counts[c]].
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)])
        self.class_sizes = counts[kept].astype(np.int64)
        self._members = np.full((kept.size, int(self.class_sizes.max())), -1, dtype=np.int64)
        for row, c in enumerate(kept):
            members = order[starts[c] : starts[c + 1]]
            self._members[row, : members.size] = members
        self.fingerprint = labels_fingerprint(self.labels)

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

    def __len__(self) -> int:
        return self.n_episodes

    def iter_indices(self) -> Iterator[EpisodeIndices]:
        """One `EpisodeIndices` per episode, drawn a block at a time."""
        for start in range(0, self.n_episodes, BLOCK):
            block = self.sample_indices(start, min(BLOCK, self.n_episodes - start))
            for i in range(block.class_ids.shape[0]):
                yield EpisodeIndices(block.support[i], block.query[i], block.class_ids[i])

    def __iter__(self) -> Iterator[list[int]]:
        """Flat index lists (support then query, grouped by class): a DataLoader batch sampler."""
        for start in range(0, len(self), BLOCK):
            block = self.sample_indices(start, min(BLOCK, len(self) - start))
            # one conversion per block: (B, N, K+Q) -> B lists of N*(K+Q) ints
            yield from (
                np.concatenate([block.support, block.query], axis=2)
                .reshape(block.support.shape[0], -1)
                .tolist()
            )

    # -- building episodes -------------------------------------------------------------------

    def _labels_for(self, per_class: int) -> torch.Tensor:
        return torch.arange(self.ways).repeat_interleave(per_class)

    def gather(self, data: torch.Tensor, indices: EpisodeIndices) -> Episode:
        """Build an `Episode` from an in-memory tensor ``data`` ``(n_items, ...)``."""
        support = torch.as_tensor(indices.support.reshape(-1), device=data.device)
        query = torch.as_tensor(indices.query.reshape(-1), device=data.device)
        return Episode(
            support_x=data[support],
            support_y=self._labels_for(self.shots).to(data.device),
            query_x=data[query],
            query_y=self._labels_for(self.queries).to(data.device),
            class_ids=torch.as_tensor(indices.class_ids),
        )

    def episodes(self, data: torch.Tensor) -> Iterator[Episode]:
        """Episodes over an in-memory tensor of items ``(n_items, ...)`` (images or embeddings)."""
        if data.shape[0] != self.labels.size:
            raise EpisodeError(
                f"data has {data.shape[0]} items but the sampler was built on {self.labels.size} labels"
            )
        for ep in self.iter_indices():
            yield self.gather(data, ep)

    def collate(self, batch: list[tuple[Any, Any]]) -> Episode:
        """DataLoader ``collate_fn`` for batches drawn with this sampler as ``batch_sampler``."""
        xs = torch.stack([torch.as_tensor(x) for x, _ in batch])
        ys = torch.as_tensor([int(y) for _, y in batch])
        per_class = self.shots + self.queries
        xs = xs.view(self.ways, per_class, *xs.shape[1:])
        return Episode(
            support_x=xs[:, : self.shots].reshape(-1, *xs.shape[2:]),
            support_y=self._labels_for(self.shots),
            query_x=xs[:, self.shots :].reshape(-1, *xs.shape[2:]),
            query_y=self._labels_for(self.queries),
            class_ids=ys.view(self.ways, per_class)[:, 0].clone(),
        )

    # -- episode files -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write every episode's indices plus the settings and data fingerprint (atomic .npz)."""
        indices = self.sample_indices()
        meta = {
            "version": EPISODE_FILE_VERSION,
            "ways": self.ways,
            "shots": self.shots,
            "queries": self.queries,
            "episodes": self.n_episodes,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "n_items": int(self.labels.size),
        }
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        from fewshot.fileio import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez(
            buffer,
            meta=np.array(json.dumps(meta)),
            support=indices.support,
            query=indices.query,
            class_ids=indices.class_ids,
        )
        return atomic_write_bytes(path, buffer.getvalue())


def _unreadable(path: Any, err: Exception) -> str:
    # numpy's message for a non-.npz file advises unpickling it: never pass that on
    detail = "not an .npz archive" if "pickle" in str(err) else f"{type(err).__name__}: {err}"
    return f"{path} is not a readable episode file ({detail}): save the episodes again (EpisodeSampler.save)"


def read_episode_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings an episode file imposes (``ways``, ``shots``, ``queries``, ``episodes``,
    ``seed``), read without its arrays: commands check their options against them first."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
        return {k: int(meta[k]) for k in ("ways", "shots", "queries", "episodes", "seed")}
    except FileNotFoundError as err:
        raise FewshotError(f"episode file not found: {path}") from err
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile) as err:
        raise FewshotError(_unreadable(path, err)) from err


class EpisodeFile:
    """Episodes read back from a file written by `EpisodeSampler.save`.

    It behaves like an `EpisodeSampler` (``episodes``, ``iter_indices``, ``gather``,
    iteration as a batch sampler), so every method can be evaluated on the same episodes.
    Loading checks the data fingerprint: episodes drawn for another data set are refused.
    """

    def __init__(self, path: str | os.PathLike[str], labels: Sequence[int] | np.ndarray | torch.Tensor):
        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(str(archive["meta"]))
                self.support = archive["support"].astype(np.int64)
                self.query = archive["query"].astype(np.int64)
                self.class_ids = archive["class_ids"].astype(np.int64)
        except FileNotFoundError as err:
            raise FewshotError(f"episode file not found: {path}") from err
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            EOFError,
            zipfile.BadZipFile,
            json.JSONDecodeError,
        ) as err:
            raise FewshotError(_unreadable(path, err)) from err
        if not isinstance(meta, dict) or meta.get("version") != EPISODE_FILE_VERSION:
            version = meta.get("version") if isinstance(meta, dict) else None
            raise FewshotError(f"{path}: unsupported episode file version {version!r}")
        self.labels = _as_label_array(labels)
        self.fingerprint = labels_fingerprint(self.labels)
        if meta.get("fingerprint") != self.fingerprint:
            raise FewshotError(
                f"{path} was drawn for another data set (fingerprint {meta.get('fingerprint')}, "
                f"this one is {self.fingerprint}): use the same data set and split"
            )
        try:
            self.ways, self.shots, self.queries = int(meta["ways"]), int(meta["shots"]), int(meta["queries"])
            self.seed, self.n_episodes = int(meta["seed"]), int(meta["episodes"])
        except (KeyError, TypeError, ValueError) as err:
            raise FewshotError(f"{path} is damaged: its settings are incomplete ({err})") from err
        if self.ways < 2 or self.shots < 1 or self.queries < 1:
            raise FewshotError(
                f"{path} holds {self.ways}-way {self.shots}-shot {self.queries}-query episodes: "
                "an episode needs at least 2 ways, 1 shot and 1 query"
            )
        n = self.n_episodes
        if (
            self.support.shape != (n, self.ways, self.shots)
            or self.query.shape != (n, self.ways, self.queries)
            or self.class_ids.shape != (n, self.ways)
        ):
            raise FewshotError(f"{path} is damaged: its arrays do not match its settings")
        for items in (self.support, self.query):
            if items.size and (items.min() < 0 or items.max() >= self.labels.size):
                raise FewshotError(f"{path} is damaged: item indices outside 0..{self.labels.size - 1}")
            expected = np.broadcast_to(self.class_ids[:, :, None], items.shape)
            if not np.array_equal(self.labels[items], expected):
                raise FewshotError(f"{path} is damaged: items do not belong to their episode's classes")

    def __len__(self) -> int:
        return self.n_episodes

    def iter_indices(self) -> Iterator[EpisodeIndices]:
        for i in range(self.n_episodes):
            yield EpisodeIndices(self.support[i], self.query[i], self.class_ids[i])

    def sample_indices(self, start: int = 0, count: int | None = None) -> EpisodeIndices:
        end = self.n_episodes if count is None else start + count
        return EpisodeIndices(self.support[start:end], self.query[start:end], self.class_ids[start:end])

    __iter__ = EpisodeSampler.__iter__
    _labels_for = EpisodeSampler._labels_for
    gather = EpisodeSampler.gather
    episodes = EpisodeSampler.episodes
    collate = EpisodeSampler.collate
