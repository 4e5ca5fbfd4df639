"""`fewshot rank-adapted` as a library call: which of several adapted models to keep.

Each model (``fewshot adapt`` output, or any fixed-class classifier checkpoint of the same
classes) predicts the target items it would see; `fewshot.adapt.ranking.rank_models` ranks
them by agreement with their ensemble. Target labels, when the data has them and
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
    """Load every model and the target prepared for it; rank. Returns the report."""
    from fewshot.adapt.ranking import rank_probabilities
    from fewshot.adapt.trainer import target_probabilities
    from fewshot.build import build_encoder, load_for_encoder
    from fewshot.data.tensors import LabeledTensors
    from fewshot.device import resolve_device

    r = request
    check_request(r)
    device = resolve_device(r.device)
    probabilities, labels, classes = {}, None, None
    for path in r.models:
        source = build_encoder(path, device)
        model = source.learner
        names = list(getattr(model, "class_names", []) or [])
        if not names or not hasattr(model, "head"):
            raise FewshotError(f"model {path} is not a fixed-class classifier (a fewshot adapt output)")
        if classes is not None and names != classes:
            raise FewshotError(f"model {path} predicts other classes than {r.models[0]}")
        classes = names
        items = load_for_encoder(source, r.target, r.target_subset, r.split, r.data_dir, r.seed)
        if len(items) == 0:
            raise FewshotError(f"--target {r.target} holds no readable image")
        if isinstance(items, LabeledTensors) and r.target_labels and list(items.class_names) == names:
            labels = items.labels
        data = items.data if isinstance(items, LabeledTensors) else items
        probabilities[str(path)] = target_probabilities(model, data, device)
    rows = rank_probabilities(probabilities, labels)
    return {"target": r.target, "items": len(next(iter(probabilities.values()))), "classes": classes,
            "models": rows, "best": rows[0]["name"], "ranked_by": "agreement"}  # fmt: skip
