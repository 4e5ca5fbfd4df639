"""Embedding files: precomputed feature vectors with labels and class names.

Any learner can run on precomputed features (CLIP image embeddings, a frozen backbone's
outputs): save them once, then give the file wherever a data set is expected
(``--dataset features.npz``). The format is a plain ``.npz`` read with
``allow_pickle=False``:

- ``vectors``: float32 ``(n, d)``
- ``labels``: int64 ``(n,)`` in ``0..len(class_names)-1``
- ``class_names``: unicode ``(n_classes,)``
- ``meta``: a JSON string (format name and version, plus free-form info such as the encoder)
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError

FORMAT = "fewshot-embeddings"
VERSION = 1


def _checked_arrays(
    vectors: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    class_names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """float32 ``(n, d)`` vectors, int64 ``(n,)`` labels and the class names, checked to fit together."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    labels = np.asarray(labels)
    names = [str(n) for n in class_names]
    if vectors.ndim != 2 or labels.shape != (vectors.shape[0],):
        raise DataError(f"vectors must be (n, d) and labels (n,), got {vectors.shape} and {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if len(set(names)) != len(names):
        raise DataError("class names must be unique")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(f"labels must lie in 0..{len(names) - 1} (one per class name)")
    return vectors, labels, names


def save_embeddings(
    path: str | os.PathLike[str],
    vectors: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    class_names: Sequence[str],
    info: dict[str, Any] | None = None,
) -> Path:
    """Write an embedding file atomically.

    Args:
        vectors: ``(n, d)`` features (stored as float32).
        labels: ``(n,)`` integer class ids in ``0..len(class_names)-1``.
        class_names: the name of every class id.
        info: JSON-able description (encoder name, source folder, ...).

    Raises:
        DataError: shapes or labels do not fit together, or `info` is not JSON-able.
    """
    from fewshot.fileio import atomic_write_bytes

    vectors, labels, names = _checked_arrays(vectors, labels, class_names)
    try:
        meta = json.dumps({"format": FORMAT, "version": VERSION, "info": info or {}})
    except (TypeError, ValueError) as err:
        raise DataError(f"embedding file info must be JSON-able ({err})") from err
    buffer = io.BytesIO()
    np.savez(
        buffer,
        vectors=vectors,
        labels=labels,
        class_names=np.array(names, dtype=str) if names else np.zeros(0, dtype="<U1"),
        meta=np.array(meta),
    )
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    return atomic_write_bytes(path, buffer.getvalue())


def _read_archive(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], Any]:
    """The vectors, labels, class names and meta record of an embedding file, unchecked."""
    import zipfile

    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is not an embedding file (.npz with vectors, labels, class_names)")
        with archive:
            missing = {"vectors", "labels", "class_names", "meta"} - set(archive.files)
            if missing:
                raise DataError(f"{path} is not an embedding file: it lacks {', '.join(sorted(missing))}")
            vectors, labels = archive["vectors"], archive["labels"]
            names, meta = [str(n) for n in archive["class_names"]], json.loads(str(archive["meta"]))
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not a readable embedding file ({err})") from err
    return vectors, labels, names, meta


def _check_contents(path: Path, vectors: np.ndarray, labels: np.ndarray, names: list[str], meta: Any) -> None:
    """Refuse a file of another format or version, or arrays that do not fit together."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path} is not a fewshot embedding file")
    if meta.get("version") != VERSION:
        raise DataError(f"{path}: unsupported embedding file version {meta.get('version')!r}")
    if (
        vectors.ndim != 2
        or labels.shape != (vectors.shape[0],)
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise DataError(f"{path} is damaged: vectors {vectors.shape}, labels {labels.shape} {labels.dtype}")
    if len(set(names)) != len(names):
        raise DataError(f"{path} is damaged: repeated class names")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(f"{path} is damaged: labels outside 0..{len(names) - 1}")
    if not np.issubdtype(vectors.dtype, np.floating):
        raise DataError(f"{path} is damaged: vectors of dtype {vectors.dtype}")


def load_embeddings(path: str | os.PathLike[str]) -> LabeledTensors:
    """Read an embedding file (never unpickles).

    Returns:
        `LabeledTensors` with ``data`` float32 ``(n, d)``, labels ``(n,)`` and class names;
        ``info`` holds the saved info plus ``dataset="embeddings"`` and the path.

    Raises:
        DataError: missing, truncated, or not an embedding file, or inconsistent arrays.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"embedding file not found: {path}")
    vectors, labels, names, meta = _read_archive(path)
    _check_contents(path, vectors, labels, names, meta)
    info = {**meta.get("info", {}), "dataset": "embeddings", "path": str(path)}
    return LabeledTensors(
        torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)),
        torch.from_numpy(labels.astype(np.int64)),
        names,
        info,
    )
