"""Fetching files into the data directory: verified, written atomically, offline fails fast.

`download_files` fetches a tuple of `RemoteFile` into ``<data_dir>/<folder>/``, keeping the
files already present and valid. Each file is streamed into a temporary file beside its
target (`fetch`), checked (`verify`: MD5, or the sha256 of the decompressed content; zip CRCs
and Omniglot's character structure; split-file lines; IDX header and item count), and only
then moved into place with ``os.replace``: an interrupted or damaged download never leaves a
partial file under a real name. Offline, the first request fails within ``timeout`` seconds
with a one-line `DataError` ending in the data set's advice on using a local copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fewshot.data.paths import resolve_data_dir
from fewshot.errors import DataError

_SPLIT_LINE = re.compile(r"^[^/\s]+/character\d{2,}/rot(000|090|180|270)$")


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its URL, path under the data set's folder, and what to check."""

    url: str
    target: str  # relative to <data_dir>/<data set folder>
    md5: str | None = None  # known checksum (torchvision's for the official zips)
    characters: int | None = None  # zips: expected number of characters
    lines: int | None = None  # split files: expected number of classes
    items: int | None = None  # IDX files: expected number of items (first dimension)
    # sha256 of the decompressed content: also accepts a re-compressed copy of the same data
    content_sha256: str | None = None


Opener = Callable[..., object]  # urllib.request.urlopen's signature: (url, timeout=...) -> response


def verify(path: Path, spec: RemoteFile) -> None:
    """Check a fetched file against `spec`; raises `DataError` saying what is wrong."""
    if spec.md5 is not None:
        _verify_md5(path, spec)
    if spec.target.endswith(".zip"):
        _verify_zip(path, spec)
    if spec.target.endswith(".txt"):
        _verify_split_file(path, spec)
    if "-idx" in Path(spec.target).name:
        _verify_idx(path, spec)


def _verify_md5(path: Path, spec: RemoteFile) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != spec.md5 and not _same_content(path, spec):
        raise DataError(
            f"{spec.url}: checksum mismatch (md5 {digest.hexdigest()}, expected {spec.md5}): "
            "the download is damaged, try again"
        )


def _verify_zip(path: Path, spec: RemoteFile) -> None:
    from fewshot.data.omniglot_files import _characters, _Source

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{spec.url}: not a valid zip ({err}): try again") from err
    if bad is not None:
        raise DataError(f"{spec.url}: {bad} is corrupt inside the zip: try again")
    n = len(_characters(_Source(path, Path(spec.target).stem, is_zip=True)))
    if spec.characters is not None and n != spec.characters:
        raise DataError(f"{spec.url}: holds {n} characters, expected {spec.characters}")


def _same_content(path: Path, spec: RemoteFile) -> bool:
    if spec.content_sha256 is None:
        return False
    from fewshot.data.idx import read_bytes

    try:
        return hashlib.sha256(read_bytes(path)).hexdigest() == spec.content_sha256
    except DataError:
        return False


def _verify_idx(path: Path, spec: RemoteFile) -> None:
    from fewshot.data.idx import read_idx

    try:
        values = read_idx(path)
    except DataError as err:
        raise DataError(f"{spec.url}: {str(err).removeprefix(str(path) + ': ')}") from err
    if spec.items is not None and values.shape[0] != spec.items:
        raise DataError(f"{spec.url}: holds {values.shape[0]:,} items, expected {spec.items:,}")


def _verify_split_file(path: Path, spec: RemoteFile) -> None:
    try:
        lines = path.read_text(encoding="utf-8").split()
    except UnicodeDecodeError as err:
        raise DataError(f"{spec.url}: not a text file") from err
    wrong = next((line for line in lines if not _SPLIT_LINE.match(line)), None)
    if wrong is not None or not lines:
        raise DataError(f"{spec.url}: not a split file (line {wrong!r} is not Alphabet/characterNN/rotDDD)")
    if spec.lines is not None and len(lines) != spec.lines:
        raise DataError(f"{spec.url}: {len(lines)} classes, expected {spec.lines}")


def _local_copy_hint(data_dir: Path) -> str:
    return (
        f"put the files in place yourself and point --data-dir or FEWSHOT_DATA_DIR at them (now {data_dir})"
    )


def fetch(
    spec: RemoteFile,
    root: Path,
    data_dir: Path,
    opener: Opener = urllib.request.urlopen,
    timeout: float = 10.0,
    progress: bool = True,
    hint: Callable[[Path], str] | None = None,
) -> Path:
    """Download one file into ``root/spec.target`` atomically, after verifying it.
    Offline, the error ends with ``hint(data_dir)`` (default: put the files in place yourself)."""
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    target = root / spec.target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = opener(spec.url, timeout=timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        advice = (hint or _local_copy_hint)(data_dir)
        raise DataError(f"cannot download {spec.url} ({reason}): {advice}") from err
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=spec.target, disable=not show_progress(progress)
            ) as bar:
                try:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
                except (OSError, TimeoutError) as err:
                    raise DataError(f"download of {spec.url} broke off ({err}): try again") from err
            out.flush()
            os.fsync(out.fileno())
        if total is not None and tmp.stat().st_size != total:
            raise DataError(f"download of {spec.url} is incomplete ({tmp.stat().st_size} of {total} bytes)")
        verify(tmp, spec)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def download_files(
    folder: str,
    files: tuple[RemoteFile, ...],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    timeout: float = 10.0,
    opener: Opener | None = None,
    log: Callable[[str], None] = lambda message: None,
    hint: Callable[[Path], str] | None = None,
    skip: Callable[[Path, bool, Callable[[str], None]], bool] | None = None,
    finish: Callable[[Path, bool, Callable[[str], None]], None] | None = None,
) -> Path:
    """Fetch `files` into ``<data_dir>/<folder>``, keeping those present and valid (unless
    `force`); returns that folder. A failed first download leaves no empty folder behind.

    Args:
        hint: data directory -> what to do offline (default: put the files in place yourself).
        skip: ``(target, force, log) -> True`` when a file is not needed.
        finish: ``(root, force, log)``, run after the files, inside the clean-up.
    """
    opener = opener or urllib.request.urlopen
    data_dir = resolve_data_dir(data_dir)
    root = data_dir / folder
    created = [p for p in (root, *root.parents) if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {root} ({err}): choose another --data-dir") from err
    try:
        for spec in files:
            if skip is None or not skip(root / spec.target, force, log):
                _fetch_one(spec, root, data_dir, force, (progress, timeout, opener, log, hint))
        if finish is not None:
            finish(root, force, log)
    except BaseException:
        if created:
            _remove_empty_folders(root, created)
        raise
    return root


def _remove_empty_folders(root: Path, created: list[Path]) -> None:
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            Path(folder).rmdir()  # only succeeds on empty folders
    for folder in created[1:]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _fetch_one(spec: RemoteFile, root: Path, data_dir: Path, force: bool, how: tuple) -> None:
    progress, timeout, opener, log, hint = how
    target = root / spec.target
    if target.exists() and not force:
        try:
            verify(target, spec)
            log(f"{target}: present and valid")
            return
        except DataError:
            log(f"{target}: present but invalid, downloading again")
    fetch(spec, root, data_dir, opener, timeout, progress, hint=hint)
    log(f"{target}: downloaded and verified")
