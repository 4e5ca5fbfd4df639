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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshot.errors import CheckpointError, check_format_header
from fewshot.faults import crash_point

if TYPE_CHECKING:
    from fewshot.encoders.base import Encoder
    from fewshot.index.index import EmbeddingIndex

FORMAT = "fewshot-index"
FORMAT_VERSION = 1
SIDECAR = "index.json"
_FAISS_NAME = re.compile(r"^index-[0-9a-f]{16}\.faiss$")
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


def save_index(index: EmbeddingIndex, directory: str | os.PathLike[str], *, lock: bool = True) -> Path:
    """Save `index` into `directory` (created if needed) so that a crash keeps the previous save.

    With `lock` (the default) the save holds the directory's writer lock
    (`fewshot.locking.exclusive_lock`); a caller that already holds it passes ``lock=False``.
    """
    from fewshot.locking import exclusive_lock

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory} exists and is not a directory")
    if not lock:
        return _save(index, directory)
    with exclusive_lock(directory.expanduser().resolve(), "this index"):
        return _save(index, directory)


def _save(index: EmbeddingIndex, directory: Path) -> Path:
    from fewshot.index.index import _faiss

    payload = _faiss().serialize_index(index.faiss_index)
    faiss_name = f"index-{secrets.token_hex(8)}.faiss"
    encoded = json.dumps(_sidecar(index, payload, faiss_name), allow_nan=False, separators=(",", ":"))
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


def _sidecar(index: EmbeddingIndex, payload: np.ndarray, faiss_name: str) -> dict[str, Any]:
    from fewshot import __version__
    from fewshot.index.recorded import encoder_record

    labels, ids, metadata = [], [], []
    for label, key, meta in index._items():
        labels.append(label)
        ids.append(key)
        metadata.append(meta)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "dim": index.dim,
        "metric": index.metric,
        "factory": index.factory,
        "encoder": encoder_record(index),
        "faiss_file": faiss_name,
        "faiss_bytes": int(payload.nbytes),
        "faiss_sha256": hashlib.sha256(memoryview(payload)).hexdigest(),
        "next_label": len(index._keys),
        "items": {"labels": labels, "ids": ids, "metadata": metadata},
    }


def _write_sidecar(directory: Path, encoded: bytes) -> None:
    """Write the sidecar under a temporary name, then rename it over ``index.json``."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{SIDECAR}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        crash_point("index.save.sidecar-written")
        os.replace(tmp, directory / SIDECAR)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        faiss_orphan = _FAISS_NAME.match(path.name) and path.name != keep
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


def read_sidecar(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated sidecar of a saved index.

    Raises:
        CheckpointError: no index there, or a sidecar that is damaged, foreign, of another format
            version, or inconsistent.
    """
    directory = Path(directory)
    path = directory / SIDECAR
    if not directory.is_dir():
        raise CheckpointError(f"no index directory at {directory}")
    if not path.is_file():
        raise CheckpointError(f"{directory} holds no saved index ({SIDECAR} is missing)")
    try:
        sidecar = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is damaged (not valid JSON: {err})") from err
    sidecar = check_format_header(sidecar, path, FORMAT, FORMAT_VERSION, "fewshot index sidecar")
    _check_fields(sidecar, path)
    return sidecar


def _fail(path: Path, what: str):
    raise CheckpointError(f"{path} is damaged or inconsistent: {what}")


def _check_fields(sidecar: dict[str, Any], path: Path) -> None:
    from fewshot.index.index import METRICS
    from fewshot.index.recorded import check_record_shape

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not is_int(sidecar.get("dim")) or sidecar["dim"] < 1:
        _fail(path, f"bad dimension {sidecar.get('dim')!r}")
    if sidecar.get("metric") not in METRICS:
        _fail(path, f"unknown metric {sidecar.get('metric')!r}")
    if not isinstance(sidecar.get("factory"), str) or not sidecar["factory"]:
        _fail(path, "missing factory string")
    if not isinstance(sidecar.get("faiss_file"), str) or not _FAISS_NAME.match(sidecar["faiss_file"]):
        _fail(path, f"bad FAISS file name {sidecar.get('faiss_file')!r}")
    if not is_int(sidecar.get("faiss_bytes")) or not isinstance(sidecar.get("faiss_sha256"), str):
        _fail(path, "missing FAISS file size or checksum")
    if not check_record_shape(sidecar.get("encoder")):
        _fail(path, "bad encoder record")
    items = sidecar.get("items")
    if not isinstance(items, dict):
        _fail(path, "missing items")
    labels, ids, metadata = items.get("labels"), items.get("ids"), items.get("metadata")
    if not (isinstance(labels, list) and isinstance(ids, list) and isinstance(metadata, list)):
        _fail(path, "items must hold lists of labels, ids and metadata")
    if not len(labels) == len(ids) == len(metadata):
        _fail(path, f"{len(labels)} labels, {len(ids)} ids and {len(metadata)} metadata entries")
    next_label = sidecar.get("next_label")
    if not is_int(next_label) or next_label < len(labels):
        _fail(path, f"bad next_label {next_label!r}")
    if not all(is_int(label) and 0 <= label < next_label for label in labels) or len(set(labels)) != len(
        labels
    ):
        _fail(path, "FAISS ids must be distinct integers below next_label")
    if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        _fail(path, "ids must be distinct strings")
    if not all(m is None or isinstance(m, dict) for m in metadata):
        _fail(path, "metadata entries must be objects or null")


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


def load_index(
    directory: str | os.PathLike[str], encoder: Encoder | None = None, device: str = "auto"
) -> EmbeddingIndex:
    """Load and validate an index saved by `save_index`.

    Raises:
        CheckpointError: missing, damaged, foreign or mismatched files.
    """
    from fewshot.index.index import EmbeddingIndex, EmbeddingIndexError, _faiss, _faiss_message

    faiss = _faiss()
    directory = Path(directory)
    sidecar, payload = _read_files(directory)
    faiss_path = directory / sidecar["faiss_file"]
    try:
        raw = faiss.deserialize_index(payload)
    except RuntimeError as err:
        raise CheckpointError(f"{faiss_path} is not a readable FAISS index: {_faiss_message(err)}") from err
    try:
        index = EmbeddingIndex(sidecar["dim"], sidecar["metric"], sidecar["factory"], device=device)
    except EmbeddingIndexError as err:
        raise CheckpointError(f"{directory / SIDECAR}: {err}") from err
    items = sidecar["items"]
    expected_metric = index._faiss_metric()
    if raw.d != index.dim or raw.metric_type != expected_metric:
        raise CheckpointError(
            f"{directory}: the FAISS index is {raw.d}-d with metric {raw.metric_type} but {SIDECAR} "
            f"says {index.dim}-d {index.metric}"
        )
    if raw.ntotal != len(items["ids"]):
        raise CheckpointError(
            f"{directory}: the FAISS index holds {raw.ntotal} vectors but {SIDECAR} "
            f"lists {len(items['ids'])} items"
        )
    if isinstance(raw, faiss.IndexIDMap):
        stored = np.sort(faiss.vector_to_array(raw.id_map))
        if not np.array_equal(stored, np.sort(np.asarray(items["labels"], dtype=np.int64))):
            raise CheckpointError(f"{directory}: the FAISS ids differ from those listed in {SIDECAR}")
    index._index = raw
    next_label = sidecar["next_label"]
    index._keys = [None] * next_label
    index._meta = [None] * next_label
    for label, key, meta in zip(items["labels"], items["ids"], items["metadata"], strict=True):
        index._keys[label] = key
        index._meta[label] = meta
    index._lookup = None  # built when first needed
    index._count = len(items["ids"])
    record = sidecar.get("encoder")
    index._encoder_record = record
    index._source = str(directory)
    index.encoder_name = record["name"] if record else None
    if encoder is not None:
        index.attach_encoder(encoder, name=index.encoder_name)
    return index
