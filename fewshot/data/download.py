"""Downloading Omniglot into the data directory, verified and written atomically.

`download_omniglot` fetches Brenden Lake's official zips and the Vinyals split files of the
Prototypical Networks repository into ``<data_dir>/omniglot/``. Each file is streamed into a
temporary file beside its target, checked (MD5 of the zips as published by torchvision, zip
CRCs and the ``Alphabet/characterNN/IIII_DD.png`` structure with the expected character
count; line count and line format of the split files), and only then moved into place with
``os.replace``: an interrupted or damaged download never leaves a partial file under a real
name. Then ``alphabets.tsv`` is derived from the zips and, unless ``compact=False``, the zips
are converted to the compact ``.npz`` form that loads in about two seconds.

Offline, the first request fails within ``timeout`` seconds with a one-line `DataError` that
says how to use a local copy instead.
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

LAKE = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
SNELL = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/data/omniglot/splits/vinyals"
)
_SPLIT_LINE = re.compile(r"^[^/\s]+/character\d{2,}/rot(000|090|180|270)$")


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its URL, path under the Omniglot folder, and what to check."""

    url: str
    target: str  # relative to <data_dir>/omniglot
    md5: str | None = None  # known checksum (torchvision's for the official zips)
    characters: int | None = None  # zips: expected number of characters
    lines: int | None = None  # split files: expected number of classes


OMNIGLOT_FILES = (
    RemoteFile(
        f"{LAKE}/images_background.zip", "images_background.zip", "68d2efa1b9178cc56df9314c21c6e718", 964
    ),
    RemoteFile(
        f"{LAKE}/images_evaluation.zip", "images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811", 659
    ),
    RemoteFile(f"{SNELL}/train.txt", "splits/vinyals/train.txt", lines=4112),
    RemoteFile(f"{SNELL}/val.txt", "splits/vinyals/val.txt", lines=688),
    RemoteFile(f"{SNELL}/trainval.txt", "splits/vinyals/trainval.txt", lines=4800),
    RemoteFile(f"{SNELL}/test.txt", "splits/vinyals/test.txt", lines=1692),
)

Opener = Callable[..., object]  # urllib.request.urlopen's signature: (url, timeout=...) -> response


def _offline_hint(data_dir: Path) -> str:
    return (
        f"put images_background.zip, images_evaluation.zip (or the .npz files) and splits/vinyals/*.txt "
        f"in an omniglot/ folder and point --data-dir or FEWSHOT_DATA_DIR at its parent (now {data_dir})"
    )


def verify(path: Path, spec: RemoteFile) -> None:
    """Check a fetched file against `spec`; raises `DataError` saying what is wrong."""
    if spec.md5 is not None:
        _verify_md5(path, spec)
    if spec.target.endswith(".zip"):
        _verify_zip(path, spec)
    if spec.target.endswith(".txt"):
        _verify_split_file(path, spec)


def _verify_md5(path: Path, spec: RemoteFile) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != spec.md5:
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


def fetch(
    spec: RemoteFile,
    root: Path,
    data_dir: Path,
    opener: Opener = urllib.request.urlopen,
    timeout: float = 10.0,
    progress: bool = True,
) -> Path:
    """Download one file into ``root/spec.target`` atomically, after verifying it."""
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    target = root / spec.target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = opener(spec.url, timeout=timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"cannot download {spec.url} ({reason}): {_offline_hint(data_dir)}") from err
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


def compact_omniglot(root: Path) -> list[Path]:
    """Convert the official zips/folders in `root` to ``images_*.npz`` (atomic); returns new files."""
    import io

    import numpy as np

    from fewshot.data.omniglot_files import SET_NAMES, load_official
    from fewshot.fileio import atomic_write_bytes

    written = []
    for name in SET_NAMES:
        if (root / f"{name}.npz").exists():
            continue
        images = load_official(root, name)
        labels = np.repeat(np.arange(images.shape[0], dtype=np.int64)[:, None], images.shape[1], axis=1)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=images, labels=labels)
        written.append(atomic_write_bytes(root / f"{name}.npz", buffer.getvalue()))
    return written


def download_omniglot(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    compact: bool = True,
    progress: bool = True,
    timeout: float = 10.0,
    opener: Opener | None = None,
    files: tuple[RemoteFile, ...] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Fetch and verify Omniglot into ``<data_dir>/omniglot``; returns that folder.

    Files already present and valid are kept, and a zip is not fetched when its ``.npz`` form
    is there (``force=True`` fetches everything again).
    `opener` defaults to ``urllib.request.urlopen`` and `files` to `OMNIGLOT_FILES`.

    Raises:
        DataError: offline (after at most `timeout` seconds), or a download fails its checks.
    """
    opener = opener or urllib.request.urlopen
    files = OMNIGLOT_FILES if files is None else files
    data_dir = resolve_data_dir(data_dir)
    root = data_dir / "omniglot"
    created = [p for p in (root, *root.parents) if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {root} ({err}): choose another --data-dir") from err
    try:
        _fetch_all(root, data_dir, files, force, progress, timeout, opener, log)
    except BaseException:
        if created:  # a failed first download leaves no empty folders behind
            _remove_empty_folders(root, created)
        raise
    if compact:
        for path in compact_omniglot(root):
            log(f"{path}: written")
    return root


def _remove_empty_folders(root: Path, created: list[Path]) -> None:
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            Path(folder).rmdir()  # only succeeds on empty folders
    for folder in created[1:]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _fetch_all(root, data_dir, files, force, progress, timeout, opener, log) -> None:
    from fewshot.data.omniglot_files import official_alphabets, write_alphabets_tsv

    for spec in files:
        target = root / spec.target
        compact_form = target.with_suffix(".npz")
        if target.suffix == ".zip" and compact_form.exists() and not force:
            log(f"{compact_form}: present, {target.name} not needed")
            continue
        if target.exists() and not force:
            try:
                verify(target, spec)
                log(f"{target}: present and valid")
                continue
            except DataError:
                log(f"{target}: present but invalid, downloading again")
        fetch(spec, root, data_dir, opener, timeout, progress)
        log(f"{target}: downloaded and verified")
    if force or not (root / "alphabets.tsv").exists():
        # needs the zips (or folders): with only .npz files present, alphabets.tsv must be there
        write_alphabets_tsv(official_alphabets(root), root / "alphabets.tsv")
        log(f"{root / 'alphabets.tsv'}: written")


def omniglot_status(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, list[tuple[str, str]]]:
    """What is found where: ``(omniglot folder, [(item, state), ...])`` for `fewshot data info`."""
    root = resolve_data_dir(data_dir) / "omniglot"
    rows: list[tuple[str, str]] = []
    for name in ("images_background", "images_evaluation"):
        found = [f for f in (f"{name}.npz", f"{name}.zip", f"{name}/") if (root / f.rstrip("/")).exists()]
        rows.append((name, ", ".join(found) if found else "missing"))
    tsv = root / "alphabets.tsv"
    state = "present" if tsv.exists() else "missing (derived from the zips if present)"
    rows.append(("alphabets.tsv", state))
    for part in ("train", "val", "trainval", "test"):
        path = root / "splits" / "vinyals" / f"{part}.txt"
        state = f"{len(path.read_text().split())} classes" if path.exists() else "missing"
        rows.append((f"splits/vinyals/{part}.txt", state))
    return root, rows
