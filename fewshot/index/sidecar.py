"""The sidecar ``index.json`` of a saved index: what it holds, and the checks it must pass.

It names the FAISS file (name, size, SHA-256) and holds what FAISS does not: format and version,
dimension, metric, factory string, the encoder record (see `fewshot.index.recorded`) and the
items (FAISS id, string id, metadata). See `fewshot.index.storage` for how it is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshot import __version__
from fewshot.errors import CheckpointError, check_format_header
from fewshot.index.base import METRICS, faiss_metric, faiss_module
from fewshot.index.recorded import check_record_shape

if TYPE_CHECKING:
    from fewshot.index.core import VectorIndex

FORMAT = "fewshot-index"
FORMAT_VERSION = 1
SIDECAR = "index.json"
FAISS_NAME = re.compile(r"^index-[0-9a-f]{16}\.faiss$")


def make_sidecar(
    index: VectorIndex, encoder: dict[str, Any] | None, payload: np.ndarray, faiss_name: str
) -> dict[str, Any]:
    """The sidecar of `index`, whose FAISS index `payload` holds, saved as `faiss_name`."""
    labels, ids, metadata = [], [], []
    for label, key, meta in index.items():
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
        "encoder": encoder,
        "faiss_file": faiss_name,
        "faiss_bytes": int(payload.nbytes),
        "faiss_sha256": hashlib.sha256(memoryview(payload)).hexdigest(),
        "next_label": index.next_label,
        "items": {"labels": labels, "ids": ids, "metadata": metadata},
    }


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(sidecar: dict[str, Any], path: Path) -> None:
    _check_header(sidecar, path)
    _check_items(sidecar, path)


def _check_header(sidecar: dict[str, Any], path: Path) -> None:
    """Dimension, metric, factory, the FAISS file's name, size and checksum, the encoder record."""
    if not _is_int(sidecar.get("dim")) or sidecar["dim"] < 1:
        _fail(path, f"bad dimension {sidecar.get('dim')!r}")
    if sidecar.get("metric") not in METRICS:
        _fail(path, f"unknown metric {sidecar.get('metric')!r}")
    if not isinstance(sidecar.get("factory"), str) or not sidecar["factory"]:
        _fail(path, "missing factory string")
    if not isinstance(sidecar.get("faiss_file"), str) or not FAISS_NAME.match(sidecar["faiss_file"]):
        _fail(path, f"bad FAISS file name {sidecar.get('faiss_file')!r}")
    if not _is_int(sidecar.get("faiss_bytes")) or not isinstance(sidecar.get("faiss_sha256"), str):
        _fail(path, "missing FAISS file size or checksum")
    if not check_record_shape(sidecar.get("encoder")):
        _fail(path, "bad encoder record")


def _check_items(sidecar: dict[str, Any], path: Path) -> None:
    """Labels, ids and metadata: parallel lists; FAISS ids distinct and below next_label."""
    items = sidecar.get("items")
    if not isinstance(items, dict):
        _fail(path, "missing items")
    labels, ids, metadata = items.get("labels"), items.get("ids"), items.get("metadata")
    if not (isinstance(labels, list) and isinstance(ids, list) and isinstance(metadata, list)):
        _fail(path, "items must hold lists of labels, ids and metadata")
    if not len(labels) == len(ids) == len(metadata):
        _fail(path, f"{len(labels)} labels, {len(ids)} ids and {len(metadata)} metadata entries")
    next_label = sidecar.get("next_label")
    if not _is_int(next_label) or next_label < len(labels):
        _fail(path, f"bad next_label {next_label!r}")
    in_range = all(_is_int(label) and 0 <= label < next_label for label in labels)
    if not in_range or len(set(labels)) != len(labels):  # ints first: a list is unhashable
        _fail(path, "FAISS ids must be distinct integers below next_label")
    if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        _fail(path, "ids must be distinct strings")
    if not all(m is None or isinstance(m, dict) for m in metadata):
        _fail(path, "metadata entries must be objects or null")


def check_faiss_agrees(raw: Any, sidecar: dict[str, Any], directory: Path) -> None:
    """Refuse a FAISS index whose dimension, metric, count or ids differ from the sidecar's."""
    faiss = faiss_module()
    items = sidecar["items"]
    if raw.d != sidecar["dim"] or raw.metric_type != faiss_metric(sidecar["metric"]):
        raise CheckpointError(
            f"{directory}: the FAISS index is {raw.d}-d with metric {raw.metric_type} but {SIDECAR} "
            f"says {sidecar['dim']}-d {sidecar['metric']}"
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
