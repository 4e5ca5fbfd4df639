"""What `fewshot embed` reads: image folders, lists of paths, or a Parquet/CSV manifest.

Every source becomes the same ordered list of `Item` s: ``path`` (what is decoded), ``id``
(the string id the item keeps in shards and indexes) and ``metadata`` (JSON-able).

- A folder (or several, or image files): every image under it, sorted
  (`fewshot.data.images.scan_images`); id = the resolved absolute path, as `fewshot index`
  gives it; metadata ``{"path", "label"}`` with the label the name of the folder holding it.
- A text file (``.txt``, ``.lst``): one path per line (``#`` comments, blank lines skipped),
  relative paths taken from the list's folder.
- A manifest (``.parquet``, ``.csv``): a ``path`` column (required), an optional ``id``
  column (default: as for folders), every other column goes into the metadata. It may live
  on any filesystem pyarrow reads (``s3://``, ``gs://``, ``file://``); image paths that are
  URIs are read through pyarrow too (`open_bytes`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot.errors import DataError, FewshotError

LIST_SUFFIXES = (".txt", ".lst")
MANIFEST_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class Item:
    """One image to embed: where it is, its string id and its metadata."""

    path: str
    id: str
    metadata: dict[str, Any] = field(default_factory=dict)


def is_uri(path: str) -> bool:
    return "://" in str(path)


def local_id(path: str | os.PathLike[str]) -> str:
    """The id of a local image: its resolved absolute path, POSIX style (as `fewshot index`)."""
    return Path(path).expanduser().resolve().as_posix()


def _folder_item(path: Path) -> Item:
    resolved = local_id(path)
    return Item(str(path), resolved, {"path": resolved, "label": path.parent.name})


def _suffix(source: str) -> str:
    return Path(source.split("?", 1)[0]).suffix.lower()


def read_source(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Item]:
    """The items of `sources`: folders and image files together, or one list or manifest file.

    Raises:
        DataError: a path does not exist, a manifest has no ``path`` column, ids repeat, or
            nothing is found.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [str(s) for s in sources]
    if not sources:
        raise DataError("SOURCE: give a folder, image files, a list of paths or a manifest")
    special = [s for s in sources if _suffix(s) in LIST_SUFFIXES + MANIFEST_SUFFIXES]
    if special:
        if len(sources) > 1:
            raise DataError(f"SOURCE: a list or manifest ({special[0]}) must be the only source")
        items = _read_list(special[0]) if _suffix(special[0]) in LIST_SUFFIXES else _read_manifest(special[0])
    else:
        from fewshot.data.images import scan_images

        items = [_folder_item(p) for p in scan_images([Path(s) for s in sources]).paths]
    _check_unique(items, sources)
    return items


def _check_unique(items: list[Item], sources: list[str]) -> None:
    if not items:
        raise DataError(f"SOURCE {', '.join(sources)} lists no images")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise DataError(f"SOURCE lists the id {dup!r} twice: every item needs its own id")


def _resolve(path: str, base: Path) -> str:
    if is_uri(path) or os.path.isabs(os.path.expanduser(path)):
        return os.path.expanduser(path)
    return str(base / path)


def _read_list(source: str) -> list[Item]:
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"SOURCE {source} does not exist")
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [_item(_resolve(entry, path.parent), None, {}) for entry in entries]


def _item(path: str, item_id: str | None, extra: dict[str, Any]) -> Item:
    where = path if is_uri(path) else local_id(path)
    label = Path(path.split("://", 1)[-1]).parent.name
    return Item(path, where if item_id is None else item_id, {"path": where, "label": label, **extra})


def _read_manifest(source: str) -> list[Item]:
    table = _manifest_table(source)
    if "path" not in table.column_names:
        raise DataError(
            f"SOURCE {source}: a manifest needs a 'path' column (has: {', '.join(table.column_names)})"
        )
    rows = table.to_pylist()
    base = Path(source).expanduser().parent if not is_uri(source) else Path(".")
    items = []
    for number, row in enumerate(rows, 1):
        path = row.pop("path")
        if not isinstance(path, str) or not path:
            raise DataError(f"SOURCE {source}: row {number} has no path")
        item_id = row.pop("id", None)
        extra = {k: v for k, v in row.items() if v is not None}
        items.append(
            _item(_resolve(path, base), None if item_id is None else str(item_id), _json_safe(extra))
        )
    return items


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))


def _manifest_table(source: str):
    try:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError as err:
        raise FewshotError("reading a manifest needs pyarrow: pip install 'fewshot[ray]'") from err
    if not is_uri(source) and not Path(source).expanduser().is_file():
        raise DataError(f"SOURCE {source} does not exist")
    try:
        if _suffix(source) == ".parquet":
            return pq.read_table(source if is_uri(source) else os.path.expanduser(source))
        with open_stream(source) as handle:
            return pacsv.read_csv(handle)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"SOURCE {source} is not a readable manifest: {err}") from None


def open_stream(path: str):
    """A binary file object for a local path or a URI pyarrow can read."""
    if not is_uri(path):
        return open(os.path.expanduser(path), "rb")
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    return filesystem.open_input_file(inner)


def open_bytes(path: str) -> io.BytesIO:
    """The bytes of `path` (local or URI) in memory, for decoding."""
    with open_stream(path) as handle:
        return io.BytesIO(handle.read())


def fingerprint(items: Sequence[Item]) -> str:
    """A short digest of the items' ids and paths, in order: a resumed run must read the same."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.id.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(item.path.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()[:16]


__all__ = ["Item", "fingerprint", "is_uri", "local_id", "open_bytes", "open_stream", "read_source"]
