"""The embedding folder `fewshot embed` writes: Parquet shards and their manifest.

A folder holds ``embed.json`` (the manifest: format, settings, status, one entry per shard
with its first row, rows and rows embedded) and ``part-00000.parquet``, ... Each shard has the
columns ``id``, ``path`` (strings), ``embedding`` (``fixed_size_list<float32>[dim]``, null
for an image that could not be read), ``error`` (null, or why the image was skipped) and
``metadata`` (a JSON object as a string). Shards are written whole and atomically
(`fewshot.fileio.atomic_write_bytes`): a shard file that exists is finished, so a rerun skips
it and never writes a row twice. Readers go shard by shard, batch by batch
(`iter_embeddings`), so no reader needs all embeddings at once.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.errors import CheckpointError, FewshotError

FORMAT = "fewshot-embeddings"
VERSION = 1
MANIFEST = "embed.json"
COLUMNS = ("id", "path", "embedding", "error", "metadata")


def pyarrow_modules():
    """``(pyarrow, pyarrow.parquet)``, or one line saying how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise FewshotError("embedding shards need pyarrow: pip install 'fewshot[ray]'") from err
    return pa, pq


def shard_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


@dataclass
class ShardPlan:
    """Shard `number` holds the items ``start .. start + rows - 1`` of the source."""

    number: int
    start: int
    rows: int

    @property
    def name(self) -> str:
        return shard_name(self.number)


def plan_shards(count: int, shard_size: int) -> list[ShardPlan]:
    """`count` items cut into shards of `shard_size` (the last one shorter)."""
    if shard_size < 1:
        raise FewshotError(f"--shard-size must be >= 1; got {shard_size}")
    starts = range(0, count, shard_size)
    return [ShardPlan(i, s, min(shard_size, count - s)) for i, s in enumerate(starts)]


def manifest_document(
    settings: dict[str, Any], plans: Sequence[ShardPlan], done: dict[int, int], status: str
):
    """``embed.json`` as bytes; `done` maps a finished shard's number to its embedded rows."""
    shards = [
        {"name": p.name, "start": p.start, "rows": p.rows, "embedded": done.get(p.number)} for p in plans
    ]
    doc = {"format": FORMAT, "version": VERSION, "status": status, "settings": settings, "shards": shards}
    return (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode()


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated manifest of an embedding folder (`CheckpointError` when missing or foreign)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{directory} holds no embeddings ({MANIFEST} is missing)")
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is damaged (not valid JSON: {err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fewshot embeddings manifest")
    if doc.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has format version {doc.get('version')!r}; this fewshot reads {VERSION}"
        )
    if not isinstance(doc.get("shards"), list) or not isinstance(doc.get("settings"), dict):
        raise CheckpointError(f"{path} is damaged: no shard list or settings")
    return doc


def shard_table(rows: Sequence[dict[str, Any]], dim: int):
    """A pyarrow table of one shard from rows ``{"id", "path", "embedding" (array or None),
    "error", "metadata"}``, in order."""
    pa, _ = pyarrow_modules()
    vectors = np.zeros((len(rows), dim), dtype=np.float32)
    valid = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        if row["embedding"] is not None:
            vectors[i], valid[i] = row["embedding"], True
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    embedding = pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~valid))
    return pa.table(
        {
            "id": pa.array([r["id"] for r in rows], type=pa.string()),
            "path": pa.array([r["path"] for r in rows], type=pa.string()),
            "embedding": embedding,
            "error": pa.array([r["error"] for r in rows], type=pa.string()),
            "metadata": pa.array([json.dumps(r["metadata"], sort_keys=True) for r in rows], type=pa.string()),
        }
    )


def write_shard(directory: Path, plan: ShardPlan, rows: Sequence[dict[str, Any]], dim: int) -> int:
    """Write shard `plan` atomically; returns how many of its rows have an embedding."""
    from fewshot.fileio import atomic_write_bytes

    if len(rows) != plan.rows:  # pragma: no cover - the engines hand over whole shards
        raise RuntimeError(f"shard {plan.number}: {len(rows)} rows, planned {plan.rows}")
    _, pq = pyarrow_modules()
    table = shard_table(rows, dim)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    atomic_write_bytes(directory / plan.name, buffer.getvalue(), crash_before_replace="embed.shard-tmp")
    return int(sum(r["embedding"] is not None for r in rows))


def shard_rows_done(path: Path, plan: ShardPlan) -> int | None:
    """Rows embedded in a finished shard file, or None when it is absent or not this shard."""
    if not path.is_file():
        return None
    _, pq = pyarrow_modules()
    try:
        file = pq.ParquetFile(path)
        if file.metadata.num_rows != plan.rows:
            return None
        errors = file.read(columns=["error"]).column("error")
    except (OSError, ValueError):
        return None
    return int(plan.rows - (len(errors) - errors.null_count))


def finished_shards(directory: str | os.PathLike[str]) -> list[tuple[Path, int]]:
    """``(file, rows embedded)`` of every shard of a complete embedding folder, in order."""
    doc = read_manifest(directory)
    if doc["status"] != "done":
        raise FewshotError(
            f"--from-embeddings {directory} is not complete: run `fewshot embed` again to finish it"
        )
    return [(Path(directory) / s["name"], int(s["embedded"])) for s in doc["shards"]]


def iter_embeddings(
    path: Path, batch_rows: int = 65536, with_items: bool = True
) -> Iterator[tuple[np.ndarray, list[str], list[dict[str, Any]]]]:
    """``(vectors (b, dim) float32, ids, metadata)`` of the embedded rows of one shard, batch by
    batch (rows with an error are left out; ids and metadata empty without `with_items`)."""
    _, pq = pyarrow_modules()
    columns = ["embedding", "error"] + (["id", "metadata"] if with_items else [])
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        keep = np.asarray(batch.column("error").is_null())
        embedding = batch.column("embedding").filter(keep)
        dim = embedding.type.list_size
        flat = embedding.flatten().to_numpy(zero_copy_only=False)
        vectors = np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, dim)
        if not with_items:
            yield vectors, [], []
            continue
        ids = batch.column("id").filter(keep).to_pylist()
        metadata = [json.loads(m) for m in batch.column("metadata").filter(keep).to_pylist()]
        yield vectors, ids, metadata


__all__ = [
    "MANIFEST",
    "ShardPlan",
    "finished_shards",
    "iter_embeddings",
    "manifest_document",
    "plan_shards",
    "read_manifest",
    "shard_rows_done",
    "write_shard",
]
