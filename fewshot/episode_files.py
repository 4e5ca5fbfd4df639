"""Episode files: the indices of a set of episodes, their settings and the fingerprint of the
labels they were drawn for, in one ``.npz`` archive (written by `EpisodeSampler.save`).

Reading one back (`EpisodeFile`) refuses a file drawn for another data set and checks that
every item belongs to its episode's classes, so every method can be evaluated on the very same
episodes. The file records how its episodes were drawn (``within_group``: classes from one
group; ``variable``: variable-way, variable-shot episodes, stored padded with -1), and replays
them as they were, whatever the command's options.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewshot.episodes import EpisodeIndices, EpisodeSource, as_label_array, labels_fingerprint
from fewshot.errors import FewshotError

EPISODE_FILE_VERSION = 1
SETTINGS = ("ways", "shots", "queries", "episodes", "seed")
FLAGS = ("within_group", "variable")  # how the episodes were drawn; absent in older files: False
# what np.load and json raise on a file that is not an episode archive
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile)


def write_episode_file(path: str | os.PathLike[str], indices: EpisodeIndices, meta: dict[str, Any]) -> Path:
    """Write `indices` and `meta` (the settings and fingerprint) atomically to ``path`` (.npz added)."""
    from fewshot.fileio import atomic_write_bytes

    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    buffer = io.BytesIO()
    np.savez(
        buffer,
        meta=np.array(json.dumps({"version": EPISODE_FILE_VERSION, **meta})),
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
    ``seed``; and the flags ``within_group``, ``variable``), read without its arrays: commands
    check their options against them first."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
        settings: dict[str, Any] = {k: int(meta[k]) for k in SETTINGS}
        settings.update({k: bool(meta.get(k, False)) for k in FLAGS})
        return settings
    except FileNotFoundError as err:
        raise FewshotError(f"episode file not found: {path}") from err
    except _UNREADABLE as err:
        raise FewshotError(_unreadable(path, err)) from err


def _read_archive(path: str | os.PathLike[str]) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """The meta record and the ``support``, ``query`` and ``class_ids`` arrays of an episode file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            arrays = tuple(archive[key].astype(np.int64) for key in ("support", "query", "class_ids"))
    except FileNotFoundError as err:
        raise FewshotError(f"episode file not found: {path}") from err
    except (*_UNREADABLE, json.JSONDecodeError) as err:
        raise FewshotError(_unreadable(path, err)) from err
    if not isinstance(meta, dict) or meta.get("version") != EPISODE_FILE_VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise FewshotError(f"{path}: unsupported episode file version {version!r}")
    return (meta, *arrays)


class EpisodeFile(EpisodeSource):
    """Episodes read back from a file written by `EpisodeSampler.save`.

    It behaves like an `EpisodeSampler` (``episodes``, ``iter_indices``, ``gather``,
    iteration as a batch sampler), so every method can be evaluated on the same episodes.
    Loading checks the data fingerprint: episodes drawn for another data set are refused.
    """

    def __init__(self, path: str | os.PathLike[str], labels: Sequence[int] | np.ndarray | torch.Tensor):
        meta, self.support, self.query, self.class_ids = _read_archive(path)
        self.labels = as_label_array(labels)
        self.fingerprint = labels_fingerprint(self.labels)
        if meta.get("fingerprint") != self.fingerprint:
            raise FewshotError(
                f"{path} was drawn for another data set (fingerprint {meta.get('fingerprint')}, "
                f"this one is {self.fingerprint}): use the same data set and split"
            )
        try:
            self.ways, self.shots, self.queries = int(meta["ways"]), int(meta["shots"]), int(meta["queries"])
            self.seed, self.n_episodes = int(meta["seed"]), int(meta["episodes"])
            self.within_group, self.variable = bool(meta.get("within_group")), bool(meta.get("variable"))
        except (KeyError, TypeError, ValueError) as err:
            raise FewshotError(f"{path} is damaged: its settings are incomplete ({err})") from err
        if self.ways < 2 or self.shots < 1 or self.queries < 1:
            raise FewshotError(
                f"{path} holds {self.ways}-way {self.shots}-shot {self.queries}-query episodes: "
                "an episode needs at least 2 ways, 1 shot and 1 query"
            )
        self._check_arrays(path)

    def _check_arrays(self, path: str | os.PathLike[str]) -> None:
        """Refuse arrays whose shapes, indices or classes disagree with the settings and labels."""
        n = self.n_episodes
        if (
            self.support.shape != (n, self.ways, self.shots)
            or self.query.shape != (n, self.ways, self.queries)
            or self.class_ids.shape != (n, self.ways)
        ):
            raise FewshotError(f"{path} is damaged: its arrays do not match its settings")
        self._check_padding(path)
        for items in (self.support, self.query):
            used = items >= 0  # all of them, unless the episodes are variable
            if items.size and (items.max() >= self.labels.size or (not self.variable and not used.all())):
                raise FewshotError(f"{path} is damaged: item indices outside 0..{self.labels.size - 1}")
            expected = np.broadcast_to(self.class_ids[:, :, None], items.shape)
            if not np.array_equal(self.labels[items[used]], expected[used]):
                raise FewshotError(f"{path} is damaged: items do not belong to their episode's classes")

    def _check_padding(self, path: str | os.PathLike[str]) -> None:
        """Variable episodes: at least 2 classes and 1 shot each, -1 only past them."""
        if not self.variable:
            return
        ways = (self.class_ids >= 0).sum(axis=1)
        shots = (self.support[:, 0, :] >= 0).sum(axis=1)
        slot, shot = np.arange(self.ways), np.arange(self.shots)
        wanted_class = slot[None, :] < ways[:, None]
        wanted_support = wanted_class[:, :, None] & (shot[None, None, :] < shots[:, None, None])
        if (
            (ways.size and (ways.min() < 2 or shots.min() < 1))
            or not np.array_equal(self.class_ids >= 0, wanted_class)
            or not np.array_equal(self.support >= 0, wanted_support)
            or not np.array_equal(
                self.query >= 0, np.broadcast_to(wanted_class[:, :, None], self.query.shape)
            )
        ):
            raise FewshotError(f"{path} is damaged: its variable episodes are padded wrongly")

    def sample_indices(self, start: int = 0, count: int | None = None) -> EpisodeIndices:
        end = self.n_episodes if count is None else start + count
        return EpisodeIndices(self.support[start:end], self.query[start:end], self.class_ids[start:end])
