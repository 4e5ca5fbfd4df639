"""The checks vectors, ids, metadata and FAISS parts pass on their way into an index."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fewshot.index.base import EmbeddingIndexError, faiss_metric, faiss_module


def as_matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    """Any array-like (NumPy, torch, lists) -> C-contiguous float32 ``(n, dim)``."""
    if hasattr(vectors, "detach"):  # a torch tensor, without importing torch
        vectors = vectors.detach().cpu().numpy()
    array = np.asarray(vectors)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise EmbeddingIndexError(f"{what} must be a 2-d array (n, {dim}); got shape {array.shape}")
    if array.shape[1] != dim:
        raise EmbeddingIndexError(
            f"{what} have dimension {array.shape[1]} but the index holds {dim}-d vectors"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise EmbeddingIndexError(f"{what} must be numbers; got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def check_finite(array: np.ndarray, what: str, unit_rows: bool = False) -> None:
    """Refuse NaN or infinite values. Row sums carry any NaN or inf along without the n*dim
    boolean temporary of ``np.isfinite(array).all()``; float64 keeps finite rows from
    overflowing, except for unit-length rows (cosine), whose float32 sums cannot overflow."""
    sums = array.sum(axis=1) if unit_rows else array.sum(axis=1, dtype=np.float64)
    if not np.isfinite(sums).all():
        raise EmbeddingIndexError(f"{what} contain NaN or infinite values")


def normalised(array: np.ndarray, source: Any) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), never modifying the caller's `source`."""
    if array is source or array.base is not None:  # may be the caller's memory (or a torch view)
        array = array.copy()
    faiss_module().normalize_L2(array)  # in place, multi-threaded
    return array


def prepared(vectors: Any, dim: int, metric: str, what: str) -> np.ndarray:
    """`vectors` as the float32 ``(n, dim)`` matrix FAISS takes: unit rows for cosine, all finite."""
    array = as_matrix(vectors, dim, what)
    if metric == "cosine":
        array = normalised(array, vectors)  # a NaN or inf anywhere leaves its row NaN
    check_finite(array, what, unit_rows=metric == "cosine")
    return array


def checked_ids(ids: Sequence[str] | None, n: int, start: int) -> list[str]:
    """`n` distinct string ids; default: the running numbers ``start``, ``start + 1``, ..."""
    if ids is None:  # running numbers: strings, and unique among themselves by construction
        return list(map(str, range(start, start + n)))
    ids = list(ids)
    if len(ids) != n:
        raise EmbeddingIndexError(f"got {n} vectors but {len(ids)} ids")
    if not set(map(type, ids)) <= {str}:  # C-speed checks: these run once per item
        bad = next(i for i in ids if not isinstance(i, str))
        raise EmbeddingIndexError(f"ids must be strings; got {type(bad).__name__} {bad!r}")
    if len(set(ids)) != n:
        dup = next(i for i in ids if ids.count(i) > 1)
        raise EmbeddingIndexError(f"duplicate id {dup!r} among the ids given")
    return ids


def check_new_ids(ids: list[str], taken: Mapping[str, int]) -> None:
    """Refuse ids already in the index (`taken`: string id -> FAISS id)."""
    if not taken.keys().isdisjoint(ids):
        clash = [i for i in ids if i in taken]
        raise EmbeddingIndexError(
            f"{len(clash)} id(s) already in the index (e.g. {clash[0]!r}); remove them first"
        )


def check_present(ids: list[str], taken: Mapping[str, int]) -> None:
    """Refuse ids not in the index (`taken`: string id -> FAISS id)."""
    missing = [i for i in ids if i not in taken]
    if missing:
        raise EmbeddingIndexError(f"{len(missing)} id(s) not in the index (e.g. {missing[0]!r})")


def checked_metadata(
    metadata: Sequence[Mapping[str, Any] | None] | None, n: int
) -> list[dict[str, Any] | None]:
    """`n` JSON-able metadata dicts (copies) or None entries."""
    if metadata is None:
        return [None] * n
    metas = [None if m is None else dict(m) for m in metadata]
    if len(metas) != n:
        raise EmbeddingIndexError(f"got {n} vectors but {len(metas)} metadata entries")
    try:
        json.dumps(metas, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise EmbeddingIndexError(f"metadata must be JSON-able dicts: {err}") from err
    return metas


def item_tables(
    faiss_index: Any,
    metric: str,
    ids: Sequence[str],
    metadata: Sequence[dict[str, Any] | None],
    labels: Sequence[int] | None,
    next_label: int | None,
) -> tuple[list[str | None], list[dict[str, Any] | None]]:
    """FAISS id -> string id and FAISS id -> metadata tables for the items of `faiss_index`,
    whose FAISS ids are `labels` (default ``0 .. n - 1``); both tables are `next_label` long."""
    labels = list(range(len(ids))) if labels is None else list(labels)
    next_label = max(labels, default=-1) + 1 if next_label is None else next_label
    if not len(labels) == len(ids) == len(metadata) == faiss_index.ntotal:
        raise EmbeddingIndexError(
            f"{len(labels)} labels, {len(ids)} ids and {len(metadata)} metadata entries "
            f"for a FAISS index of {faiss_index.ntotal} vectors"
        )
    if faiss_index.metric_type != faiss_metric(metric):
        raise EmbeddingIndexError(f"the FAISS index's metric is not {metric!r}")
    keys: list[str | None] = [None] * next_label
    metas: list[dict[str, Any] | None] = [None] * next_label
    for label, key, meta in zip(labels, ids, metadata, strict=True):
        keys[label] = key
        metas[label] = meta
    return keys, metas
