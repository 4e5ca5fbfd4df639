"""Saving and loading an `EmbeddingIndex`: a FAISS file plus a JSON sidecar, atomically, no pickle.

An index directory holds:

- ``index-<token>.faiss``: the FAISS index (``faiss.serialize_index``), named afresh on every save;
- ``index.json``: the sidecar: format and version, dimension, metric, factory string, encoder
  name and config, the FAISS file's name, size and SHA-256, and the items (FAISS id, string id,
  metadata).

A save writes the new FAISS file under a new name, then replaces ``index.json`` in one
``os.replace``: that rename is the commit. A crash at any point before it leaves the previous
sidecar pointing at the previous FAISS file, untouched; FAISS files no sidecar points at are
deleted after the commit (or by the next save). Loading checks the sidecar's fields, the FAISS
file's checksum, and that the FAISS index agrees with the sidecar (dimension, metric, count).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshot.checkpoints import atomic_write_bytes
from fewshot.errors import CheckpointError, check_format_header

if TYPE_CHECKING:
    from fewshot.encoders.base import Encoder
    from fewshot.index.index import EmbeddingIndex

FORMAT = "fewshot-index"
FORMAT_VERSION = 1
SIDECAR = "index.json"
_FAISS_NAME = re.compile(r"^index-[0-9a-f]{16}\.faiss$")


def is_index_dir(directory: str | os.PathLike[str]) -> bool:
    """True when `directory` holds a saved index sidecar."""
    return (Path(directory) / SIDECAR).is_file()


def _write_faiss_file(path: Path, payload: np.ndarray) -> None:
    """Write the serialised index and fsync it (the name is fresh, so no temp file is needed)."""
    with open(path, "xb") as handle:
        handle.write(memoryview(payload))
        handle.flush()
        os.fsync(handle.fileno())


def save_index(index: EmbeddingIndex, directory: str | os.PathLike[str]) -> Path:
    """Save `index` into `directory` (created if needed) so that a crash keeps the previous save."""
    from fewshot import __version__
    from fewshot.index.index import _faiss

    faiss = _faiss()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    payload = faiss.serialize_index(index.faiss_index)
    faiss_name = f"index-{secrets.token_hex(8)}.faiss"
    faiss_path = directory / faiss_name
    labels, ids, metadata = [], [], []
    for label, key, meta in index._items():
        labels.append(label)
        ids.append(key)
        metadata.append(meta)
    sidecar = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "dim": index.dim,
        "metric": index.metric,
        "factory": index.factory,
        "encoder": None
        if index.encoder_name is None
        else {"name": index.encoder_name, "config": _encoder_config(index)},
        "faiss_file": faiss_name,
        "faiss_bytes": int(payload.nbytes),
        "faiss_sha256": hashlib.sha256(memoryview(payload)).hexdigest(),
        "next_label": len(index._keys),
        "items": {"labels": labels, "ids": ids, "metadata": metadata},
    }
    encoded = json.dumps(sidecar, allow_nan=False, separators=(",", ":")).encode()
    try:
        _write_faiss_file(faiss_path, payload)
        atomic_write_bytes(directory / SIDECAR, encoded)  # the commit point
    except BaseException:
        faiss_path.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    for stale in directory.glob("index-*.faiss"):
        if stale.name != faiss_name and _FAISS_NAME.match(stale.name):
            stale.unlink(missing_ok=True)
    return directory


def _encoder_config(index: EmbeddingIndex) -> dict[str, Any]:
    if index.encoder is not None and hasattr(index.encoder, "config"):
        return index.encoder.config()
    return (index._encoder_record or {}).get("config", {})


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
    encoder = sidecar.get("encoder")
    if encoder is not None and not (
        isinstance(encoder, dict)
        and isinstance(encoder.get("name"), str)
        and isinstance(encoder.get("config"), dict)
    ):
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
    sidecar = read_sidecar(directory)
    faiss_path = directory / sidecar["faiss_file"]
    if not faiss_path.is_file():
        raise CheckpointError(
            f"{directory}: the FAISS file {sidecar['faiss_file']} named by {SIDECAR} is missing"
        )
    payload = np.fromfile(faiss_path, dtype=np.uint8)
    if (
        payload.nbytes != sidecar["faiss_bytes"]
        or hashlib.sha256(memoryview(payload)).hexdigest() != sidecar["faiss_sha256"]
    ):
        raise CheckpointError(
            f"{faiss_path} is damaged: its size or checksum differs from the one in {SIDECAR}"
        )
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
    index.encoder_name = record["name"] if record else None
    if encoder is not None:
        index.attach_encoder(encoder, name=index.encoder_name)
    return index
