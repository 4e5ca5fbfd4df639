"""`fewshot compare --checkpoint [LABEL=]PATH`: meta-trained models in the same table.

Relation Networks, FEAT and the trained R2-D2 head need their own meta-trained state, and MAML,
first-order MAML, ANIL and Reptile adapt their network on each episode: none of them can reuse
the one frozen encoder the other rows share. Each checkpoint given here joins the table as its
own learner (named by ``LABEL``, or by the learner the checkpoint holds), on the same episode
files as every other row, with its images prepared as it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class CheckpointRow:
    """One ``--checkpoint`` item: the row's name and the checkpoint file."""

    label: str | None
    path: Path
    spec: str


def parse_checkpoints(specs: list[str] | None) -> list[CheckpointRow]:
    """``["maml=runs/maml.safetensors", "runs/relation.safetensors"]`` -> rows; a missing file
    is refused in one line naming the item, before anything is loaded."""
    rows = []
    for spec in specs or []:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = "", spec
        label = label.strip()
        if sep and (not label or not path):
            raise FewshotError(f"--checkpoint {spec}: give PATH or LABEL=PATH")
        if not Path(path).is_file():
            raise FewshotError(f"--checkpoint {spec}: no such file {path}")
        rows.append(CheckpointRow(label or None, Path(path), spec))
    return rows


def checkpoint_learners(
    rows: list[CheckpointRow],
    taken: list[str],
    ways: int,
    options: dict[str, dict[str, Any]],
    device: Any,
    seed: int = 0,
) -> dict[str, tuple[Any, Any]]:
    """Row name -> ``(learner, EncoderSource)`` for every checkpoint: its own learner, with the
    ``options`` of that learner (by learner name: they apply to every row of it). Refuses a
    name already in ``taken`` (the other methods) and a model whose head cannot classify
    ``ways``-way tasks, each in one line."""
    from fewshot.build.encoders import checkpoint_source
    from fewshot.build.learners import rewrap

    chosen: dict[str, tuple[Any, Any]] = {}
    for row in rows:
        source = checkpoint_source(row.path, device)
        own = source.meta["learner"]
        name = row.label or own
        if name in chosen or name in taken:
            raise FewshotError(
                f"--checkpoint {row.spec}: a row named {name!r} is already in the table; "
                f"name this one LABEL={row.path}"
            )
        learner = rewrap(source, own, options.get(own), seed)
        try:
            learner.check_ways(ways)
        except FewshotError as err:
            raise FewshotError(f"--checkpoint {row.spec}: {err}") from None
        chosen[name] = (learner, source)
    return chosen


def checkpoint_data(sources: dict[str, Any], main_source: Any, main_data: Any, load) -> dict[str, Any]:
    """Row name -> its data: ``main_data`` when the checkpoint prepares images as the main
    encoder does, else ``load(source)``; the labels must be the main data's (the episode files
    index them), else refused naming the row."""
    import torch

    data = {}
    for name, source in sources.items():
        same = source.preprocessing == main_source.preprocessing
        same = same and not _read_differently(source, main_source)
        own = main_data if same else load(source)
        if not torch.equal(own.labels, main_data.labels):
            raise FewshotError(
                f"--checkpoint {name}: its data have other labels than the table's "
                "(another split or rotations?): compare checkpoints of the same data"
            )
        data[name] = own
    return data


def _read_differently(source: Any, main_source: Any) -> bool:
    """One encoder reads PIL images (CLIP's own preprocess), the other tensors."""
    from fewshot.build.data import reads_pil

    return reads_pil(source.encoder) != reads_pil(main_source.encoder)


__all__ = ["CheckpointRow", "checkpoint_data", "checkpoint_learners", "parse_checkpoints"]
