"""`fewshot models` as a library call: the model card of every registered encoder and of every
model shipped in ``fewshot/models/``.

Encoder cards are declared by the encoder classes (``model_card()``, see
`fewshot.encoders.pretrained.ImageNetEncoder`); a class without one gets a card from its
docstring that says so. Shipped checkpoints describe themselves (their metadata: learner,
encoder, training data, preprocessing); other shipped weights have a ``<name>.card.json``
beside them. ``"licence": "project"`` means the project's own licence (pyproject's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def project_licence() -> str:
    """The licence fewshot is distributed under (its package metadata)."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        md = metadata("fewshot")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "see pyproject.toml"
    return md.get("License-Expression") or md.get("License") or "see pyproject.toml"


def encoder_card(name: str) -> dict[str, Any]:
    """The card the encoder class registered as ``name`` declares."""
    from fewshot.encoders import ENCODERS

    cls = ENCODERS.get(name)
    if callable(getattr(cls, "model_card", None)):
        card = cls.model_card()
    else:
        doc = (cls.__doc__ or "").strip().splitlines()
        card = {
            "summary": doc[0] if doc else cls.__name__,
            "source": f"fewshot ({cls.__module__}.{cls.__name__})",
            "training_data": "not declared by the encoder class (weights: a checkpoint's or --pretrained)",
            "licence": f"code: {project_licence()}; weights: not declared by the encoder class",
        }
    return {"name": name, "kind": "encoder", **card}


def _parameter_count(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        total = 0
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            n = 1
            for side in f.get_slice(key).get_shape():
                n *= side
            total += n
    return total


def shipped_card(path: Path) -> dict[str, Any]:
    """The card of one shipped weights file: its ``.card.json``, else its checkpoint metadata."""
    card: dict[str, Any] = {"name": path.stem, "kind": "shipped model", "file": path.name}
    sidecar = path.with_name(path.stem + ".card.json")
    if sidecar.is_file():
        card.update(json.loads(sidecar.read_text(encoding="utf-8")))
    else:
        from fewshot.checkpoints import read_checkpoint

        _, meta = read_checkpoint(path)
        dataset = meta.get("dataset") or {}
        prep = meta.get("preprocessing") or {}
        card.update(
            summary=f"{meta.get('learner')} around a {meta.get('encoder')} encoder",
            source="trained by this project (`fewshot train`)",
            training_data=f"{dataset.get('dataset')} ({dataset.get('split')} split, {dataset.get('subset')})",
            licence="project",
            encoder=meta.get("encoder"),
            input_size=[prep.get("channels"), prep.get("image_size"), prep.get("image_size")],
            preprocessing=prep,
        )
    if card.get("licence") == "project":
        card["licence"] = project_licence()
    card["parameters"] = _parameter_count(path)
    return card


def model_cards(details: bool = True) -> list[dict[str, Any]]:
    """Every registered encoder's card, then every shipped model's.

    ``details``: let classes that build cheaply add their parameter count, input size and
    preprocessing (``model_card(details=True)``; EfficientNet-Lite builds its architecture).
    """
    from fewshot.encoders import ENCODERS
    from fewshot.models import MODELS_DIR

    cards = []
    for name in ENCODERS.names():
        card = encoder_card(name)
        cls = ENCODERS.get(name)
        if details and callable(getattr(cls, "card_details", None)):
            card.update(cls.card_details())
        cards.append(card)
    cards += [shipped_card(path) for path in sorted(Path(MODELS_DIR).glob("*.safetensors"))]
    return cards
