"""Embed many images into Parquet shards, resumably: decode -> preprocess -> encode, streaming.

Two engines share the shard plan, the output and the resume rules (`fewshot.scale.shards`):

- ``local``: one process; a `torch.utils.data.DataLoader` with worker processes decodes
  and preprocesses while the model encodes.
- ``ray``: Ray Data (`fewshot.scale.ray_embed`): decoding in parallel tasks, encoding in an
  actor pool whose actors each hold the model (on a GPU each when the cluster has GPUs).

In both, this process alone writes: it receives the embeddings in source order and writes each
shard whole, atomically, once its last row has arrived. A rerun with the same settings skips
the shards already written; a run killed at any point (kill -9 included) and run again ends
with exactly the files of an uninterrupted run. A Ray actor killed mid-batch has its batch
redone by Ray; since rows are collected by position, no row is written twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from fewshot.errors import FewshotError
from fewshot.faults import crash_point
from fewshot.scale.encoding import EmbedSummary, EncoderSpec, Rows, decode_item, rows_of
from fewshot.scale.shards import ShardPlan
from fewshot.scale.sources import Item

ENGINES = ("local", "ray")


class _Decoded:
    """A map-style data set of preprocessed images (a DataLoader's workers call it)."""

    def __init__(self, items: Sequence[Item], transform: Callable) -> None:
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return (i, *decode_item(self.items[i].path, self.transform))


def _collate(batch):
    import torch

    good = [(i, x) for i, x, e in batch if e is None]
    errors = {i: e for i, _, e in batch if e is not None}
    images = torch.stack([x for _, x in good]) if good else None
    return [i for i, _ in good], images, errors


def local_shards(
    items: Sequence[Item], plans: Sequence[ShardPlan], encoder, transform, batch_size: int, workers: int, bar
) -> Iterator[tuple[ShardPlan, Rows]]:
    """The ``local`` engine: each planned shard's rows, decoded by `workers` processes."""
    from torch.utils.data import DataLoader

    from fewshot.index.images import embed_image_batch

    for plan in plans:
        chunk = items[plan.start : plan.start + plan.rows]
        loader = DataLoader(
            _Decoded(chunk, transform),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=_collate,
            prefetch_factor=4 if workers else None,
        )
        vectors: dict[int, np.ndarray] = {}
        errors: dict[int, str] = {}
        for positions, images, failed in loader:
            errors.update(failed)
            if images is not None:
                vectors.update(zip(positions, embed_image_batch(encoder, images), strict=True))
            bar.update(len(positions) + len(failed))
        yield plan, rows_of(chunk, vectors, errors)


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise FewshotError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise FewshotError("--engine ray needs Ray: pip install 'fewshot[ray]'") from None


def embed_items(
    items: Sequence[Item],
    out: str | os.PathLike[str],
    encoder: EncoderSpec,
    *,
    engine: str = "local",
    shard_size: int = 10_000,
    batch_size: int = 64,
    workers: int | None = None,
    actors: int | None = None,
    device: str = "auto",
    restart: bool = False,
    progress: bool | None = None,
) -> EmbedSummary:
    """Embed `items` with `encoder` into Parquet shards of `shard_size` rows under `out`.

    Args:
        engine: ``local`` or ``ray`` (Ray is started locally unless ``RAY_ADDRESS`` names a cluster).
        workers: ``local``: decoding processes (None: ``min(8, cpus)``; 0: in-process).
        actors: ``ray``: model actors (None: one per GPU, or 1 without GPUs).
        restart: discard what an earlier run with other settings wrote, instead of refusing.

    Raises:
        FewshotError: bad settings, or `out` holds embeddings made with other settings.
    """
    from fewshot.device import resolve_device
    from fewshot.index.images import image_transform
    from fewshot.locking import exclusive_lock
    from fewshot.scale.embed_run import open_embedding_run

    check_engine(engine)
    if batch_size < 1:
        raise FewshotError(f"--batch-size must be >= 1; got {batch_size}")
    out = Path(out).expanduser()
    where = resolve_device(device)
    model = encoder.build("cpu" if engine == "ray" else where)
    transform = image_transform(model)
    with exclusive_lock(out.resolve(), "these embeddings"):
        run = open_embedding_run(out, items, encoder, model, shard_size, restart)
        start = time.perf_counter()
        todo = run.pending()
        count = sum(p.rows for p in todo)
        with _bar(count, progress) as bar:
            if engine == "local":
                workers = min(8, os.cpu_count() or 1) if workers is None else workers
                shards = local_shards(items, todo, model, transform, batch_size, workers, bar)
            else:
                from fewshot.scale.ray_embed import ray_shards

                shards = ray_shards(items, todo, encoder, transform, batch_size, actors, device, bar)
            for plan, rows in shards:
                run.write(plan, rows)
                crash_point("embed.shard")
        seconds = time.perf_counter() - start
        run.finish()
    return run.summary(engine, seconds, count)


def _bar(total: int, progress: bool | None):
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    return tqdm(
        total=total, desc="embed", unit="img", disable=not show_progress(progress), dynamic_ncols=True
    )


__all__ = ["ENGINES", "EmbedSummary", "EncoderSpec", "check_engine", "decode_item", "embed_items"]
