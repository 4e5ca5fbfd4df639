"""What an episode is, and how item indices become one.

`Episode` holds the tensors of one N-way K-shot task; `EpisodeIndices` holds only the item
indices. `EpisodeSource` is what the sampler (`fewshot.sampling.EpisodeSampler`) and an
episode file (`fewshot.episode_files.EpisodeFile`) share: given the indices of its episodes,
it gathers them from a tensor, collates DataLoader batches and serves as a batch sampler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fewshot.errors import EpisodeError


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
    """Item indices of one episode: ``support`` ``(N, K)``, ``query`` ``(N, Q)``, ``class_ids`` ``(N,)``.

    Stacked, a block of episodes: ``(B, N, K)``, ``(B, N, Q)``, ``(B, N)``. Variable-way,
    variable-shot episodes are padded to the block's widest with -1 (class ids and items of
    the classes past an episode's ways, support items past its shots); `trim` and
    `shape_groups` take the padding off.
    """

    support: np.ndarray
    query: np.ndarray
    class_ids: np.ndarray

    def trim(self) -> EpisodeIndices:
        """One padded episode at its own size: ``(N', K')``, ``(N', Q)``, ``(N',)``."""
        ways = int((self.class_ids >= 0).sum())
        shots = int((self.support[0] >= 0).sum())
        return EpisodeIndices(self.support[:ways, :shots], self.query[:ways], self.class_ids[:ways])

    def shape_groups(self) -> list[tuple[np.ndarray, EpisodeIndices]]:
        """A padded block split by episode size: ``(positions in the block, the episodes of
        one (ways, shots) stacked at that size)``, in order of size. One group when unpadded."""
        ways = (self.class_ids >= 0).sum(axis=1)
        shots = (self.support[:, 0, :] >= 0).sum(axis=1)
        if ways.size and (ways == ways[0]).all() and (shots == shots[0]).all():
            w, k = int(ways[0]), int(shots[0])
            whole = EpisodeIndices(self.support[:, :w, :k], self.query[:, :w], self.class_ids[:, :w])
            return [(np.arange(ways.size), whole)]
        groups = []
        for w, k in sorted(set(zip(ways.tolist(), shots.tolist(), strict=True))):
            at = np.nonzero((ways == w) & (shots == k))[0]
            groups.append(
                (at, EpisodeIndices(self.support[at, :w, :k], self.query[at, :w], self.class_ids[at, :w]))
            )
        return groups


def labels_fingerprint(labels: Sequence[int] | np.ndarray | torch.Tensor) -> str:
    """A short hash of a label vector: episode files remember which data set they belong to."""
    array = np.ascontiguousarray(as_label_array(labels), dtype=np.int64)
    return hashlib.sha256(array.tobytes()).hexdigest()[:16]


def as_label_array(labels: Any) -> np.ndarray:
    """`labels` as a one-dimensional int64 array; anything else raises `EpisodeError`."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise EpisodeError(f"labels must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise EpisodeError(f"labels must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


class EpisodeSource:
    """Episodes given by their item indices; subclasses set the attributes and `sample_indices`.

    Attributes:
        labels: ``(n_items,)`` int64 class label of every item.
        ways, shots, queries: N, K and Q of every episode (variable episodes: the most).
        n_episodes: how many episodes one pass yields.
        variable: episodes have their own ways and shots (blocks padded with -1).
        within_group: every episode's classes come from one group.
    """

    labels: np.ndarray
    ways: int
    shots: int
    queries: int
    n_episodes: int
    variable: bool = False
    within_group: bool = False

    def sample_indices(self, start: int = 0, count: int | None = None) -> EpisodeIndices:
        """Indices of episodes ``start .. start+count-1`` as stacked arrays."""
        raise NotImplementedError

    def _index_blocks(self) -> Iterator[EpisodeIndices]:
        """The indices of every episode, as consecutive stacked blocks."""
        yield self.sample_indices()

    def __len__(self) -> int:
        return self.n_episodes

    def iter_indices(self) -> Iterator[EpisodeIndices]:
        """One `EpisodeIndices` per episode."""
        for block in self._index_blocks():
            for i in range(block.class_ids.shape[0]):
                episode = EpisodeIndices(block.support[i], block.query[i], block.class_ids[i])
                yield episode.trim() if self.variable else episode

    def __iter__(self) -> Iterator[list[int]]:
        """Flat index lists (support then query, grouped by class): a DataLoader batch sampler."""
        if self.variable:
            for ep in self.iter_indices():
                yield np.concatenate([ep.support, ep.query], axis=1).reshape(-1).tolist()
            return
        for block in self._index_blocks():
            # one conversion per block: (B, N, K+Q) -> B lists of N*(K+Q) ints
            yield from (
                np.concatenate([block.support, block.query], axis=2)
                .reshape(block.support.shape[0], -1)
                .tolist()
            )

    def gather(self, data: torch.Tensor, indices: EpisodeIndices) -> Episode:
        """Build an `Episode` from an in-memory tensor ``data`` ``(n_items, ...)``; its size is
        that of ``indices`` (one episode, as `iter_indices` gives them)."""
        (ways, shots), queries = indices.support.shape, indices.query.shape[1]
        support = torch.as_tensor(indices.support.reshape(-1), device=data.device)
        query = torch.as_tensor(indices.query.reshape(-1), device=data.device)
        return Episode(
            support_x=data[support],
            support_y=torch.arange(ways, device=data.device).repeat_interleave(shots),
            query_x=data[query],
            query_y=torch.arange(ways, device=data.device).repeat_interleave(queries),
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
        # a variable episode's size: its classes come in runs, each shots + queries long
        ways = int(torch.unique_consecutive(ys).numel()) if self.variable else self.ways
        per_class = ys.numel() // ways
        shots = per_class - self.queries
        xs = xs.view(ways, per_class, *xs.shape[1:])
        return Episode(
            support_x=xs[:, :shots].reshape(-1, *xs.shape[2:]),
            support_y=torch.arange(ways).repeat_interleave(shots),
            query_x=xs[:, shots:].reshape(-1, *xs.shape[2:]),
            query_y=torch.arange(ways).repeat_interleave(self.queries),
            class_ids=ys.view(ways, per_class)[:, 0].clone(),
        )
