"""`fewshot rank-adapted` as a library call: which of several adapted models to keep.

Each model (``fewshot adapt`` output, or any fixed-class classifier checkpoint of the same
classes) predicts the target items it would see. With labelled ``source`` data they are ranked
by reverse validation in the images' pixels (`fewshot.adapt.reverse`), else by agreement with
their ensemble (`fewshot.adapt.ranking`). Target labels, when the data has them and
``target_labels`` is on, only add an accuracy column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class RankAdaptedRequest:
    """The settings of `fewshot rank-adapted`."""

    models: list[Path] = field(default_factory=list)
    target: str = ""
    target_subset: str = "all"
    split: str | None = None
    target_labels: bool = True
    source: str | None = None  # labelled source data: rank by reverse validation
    source_subset: str = "all"
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None


def check_request(r: RankAdaptedRequest) -> None:
    if len(r.models) < 2:
        raise FewshotError("give at least two models to rank (e.g. the source-only one and an adapted one)")
    seen = set()
    for path in r.models:
        if not Path(path).is_file():
            raise FewshotError(f"model {path} does not exist")
        if Path(path).resolve() in seen:
            raise FewshotError(f"model {path} is given twice")
        seen.add(Path(path).resolve())


def run_rank_adapted(request: RankAdaptedRequest) -> dict[str, Any]:
    """Load every model, check they share their classes, prepare the target once per way the
    models read it, and rank. Returns the report."""
    from fewshot.adapt.ranking import check_same_classes, pixel_reverse, rank_probabilities
    from fewshot.adapt.trainer import target_probabilities
    from fewshot.build import build_encoder
    from fewshot.device import resolve_device

    r = request
    check_request(r)
    device = resolve_device(r.device)
    sources = {str(path): build_encoder(path, device) for path in r.models}
    for path, source in sources.items():
        if not getattr(source.learner, "class_names", None) or not hasattr(source.learner, "head"):
            raise FewshotError(f"model {path} is not a fixed-class classifier (a fewshot adapt output)")
    classes = check_same_classes({path: source.learner.class_names for path, source in sources.items()})
    # the source is checked (its classes) before any model runs on the target
    labelled_source = None if r.source is None else _source(r, next(iter(sources.values())), classes)
    prepared: dict[str, tuple] = {}  # preparation -> (items, labels or None)
    probabilities = {}
    for path, source in sources.items():
        key = _preparation(source)
        if key not in prepared:
            prepared[key] = _target(r, source, classes)
        items, labels = prepared[key]
        probabilities[path] = target_probabilities(source.learner, items, device)
    reverse = None
    if labelled_source is not None:
        reverse = pixel_reverse(probabilities, _raw_target(prepared), *labelled_source)
    rows = rank_probabilities(probabilities, labels, reverse)
    return {"target": r.target, "items": len(items), "classes": classes, "models": rows,
            "best": rows[0]["name"], "ranked_by": "agreement" if reverse is None else "reverse",
            "source": r.source}  # fmt: skip


def _raw_target(prepared: dict[str, tuple]):
    """The target images for the pixel representation: those of the first preparation (any
    will do: `pixel_representation` brings every size and channel count to one)."""
    items, _ = next(iter(prepared.values()))
    if items.ndim != 4:
        raise FewshotError("--source ranks by reverse validation in pixels: the target must be images")
    return items


def _source(r: RankAdaptedRequest, source, classes: list[str]):
    """The labelled source images, their labels mapped onto the models' class order."""
    import torch

    from fewshot.build import load_for_encoder
    from fewshot.data.tensors import LabeledTensors

    data = load_for_encoder(source, r.source, r.source_subset, r.split, r.data_dir, r.seed)
    if not isinstance(data, LabeledTensors) or len(data) == 0:
        raise FewshotError(f"--source {r.source} holds no labelled image")
    names = list(data.class_names)
    if sorted(names) != sorted(classes):
        raise FewshotError(
            f"--source {r.source} has other classes than the models ({', '.join(names[:5])}...): "
            "give the data the models were adapted from"
        )
    order = torch.tensor([classes.index(name) for name in names])
    return data.data, order[data.labels]


def _preparation(source) -> str:
    """What decides how the target's items are prepared for ``source``'s encoder."""
    import json

    config = source.meta.get("encoder_config") if source.meta else None
    return json.dumps([source.name, config, source.preprocessing], sort_keys=True, default=str)


def _target(r: RankAdaptedRequest, source, classes: list[str]):
    """The target's items as ``source`` reads them, and its labels when they may report accuracy."""
    from fewshot.build import load_for_encoder
    from fewshot.data.tensors import LabeledTensors

    items = load_for_encoder(source, r.target, r.target_subset, r.split, r.data_dir, r.seed)
    if len(items) == 0:
        raise FewshotError(f"--target {r.target} holds no readable image")
    if not isinstance(items, LabeledTensors):
        return items, None
    labelled = r.target_labels and list(items.class_names) == list(classes)
    return items.data, items.labels if labelled else None
