"""An index built from embedding shards: train once, add each shard in parallel, merge.

FAISS's recipe for indexes larger than one process (as autofaiss and clip-retrieval run it on
Spark), here on Ray tasks or in this process:

1. Train the empty index once, on a seeded sample of the embeddings (``train_size`` rows, at
   least what the factory needs), read shard by shard.
2. Cut the embedding files into ``shards`` groups; each group is added to a copy of the
   trained index under the global FAISS ids of its rows (a Ray task each with
   ``engine="ray"``), and written to ``shards/shard-NNNNN.faiss``.
3. ``layout="ondisk"`` (IVF factories): the groups' inverted lists are merged into one
   ``OnDiskInvertedLists`` file (``merged-<token>.ivfdata``, memory-mapped when searched)
   and the index saved with the usual sidecar (`fewshot.index.storage`), so
   ``EmbeddingIndex.load`` and ``fewshot index search`` read it as any other index.
   ``layout="shards"``: the group indexes stay, served together as a FAISS ``IndexShards``
   (`load_sharded`), any factory.

The rows' ids and metadata are carried into the sidecar. No step holds more than one file's
batch of embeddings, the training sample and one group's index. Search results equal those of
one `VectorIndex` of the same factory trained on the same sample with every row added in order
(FAISS ids are the rows' positions, so inverted lists hold the same entries in the same order).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.errors import FewshotError
from fewshot.faults import crash_point
from fewshot.fileio import atomic_write_bytes
from fewshot.index.base import build_faiss_index, faiss_module, train_faiss_index, training_size
from fewshot.index.inputs import prepared
from fewshot.scale.shards import finished_shards, iter_embeddings, read_manifest

LAYOUTS = ("ondisk", "shards")
SHARDS_FILE = "shards.json"


def _dim(files: list[tuple[Path, int]]) -> int:
    from fewshot.scale.shards import pyarrow_modules

    _, pq = pyarrow_modules()
    for path, _ in files:
        return int(pq.read_schema(path).field("embedding").type.list_size)
    raise FewshotError("--from-embeddings: no shards")


def training_sample(files: list[tuple[Path, int]], size: int, seed: int, dim: int, metric: str) -> np.ndarray:
    """``(min(size, rows), dim)`` rows drawn without replacement (seeded), read file by file."""
    total = sum(rows for _, rows in files)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
    sample, start = [], 0
    for path, rows in files:
        wanted = chosen[(chosen >= start) & (chosen < start + rows)] - start
        if wanted.size:
            offset = 0
            for vectors, _, _ in iter_embeddings(path, with_items=False):
                here = wanted[(wanted >= offset) & (wanted < offset + len(vectors))] - offset
                sample.append(vectors[here])
                offset += len(vectors)
        start += rows
    return prepared(
        np.concatenate(sample) if sample else np.zeros((0, dim), np.float32), dim, metric, "vectors"
    )


def add_group(trained: bytes, files: list[str], first_label: int, metric: str, out: str) -> int:
    """Add the rows of `files` to a copy of the `trained` index (serialised) under the FAISS ids
    ``first_label, first_label + 1, ...``; write it to `out` atomically; the rows added."""
    faiss = faiss_module()
    index = faiss.deserialize_index(np.frombuffer(trained, dtype=np.uint8).copy())
    label = first_label
    for path in files:
        for vectors, _, _ in iter_embeddings(Path(path), with_items=False):
            array = prepared(vectors, index.d, metric, "vectors")
            index.add_with_ids(array, np.arange(label, label + len(array), dtype=np.int64))
            label += len(array)
    atomic_write_bytes(out, faiss.serialize_index(index).tobytes(), crash_before_replace="index.shard-tmp")
    return label - first_label


def _groups(files: list[tuple[Path, int]], shards: int) -> list[tuple[list[str], int]]:
    """`files` in at most `shards` contiguous groups: ``(paths, first FAISS id)``."""
    parts = np.array_split(np.arange(len(files)), min(shards, len(files)))
    groups, label = [], 0
    for part in parts:
        groups.append(([str(files[i][0]) for i in part], label))
        label += sum(files[i][1] for i in part)
    return groups


def _run_groups(trained: bytes, groups, metric: str, folder: Path, engine: str) -> list[Path]:
    outs = [folder / f"shard-{i:05d}.faiss" for i in range(len(groups))]
    jobs = [(paths, first, metric, str(out)) for (paths, first), out in zip(groups, outs, strict=True)]
    if engine == "ray":
        import ray

        from fewshot.scale.ray_embed import ensure_ray

        ensure_ray()
        task = ray.remote(add_group)
        blob = ray.put(trained)
        ray.get([task.remote(blob, *job) for job in jobs])
    else:
        for job in jobs:
            add_group(trained, *job)
    for _ in outs:
        crash_point("index.shard")
    return outs


def _items(files: list[tuple[Path, int]]) -> tuple[list[str], list[dict[str, Any]]]:
    ids: list[str] = []
    metadata: list[dict[str, Any]] = []
    for path, _ in files:
        for _, batch_ids, batch_meta in iter_embeddings(path):
            ids.extend(batch_ids)
            metadata.extend(batch_meta)
    if len(set(ids)) != len(ids):
        raise FewshotError("--from-embeddings: the shards repeat an id; embed each image once")
    return ids, metadata


def trained_index(files, factory: str, metric: str, dim: int, train_size: int, seed: int):
    """The empty FAISS index of `factory`, trained on the sample when it needs training."""
    index = build_faiss_index(dim, factory, metric)
    total = sum(rows for _, rows in files)
    needed = training_size(index) if not index.is_trained else 0
    if needed:
        if total < needed:
            raise FewshotError(
                f"--factory {factory!r} needs at least {needed} vectors to train; the embeddings hold {total}"
            )
        sample = training_sample(files, max(train_size, needed), seed, dim, metric)
        train_faiss_index(index, sample, needed, factory)
    return index


def build_sharded(
    embeddings: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    factory: str = "IVF256,Flat",
    metric: str = "cosine",
    shards: int = 4,
    layout: str = "ondisk",
    engine: str = "local",
    train_size: int = 100_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the index of the embedding folder `embeddings` into `out` (see the module doc).
    Call it with `out`'s lock held; returns the summary (items, shards, layout, factory, ...)."""
    if layout not in LAYOUTS:
        raise FewshotError(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if shards < 1:
        raise FewshotError(f"--shards must be >= 1; got {shards}")
    files = [(p, n) for p, n in finished_shards(embeddings) if n]
    dim = _dim(files)
    index = trained_index(files, factory, metric, dim, train_size, seed)
    faiss = faiss_module()
    if layout == "ondisk" and faiss.try_extract_index_ivf(index) is None:
        raise FewshotError(
            f"--layout ondisk merges inverted lists: an IVF --factory (not {factory!r}) or --layout shards"
        )
    out = Path(out)
    folder = out / "shards"
    folder.mkdir(parents=True, exist_ok=True)
    trained = faiss.serialize_index(index).tobytes()
    parts = _run_groups(trained, _groups(files, shards), metric, folder, engine)
    ids, metadata = _items(files)
    record = read_manifest(embeddings)["settings"]["encoder"].get("index_record")
    if layout == "ondisk":
        _merge(index, parts, out, ids, metadata, metric, factory, record)
    else:
        _write_shards_file(out, parts, ids, metadata, dim, metric, factory, record)
    return {"index": str(out), "items": len(ids), "shards": len(parts), "layout": layout,
            "factory": factory, "metric": metric, "dim": dim}  # fmt: skip


def _merge(index, parts: list[Path], out: Path, ids, metadata, metric, factory, record) -> None:
    from faiss.contrib.ondisk import merge_ondisk

    from fewshot.index.core import VectorIndex
    from fewshot.index.storage import save_index

    token = secrets.token_hex(8)
    ivfdata = (out / f"merged-{token}.ivfdata").resolve()
    merge_ondisk(index, [str(p) for p in parts], str(ivfdata))
    crash_point("index.merged")
    vectors = VectorIndex.from_parts(index, ids, metadata, metric=metric, factory=factory, device="cpu")
    save_index(vectors, out, encoder=record, lock=False)  # the commit point
    for stale in out.glob("merged-*.ivfdata"):
        if stale != ivfdata:
            stale.unlink(missing_ok=True)
    for part in parts:
        part.unlink(missing_ok=True)
    if not any(parts[0].parent.iterdir()):
        parts[0].parent.rmdir()


def _write_shards_file(out: Path, parts, ids, metadata, dim, metric, factory, record) -> None:
    doc = {"format": "fewshot-sharded-index", "version": 1, "dim": dim, "metric": metric,
           "factory": factory, "encoder": record, "shards": [p.name for p in parts],
           "items": {"ids": ids, "metadata": metadata}}  # fmt: skip
    atomic_write_bytes(out / SHARDS_FILE, json.dumps(doc, allow_nan=False).encode())


def load_sharded(directory: str | os.PathLike[str], threaded: bool = True):
    """The shards of a ``layout="shards"`` build served together: a `VectorIndex` over FAISS's
    ``IndexShards`` (each query searched in every shard, results merged by score)."""
    from fewshot.errors import CheckpointError
    from fewshot.index.core import VectorIndex

    directory = Path(directory)
    try:
        doc = json.loads((directory / SHARDS_FILE).read_bytes())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{directory} holds no readable sharded index ({SHARDS_FILE}: {err})") from None
    if doc.get("format") != "fewshot-sharded-index":
        raise CheckpointError(f"{directory / SHARDS_FILE} is not a fewshot sharded index")
    faiss = faiss_module()
    served = faiss.IndexShards(doc["dim"], threaded, False)  # ids are global already
    parts = [faiss.read_index(str(directory / "shards" / name)) for name in doc["shards"]]
    for part in parts:
        served.add_shard(part)
    served.own_indices = False
    index = VectorIndex.from_parts(
        served,
        doc["items"]["ids"],
        doc["items"]["metadata"],
        metric=doc["metric"],
        factory=doc["factory"],
        device="cpu",
    )
    index._shard_parts = parts  # keep the shards alive as long as the index
    return index


__all__ = ["LAYOUTS", "build_sharded", "load_sharded", "training_sample", "trained_index"]
