"""Omniglot in its official form: ``images_background.zip`` / ``images_evaluation.zip``.

Brenden Lake's repository ships each set as a zip whose images are
``images_background/<Alphabet>/characterNN/IIII_DD.png``: ``IIII`` is the global character
id (1..1623), ``DD`` the drawer (01..20). The zips or their unpacked folders can stand in for
the compact ``.npz`` form; the alphabet table (``alphabets.tsv``) is derived from the same
structure when it is missing.

Accepted layouts inside the Omniglot folder ``root`` (for ``name`` = ``images_background``):
``root/images_background.zip``, ``root/images_background/<Alphabet>/...`` or the doubly
nested ``root/images_background/images_background/<Alphabet>/...`` that unzipping into a
folder of the same name gives.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fewshot.errors import DataError

SET_NAMES = ("images_background", "images_evaluation")
DRAWERS = 20
_IMAGE = re.compile(r"^(\d{4})_(\d{2})\.png$")
_CHARACTER = re.compile(r"^character(\d{2,})$")


@dataclass(frozen=True)
class _Entry:
    alphabet: str
    number: int  # the NN of characterNN, 1-based within the alphabet
    char_id: int  # global id IIII
    drawer: int  # DD, 1..20
    key: str  # zip member name or file path


class _Source:
    """One official set, as a zip file or a folder; yields its image entries and bytes."""

    def __init__(self, path: Path, name: str, is_zip: bool | None = None) -> None:
        self.path, self.name = path, name
        self.is_zip = path.suffix == ".zip" if is_zip is None else is_zip

    def entries(self) -> Iterator[_Entry]:
        if self.is_zip:
            try:
                with zipfile.ZipFile(self.path) as archive:
                    names = archive.namelist()
            except (OSError, zipfile.BadZipFile) as err:
                raise DataError(f"{self.path} is not a readable zip ({err}): download it again") from err
            keys = [n for n in names if not n.endswith("/")]
            parts_list = [n.split("/") for n in keys]
        else:
            # Only the last three path parts count, so any nesting above the alphabets works.
            files = sorted(p for p in self.path.rglob("*.png") if p.is_file())
            keys = [str(p) for p in files]
            parts_list = [list(p.relative_to(self.path).parts) for p in files]
        for key, parts in zip(keys, parts_list, strict=True):
            if len(parts) < 3 or any(part.startswith((".", "__MACOSX")) for part in parts):
                continue
            alphabet, character, filename = parts[-3:]
            image, char = _IMAGE.match(filename), _CHARACTER.match(character)
            if not (image and char):
                continue
            yield _Entry(alphabet, int(char.group(1)), int(image.group(1)), int(image.group(2)), key)

    def reader(self):
        if self.is_zip:
            archive = zipfile.ZipFile(self.path)
            return archive, archive.read
        return None, lambda key: Path(key).read_bytes()


def find_official(root: Path, name: str) -> Path | None:
    """The zip or folder holding the official set `name` inside `root`, or None."""
    archive = root / f"{name}.zip"
    if archive.is_file():
        return archive
    folder = root / name
    if folder.is_dir():
        return folder
    return None


def _source(root: Path, name: str) -> _Source:
    if name not in SET_NAMES:
        raise DataError(f"unknown Omniglot set {name!r}: choose one of {', '.join(SET_NAMES)}")
    path = find_official(root, name)
    if path is None:
        raise DataError(
            f"Omniglot's {name} is missing from {root} (no {name}.npz, {name}.zip or {name}/ folder): "
            "run `fewshot data download omniglot`, or point --data-dir / FEWSHOT_DATA_DIR at a "
            "folder that contains omniglot/"
        )
    return _Source(path, name)


def _characters(source: _Source) -> dict[int, list[_Entry]]:
    """Entries grouped by global character id, each list sorted by drawer; structure checked."""
    by_id: dict[int, list[_Entry]] = {}
    for entry in source.entries():
        by_id.setdefault(entry.char_id, []).append(entry)
    if not by_id:
        raise DataError(
            f"{source.path} holds no Omniglot images (expected <Alphabet>/characterNN/IIII_DD.png)"
        )
    for char_id, entries in by_id.items():
        entries.sort(key=lambda e: e.drawer)
        drawers = [e.drawer for e in entries]
        if drawers != list(range(1, DRAWERS + 1)):
            raise DataError(
                f"{source.path}: character {char_id} has drawers {drawers[:3]}... ({len(drawers)} images), "
                f"expected 01..{DRAWERS}: the copy is incomplete, download it again"
            )
        if len({(e.alphabet, e.number) for e in entries}) != 1:
            raise DataError(f"{source.path}: images of character {char_id} lie in several folders")
    ids = sorted(by_id)
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise DataError(f"{source.path}: character ids are not contiguous ({ids[0]}..{ids[-1]})")
    return by_id


def official_alphabets(root: Path) -> list[tuple[str, int, int, str]]:
    """``(alphabet, first_id, last_id, set)`` per alphabet, derived from the official files.

    Reads only file names (no image is decoded). ``set`` is ``background`` or ``evaluation``.

    Raises:
        DataError: a set is missing, or an alphabet's ids do not match its ``characterNN``.
    """
    rows = []
    for name in SET_NAMES:
        source = _source(root, name)
        groups: dict[str, list[_Entry]] = {}
        for entries in _characters(source).values():
            groups.setdefault(entries[0].alphabet, []).append(entries[0])
        for alphabet, firsts in groups.items():
            first_id = min(e.char_id for e in firsts)
            last_id = max(e.char_id for e in firsts)
            for e in firsts:
                if e.char_id - first_id + 1 != e.number:
                    raise DataError(
                        f"{source.path}: {alphabet}/character{e.number:02d} holds id {e.char_id}, "
                        f"which does not follow the alphabet's first id {first_id}"
                    )
            if last_id - first_id + 1 != len(firsts):
                raise DataError(f"{source.path}: alphabet {alphabet} has gaps in its character ids")
            rows.append((alphabet, first_id, last_id, name.removeprefix("images_")))
    rows.sort(key=lambda r: r[1])
    return rows


def write_alphabets_tsv(rows: list[tuple[str, int, int, str]], path: Path) -> Path:
    """Write the alphabet table in the ``alphabets.tsv`` format, atomically."""
    from fewshot.fileio import atomic_write_bytes

    lines = ["first_id\tlast_id\talphabet\tset"]
    lines += [f"{first}\t{last}\t{alphabet}\t{set_name}" for alphabet, first, last, set_name in rows]
    return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _decode(payload: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            return np.asarray(image.convert("L")) >= 128
    except (OSError, ValueError, UnidentifiedImageError) as err:
        raise DataError(f"{where}: unreadable image ({err}): the copy is damaged, download it again") from err


def load_official(root: Path, name: str) -> np.ndarray:
    """Every character of one official set as a bool array, True = paper.

    Args:
        root: the Omniglot folder (holding ``<name>.zip`` or ``<name>/``).
        name: ``images_background`` or ``images_evaluation``.

    Returns:
        ``(n_characters, 20, H, W)`` bool (H = W = 105 for the real data); row ``r`` is the
        set's ``r``-th character in global id order, index 1 the drawer (``_01`` .. ``_20``).

    Raises:
        DataError: the set is missing, incomplete, or holds unreadable images.
    """
    source = _source(Path(root), name)
    by_id = _characters(source)
    handle, read = source.reader()
    try:
        images = None
        for row, char_id in enumerate(sorted(by_id)):
            for entry in by_id[char_id]:
                pixels = _decode(read(entry.key), f"{source.path}:{entry.key}")
                if images is None:
                    images = np.empty((len(by_id), DRAWERS, *pixels.shape), dtype=bool)
                if pixels.shape != images.shape[2:]:
                    raise DataError(
                        f"{source.path}:{entry.key} is {pixels.shape[1]}x{pixels.shape[0]}, "
                        f"the others {images.shape[3]}x{images.shape[2]}"
                    )
                images[row, entry.drawer - 1] = pixels
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{source.path} cannot be read ({err}): download it again") from err
    finally:
        if handle is not None:
            handle.close()
    return images  # type: ignore[return-value]  # _characters guarantees one character
