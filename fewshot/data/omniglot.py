"""Omniglot (Lake et al., 2015): 1,623 handwritten characters x 20 drawers.

Protocols (``split``, ``subset``):

- ``vinyals``: the split of Vinyals et al. (2016) used by Prototypical Networks, read from
  ``omniglot/splits/vinyals/{train,val,trainval,test}.txt``; every rotation is its own class
  (``rotations=False`` keeps the unrotated ``rot000`` classes only).
- ``lake``: train on the 30 background alphabets (``background`` or ``train``), test on the
  20 evaluation alphabets (``evaluation`` or ``test``); no rotations unless asked (Lake et
  al.'s protocol has none).
- ``random``: the 1,623 characters shuffled with ``seed``; the first 1,200 are ``train``, the
  other 423 ``test`` (MAML's code), with rotations as extra classes by default.

Rotations (90, 180 and 270 degrees, each an extra class of the same alphabet) can be asked for
or turned off on every split, by ``rotations=True/False`` or by a suffix of the split name:
``lake+rotations``, ``vinyals+no-rotations`` (what ``--rotations/--no-rotations`` give).

Every class's group is its alphabet (``class_groups``; rotations keep their alphabet), for
Lake et al.'s within-alphabet episodes.

Images are resized to ``image_size`` (28 by default) with ink = 1 and paper = 0, shaped
``(n, 1, image_size, image_size)`` float32.

Files, in ``<data_dir>/omniglot/``: ``images_background`` and ``images_evaluation`` as the
compact ``.npz`` form, the official ``.zip`` files, or their unpacked folders (see
`fewshot.data.omniglot_files`); ``alphabets.tsv`` (derived from the zips when missing); and
``splits/vinyals/*.txt`` for the Vinyals split. ``fewshot data download omniglot`` fetches them.
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fewshot.data.paths import resolve_data_dir
from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError

N_BACKGROUND = 964
N_CHARACTERS = 1623
RANDOM_TRAIN = 1200  # characters in the meta-training part of the random split (MAML)
ROTATIONS = (0, 90, 180, 270)
SPLITS = ("vinyals", "lake", "random")
SUBSETS = {
    "vinyals": ("train", "val", "trainval", "test"),
    "lake": ("background", "evaluation", "train", "test"),
    "random": ("train", "test"),
}
ROTATION_SUFFIXES = {"+rotations": True, "+no-rotations": False}
DEFAULT_ROTATIONS = {"vinyals": True, "lake": False, "random": True}


def parse_split(split: str) -> tuple[str, bool | None]:
    """``"lake+rotations"`` -> ``("lake", True)``; a plain name -> ``(name, None)``."""
    for suffix, rotations in ROTATION_SUFFIXES.items():
        if split.endswith(suffix):
            return split.removesuffix(suffix), rotations
    return split, None


def split_with_rotations(split: str, rotations: bool | None) -> str:
    """The split name that asks for ``rotations`` (None: the split's own default)."""
    base, _ = parse_split(split)
    if rotations is None:
        return base
    return base + ("+rotations" if rotations else "+no-rotations")


@dataclass(frozen=True)
class Alphabet:
    name: str
    first_id: int  # global character id, 1-based, as in the original zips
    last_id: int
    set: str  # "background" or "evaluation"


def omniglot_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding Omniglot inside the data directory."""
    return resolve_data_dir(data_dir) / "omniglot"


def read_alphabets(root: Path) -> list[Alphabet]:
    """The alphabet table: ``alphabets.tsv``, else derived from the official zips or folders."""
    path = root / "alphabets.tsv"
    if not path.exists():
        from fewshot.data.omniglot_files import official_alphabets

        return [Alphabet(*row) for row in official_alphabets(root)]
    try:
        with open(path, newline="") as handle:
            alphabets = [
                Alphabet(row["alphabet"], int(row["first_id"]), int(row["last_id"]), row["set"])
                for row in csv.DictReader(handle, delimiter="\t")
            ]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path} is damaged ({err}): delete it to derive it again from the zips") from err
    if not alphabets:
        raise DataError(f"{path} lists no alphabet: delete it to derive it again from the zips")
    return alphabets


def character_names(alphabets: list[Alphabet]) -> list[str]:
    """``Alphabet/characterNN`` for global ids ``1..n`` (index 0 is id 1; n = 1623 for Omniglot)."""
    names = [""] * max(a.last_id for a in alphabets)
    for alphabet in alphabets:
        for char_id in range(alphabet.first_id, alphabet.last_id + 1):
            names[char_id - 1] = f"{alphabet.name}/character{char_id - alphabet.first_id + 1:02d}"
    if "" in names:
        raise DataError(f"the alphabet table leaves character id {names.index('') + 1} unassigned")
    return names


def load_raw_images(root: Path, n_characters: int = N_CHARACTERS) -> np.ndarray:
    """All characters as a bool array ``(n_characters, 20, 105, 105)``, True = paper.

    Row ``r`` is global character id ``r + 1``. Reads the compact ``.npz`` form of each set;
    falls back to the official zips or their unpacked folders (see
    `fewshot.data.omniglot_files`).
    """
    parts = []
    for name in ("images_background", "images_evaluation"):
        npz = root / f"{name}.npz"
        if npz.exists():
            try:
                with np.load(npz, allow_pickle=False) as archive:
                    parts.append(archive["images"])
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"{npz} is damaged ({err}): download it again") from err
        else:
            from fewshot.data.omniglot_files import load_official

            parts.append(load_official(root, name))
    if parts[0].shape[2:] != parts[1].shape[2:]:
        raise DataError(f"Omniglot in {root}: the two sets have different image sizes")
    images = np.concatenate(parts)
    if images.shape[:2] != (n_characters, 20):
        raise DataError(
            f"Omniglot in {root} has shape {images.shape}, expected ({n_characters}, 20, ...): "
            "a file is incomplete, download it again"
        )
    return images


def _to_ink_tensor(images: np.ndarray, image_size: int, chunk: int = 512) -> torch.Tensor:
    """bool ``(n, H, W)`` paper=True -> float ``(n, 1, s, s)`` ink=1, resized with antialiasing.

    Converted in chunks: a float copy of all 32,460 images at 105x105 would take 1.4 GB.
    """
    out = torch.empty(images.shape[0], 1, image_size, image_size)
    for start in range(0, images.shape[0], chunk):
        ink = torch.from_numpy(~images[start : start + chunk]).to(torch.float32).unsqueeze(1)
        if ink.shape[-1] != image_size or ink.shape[-2] != image_size:
            ink = F.interpolate(ink, size=(image_size, image_size), mode="bilinear", antialias=True)
        out[start : start + chunk] = ink
    return out


def _read_split_file(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        raise DataError(
            f"split file {path} is missing: run `fewshot data download omniglot` or point "
            "--data-dir / FEWSHOT_DATA_DIR at a folder with omniglot/splits/vinyals/"
        )
    classes = []
    for number, line in enumerate(path.read_text().split(), start=1):
        character, _, rotation = line.rpartition("/")
        angle = rotation.removeprefix("rot")
        if not character or not angle.isdigit() or int(angle) not in ROTATIONS:
            raise DataError(f"{path}, line {number}: {line!r} is not Alphabet/characterNN/rotDDD")
        classes.append((character, int(angle)))
    if not classes:
        raise DataError(f"split file {path} is empty: download it again")
    return classes


def _class_list(
    split: str,
    subset: str,
    root: Path,
    names: list[str],
    alphabets,
    seed: int,
    rotations: bool | None,
) -> list[tuple[str, int]]:
    """``(character name, rotation)`` per class of the chosen split and subset."""
    if rotations is None:
        rotations = DEFAULT_ROTATIONS[split]
    if split == "vinyals":
        listed = _read_split_file(root / "splits" / "vinyals" / f"{subset}.txt")
        return listed if rotations else [(c, a) for c, a in listed if a == 0]
    if split == "lake":
        wanted = "background" if subset in ("background", "train") else "evaluation"
        chars = [names[i - 1] for a in alphabets if a.set == wanted for i in range(a.first_id, a.last_id + 1)]
    else:
        n_train = (
            RANDOM_TRAIN if len(names) == N_CHARACTERS else round(len(names) * RANDOM_TRAIN / N_CHARACTERS)
        )
        order = np.random.default_rng(seed).permutation(len(names))
        chosen = order[:n_train] if subset == "train" else order[n_train:]
        chars = [names[i] for i in sorted(chosen)]
    return [(c, a) for c in chars for a in (ROTATIONS if rotations else (0,))]


def _check_request(split: str, subset: str, image_size: int) -> None:
    """Refuse an unknown split or subset and an image size that is not a positive whole number."""
    if split not in SPLITS:
        raise DataError(
            f"unknown Omniglot split {split!r}: choose one of {', '.join(SPLITS)} "
            "(optionally +rotations or +no-rotations)"
        )
    if subset not in SUBSETS[split]:
        raise DataError(
            f"unknown subset {subset!r} of the {split} split: choose one of {', '.join(SUBSETS[split])}"
        )
    if not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image size must be a positive whole number, got {image_size!r}")


def _class_images(
    root: Path, names: list[str], classes: list[tuple[str, int]], image_size: int
) -> torch.Tensor:
    """``(len(classes) * 20, 1, image_size, image_size)``: the 20 drawings of every
    ``(character, rotation)`` class, class after class."""
    index_of = {name: i for i, name in enumerate(names)}
    unknown = [c for c, _ in classes if c not in index_of]
    if unknown:
        raise DataError(f"split names unknown characters, e.g. {unknown[0]!r}")
    raw = load_raw_images(root, len(names))
    rows = np.array([index_of[c] for c, _ in classes], dtype=np.int64)
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    base = _to_ink_tensor(raw[unique_rows].reshape(-1, *raw.shape[2:]), image_size)
    base = base.view(len(unique_rows), 20, 1, image_size, image_size)
    # Class c holds base[inverse[c]] rotated counter-clockwise by its angle; one batch per angle.
    data = torch.empty(len(classes), 20, 1, image_size, image_size)
    angles = torch.tensor([a for _, a in classes], dtype=torch.int64)
    inverse_t = torch.from_numpy(inverse.reshape(-1))
    for angle in ROTATIONS:
        chosen = torch.nonzero(angles == angle).flatten()
        if chosen.numel():
            data[chosen] = torch.rot90(base[inverse_t[chosen]], k=angle // 90, dims=(-2, -1))
    return data.view(-1, 1, image_size, image_size)


def load_omniglot(
    split: str = "vinyals",
    subset: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    rotations: bool | None = None,
    seed: int = 0,
) -> LabeledTensors:
    """Load one subset of an Omniglot protocol into memory.

    Args:
        split: ``vinyals``, ``lake`` or ``random`` (see the module docstring), optionally
            with ``+rotations`` or ``+no-rotations``.
        subset: ``train``/``val``/``trainval``/``test`` (vinyals), ``background``/``evaluation``
            or ``train``/``test`` (lake), ``train``/``test`` (random).
        data_dir: the data directory (holding ``omniglot/``); see `resolve_data_dir`.
        image_size: output side length.
        rotations: add 90/180/270-degree rotations as new classes (None: the split name's
            suffix, else the split's default: True for ``vinyals`` and ``random``, False for
            ``lake``).
        seed: the character shuffle of the ``random`` split.

    Returns:
        `LabeledTensors` with ``data`` ``(n, 1, image_size, image_size)`` and one class per
        (character, rotation), named ``Alphabet/characterNN/rotDDD``.
    """
    base, suffix_rotations = parse_split(split) if isinstance(split, str) else (split, None)
    rotations = suffix_rotations if rotations is None else rotations
    _check_request(base, subset, image_size)
    root = omniglot_dir(data_dir)
    if not root.exists():
        raise DataError(
            f"Omniglot not found in {root}: run `fewshot data download omniglot`, or point "
            "--data-dir / FEWSHOT_DATA_DIR at a folder that contains omniglot/"
        )
    alphabets = read_alphabets(root)
    names = character_names(alphabets)
    classes = _class_list(base, subset, root, names, alphabets, seed, rotations)
    data = _class_images(root, names, classes, image_size)
    labels = torch.arange(len(classes)).repeat_interleave(20)
    class_names = [f"{c}/rot{a:03d}" for c, a in classes]
    alphabets_of = [c.partition("/")[0] for c, _ in classes]
    info = {"dataset": "omniglot", "split": split, "subset": subset, "image_size": image_size}
    return LabeledTensors(data, labels, class_names, info, class_groups=alphabets_of)
