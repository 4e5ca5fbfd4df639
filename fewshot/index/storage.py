"""Saving and loading an `EmbeddingIndex`: a FAISS file plus a JSON sidecar, atomically, no pickle.

An index directory holds:

- ``index-<token>.faiss``: the FAISS index (``faiss.serialize_index``), named afresh on every save;
- ``index.json``: the sidecar: format and version, dimension, metric, factory string, encoder
  record (name, config, and size and SHA-256 of a local weights file; see
  `fewshot.index.recorded`), the FAISS file's name, size and SHA-256, and the items (FAISS id,
  string id, metadata).

A save (holding the directory's writer lock, ``<dir>.lock``) fsyncs the new FAISS file under a
new name, then fsyncs the new sidecar under a temporary name and renames it over ``index.json``:
that rename is the commit. A crash (even ``kill -9``) before it leaves the previous sidecar
pointing at the previous FAISS file, untouched; after it, the new pair is complete. Files no
sidecar points at (FAISS files, temporary sidecars) are deleted after the commit, or by the
next writer (`remove_stale`). Loading checks the sidecar's fields, the FAISS file's checksum,
and that the FAISS index agrees with the sidecar (dimension, metric, count), so a half-written
index is never loaded.

This module sees an index only through its public state (`VectorIndex.items`, `next_label`,
`faiss_index`) when saving, and reads a save back as a `SavedIndex`, the parts from which
`EmbeddingIndex.load` builds the index (`VectorIndex.from_parts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshot.errors import CheckpointError
from fewshot.faults import crash_point
from fewshot.fileio import atomic_write_bytes
from fewshot.index.base import faiss_message, faiss_module
from fewshot.index.sidecar import (
    FAISS_NAME,
    FORMAT,
    FORMAT_VERSION,
    SIDECAR,
    check_faiss_agrees,
    make_sidecar,
    read_sidecar,
)
from fewshot.locking import exclusive_lock

if TYPE_CHECKING:
    from fewshot.index.core import VectorIndex

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SIDECAR",
    "SavedIndex",
    "is_index_dir",
    "read_index",
    "read_sidecar",
    "remove_stale",
    "save_index",
]

_TMP_NAME = re.compile(r"^\.index\.json\..*\.tmp$")


def is_index_dir(directory: str | os.PathLike[str]) -> bool:
    """True when `directory` holds a saved index sidecar."""
    return (Path(directory) / SIDECAR).is_file()


def _write_faiss_file(path: Path, payload: np.ndarray) -> None:
    """Write the serialised index and fsync it (the name is fresh, so no temp file is needed)."""
    with open(path, "xb") as handle:
        handle.write(memoryview(payload))
        handle.flush()
        os.fsync(handle.fileno())


def save_index(
    index: VectorIndex,
    directory: str | os.PathLike[str],
    *,
    encoder: dict[str, Any] | None = None,
    lock: bool = True,
) -> Path:
    """Save `index` into `directory` (created if needed) so that a crash keeps the previous save.

    `encoder` is the record of the index's encoder (`fewshot.index.recorded.encoder_record`),
    stored as the sidecar's ``encoder``. With `lock` (the default) the save holds the
    directory's writer lock (`fewshot.locking.exclusive_lock`); a caller that already holds it
    passes ``lock=False``.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory} exists and is not a directory")
    if not lock:
        return _save(index, encoder, directory)
    with exclusive_lock(directory.expanduser().resolve(), "this index"):
        return _save(index, encoder, directory)


def _save(index: VectorIndex, encoder: dict[str, Any] | None, directory: Path) -> Path:
    payload = faiss_module().serialize_index(index.faiss_index)
    faiss_name = f"index-{secrets.token_hex(8)}.faiss"
    sidecar = make_sidecar(index, encoder, payload, faiss_name)
    encoded = json.dumps(sidecar, allow_nan=False, separators=(",", ":"))
    directory.mkdir(parents=True, exist_ok=True)
    crash_point("index.save.start")
    faiss_path = directory / faiss_name
    try:
        _write_faiss_file(faiss_path, payload)
        crash_point("index.save.faiss-written")
        _write_sidecar(directory, encoded.encode())  # the commit point
    except BaseException:
        faiss_path.unlink(missing_ok=True)
        raise
    crash_point("index.save.committed")
    remove_stale(directory, keep=faiss_name)
    return directory


def _write_sidecar(directory: Path, encoded: bytes) -> None:
    """Write the sidecar under a temporary name, then rename it over ``index.json``."""
    atomic_write_bytes(directory / SIDECAR, encoded, crash_before_replace="index.save.sidecar-written")
    _fsync_dir(directory)


def remove_stale(directory: str | os.PathLike[str], keep: str | None = None) -> list[str]:
    """Delete what interrupted saves left behind: FAISS files the sidecar does not name and
    temporary sidecars. Only a writer holding the directory's lock may call this (a concurrent
    save's files are not stale). Returns the names removed."""
    directory = Path(directory)
    if keep is None:
        try:
            keep = read_sidecar(directory)["faiss_file"]
        except CheckpointError:
            return []  # no valid sidecar: nothing can be told apart, leave everything
    removed = []
    for path in sorted(directory.iterdir()):
        faiss_orphan = FAISS_NAME.match(path.name) and path.name != keep
        if faiss_orphan or _TMP_NAME.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path.name)
            crash_point("index.save.stale-removed")
    return removed


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _read_files(directory: Path, attempts: int = 3) -> tuple[dict[str, Any], np.ndarray]:
    """The sidecar and the FAISS bytes it names, checked against its size and checksum.

    A save that commits between reading the sidecar and reading the FAISS file deletes the
    file the old sidecar named; the sidecar is then read again (a writer is never waited on).
    """
    for attempt in range(attempts):
        sidecar = read_sidecar(directory)
        faiss_path = directory / sidecar["faiss_file"]
        try:
            payload = np.fromfile(faiss_path, dtype=np.uint8)
        except FileNotFoundError:
            problem = f"{directory}: the FAISS file {sidecar['faiss_file']} named by {SIDECAR} is missing"
        except OSError as err:
            problem = f"cannot read {faiss_path}: {err.strerror or err}"
        else:
            if (
                payload.nbytes == sidecar["faiss_bytes"]
                and hashlib.sha256(memoryview(payload)).hexdigest() == sidecar["faiss_sha256"]
            ):
                return sidecar, payload
            problem = f"{faiss_path} is damaged: its size or checksum differs from the one in {SIDECAR}"
        if attempt + 1 == attempts or read_sidecar(directory)["faiss_file"] == sidecar["faiss_file"]:
            raise CheckpointError(problem)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class SavedIndex:
    """A saved index read back and checked: the parts `VectorIndex.from_parts` takes."""

    directory: Path
    faiss_index: Any
    dim: int
    metric: str
    factory: str
    labels: list[int]
    ids: list[str]
    metadata: list[dict[str, Any] | None]
    next_label: int
    encoder: dict[str, Any] | None  # the encoder record, see `fewshot.index.recorded`

    @property
    def sidecar_path(self) -> Path:
        return self.directory / SIDECAR


def read_index(directory: str | os.PathLike[str]) -> SavedIndex:
    """Read and validate an index saved by `save_index`: the sidecar's fields, the FAISS file's
    checksum, and that the FAISS index agrees with the sidecar (dimension, metric, ids).

    Raises:
        CheckpointError: missing, damaged, foreign or mismatched files.
    """
    faiss = faiss_module()
    directory = Path(directory)
    sidecar, payload = _read_files(directory)
    faiss_path = directory / sidecar["faiss_file"]
    try:
        raw = faiss.deserialize_index(payload)
    except RuntimeError as err:
        raise CheckpointError(f"{faiss_path} is not a readable FAISS index: {faiss_message(err)}") from err
    check_faiss_agrees(raw, sidecar, directory)
    items = sidecar["items"]
    return SavedIndex(
        directory=directory,
        faiss_index=raw,
        dim=sidecar["dim"],
        metric=sidecar["metric"],
        factory=sidecar["factory"],
        labels=items["labels"],
        ids=items["ids"],
        metadata=items["metadata"],
        next_label=sidecar["next_label"],
        encoder=sidecar.get("encoder"),
    )
