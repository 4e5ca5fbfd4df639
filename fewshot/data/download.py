"""Downloading Omniglot into the data directory, verified and written atomically.

`download_omniglot` fetches Brenden Lake's official zips and the Vinyals split files of the
Prototypical Networks repository into ``<data_dir>/omniglot/`` through
`fewshot.data.remote.download_files`: each file is checked (MD5 of the zips as published by
torchvision, zip CRCs and the ``Alphabet/characterNN/IIII_DD.png`` structure with the
expected character count; line count and line format of the split files) before it is moved
into place. Then ``alphabets.tsv`` is derived from the zips and, unless ``compact=False``, the
zips are converted to the compact ``.npz`` form that loads in about two seconds.

Offline, the first request fails within ``timeout`` seconds with a one-line `DataError` that
says how to use a local copy instead. `RemoteFile`, `fetch`, `verify` and `download_files`
(the machinery every downloading data set shares) are re-exported from
`fewshot.data.remote`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fewshot.data.paths import resolve_data_dir
from fewshot.data.remote import Opener, RemoteFile, download_files, fetch, verify

LAKE = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
SNELL = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/data/omniglot/splits/vinyals"
)


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


def _offline_hint(data_dir: Path) -> str:
    return (
        f"put images_background.zip, images_evaluation.zip (or the .npz files) and splits/vinyals/*.txt "
        f"in an omniglot/ folder and point --data-dir or FEWSHOT_DATA_DIR at its parent (now {data_dir})"
    )


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
    root = download_files(
        "omniglot",
        OMNIGLOT_FILES if files is None else files,
        data_dir,
        force=force,
        progress=progress,
        timeout=timeout,
        opener=opener,
        log=log,
        hint=_offline_hint,
        skip=_compact_form_present,
        finish=_write_alphabets,
    )
    if compact:
        for path in compact_omniglot(root):
            log(f"{path}: written")
    return root


def _compact_form_present(target: Path, force: bool, log: Callable[[str], None]) -> bool:
    compact_form = target.with_suffix(".npz")
    if target.suffix == ".zip" and compact_form.exists() and not force:
        log(f"{compact_form}: present, {target.name} not needed")
        return True
    return False


def _write_alphabets(root: Path, force: bool, log: Callable[[str], None]) -> None:
    from fewshot.data.omniglot_files import official_alphabets, write_alphabets_tsv

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


@dataclass(frozen=True)
class DatasetStatus:
    """What `fewshot data info` shows of one named data set."""

    name: str
    folder: Path | None  # None: nothing on disk (bundled with a package)
    rows: list[tuple[str, str]]  # (file or item, state)
    source: str = ""


class _OmniglotHooks:
    """Omniglot's download and status, until its catalog class (`fewshot.data.omniglot_set`)
    declares ``download``/``status`` itself; then this and `_HOOKS` go."""

    title, downloads, source = "Omniglot", True, ""

    def download(self, data_dir=None, *, compact: bool = True, **options) -> Path:
        return download_omniglot(data_dir, compact=compact, **options)

    def status(self, data_dir=None) -> tuple[Path, list[tuple[str, str]]]:
        return omniglot_status(data_dir)


_HOOKS = {"omniglot": _OmniglotHooks}


def _hooks(name: str):
    """The object answering ``download``/``status`` for the named data set ``name``."""
    from fewshot.data.catalog import DATASETS

    if name in _HOOKS:  # no import of the data set's module: `fewshot data info` stays light
        return _HOOKS[name]()
    return DATASETS.get(name)()


def dataset_title(name: str) -> str:
    return getattr(_hooks(name), "title", name)


def download_dataset(name: str, data_dir=None, **options) -> Path | None:
    """Fetch the named data set (``options``: force, progress, timeout, log, opener, and each
    set's own, e.g. Omniglot's compact); None when it is bundled and has nothing to fetch."""
    hooks = _hooks(name)
    if not getattr(hooks, "downloads", False):
        return None
    return hooks.download(data_dir, **options)


def dataset_status(name: str, data_dir=None) -> DatasetStatus:
    """Where the named data set's files are and what state they are in."""
    hooks = _hooks(name)
    if not getattr(hooks, "downloads", False):
        return DatasetStatus(name, None, [], getattr(hooks, "source", "bundled"))
    folder, rows = hooks.status(data_dir)
    return DatasetStatus(name, folder, rows, getattr(hooks, "source", ""))


__all__ = [
    "OMNIGLOT_FILES",
    "DatasetStatus",
    "dataset_status",
    "dataset_title",
    "download_dataset",
    "Opener",
    "RemoteFile",
    "compact_omniglot",
    "download_files",
    "download_omniglot",
    "fetch",
    "omniglot_status",
    "verify",
]
