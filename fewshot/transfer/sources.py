"""Where the commands of transfer learning get their encoder and data.

``--encoder`` is a fewshot checkpoint (its encoder, and how its images were prepared),
``clip`` (a CLIP image tower, with its own preprocessing), or an encoder name from the
registry (random weights: training from scratch). Data sets are loaded so that their items
match what the encoder expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError


@dataclass
class EncoderSource:
    """An encoder, its registry name and config, and how to prepare images for it."""

    encoder: Any
    name: str
    preprocessing: dict | None  # image_size, channels, invert (None: the encoder's own preprocess)
    learner: Any = None  # the checkpoint's learner, when the encoder came from one
    meta: dict = field(default_factory=dict)
    description: str = ""


def _preprocessing_of(meta: dict) -> dict | None:
    if meta.get("preprocessing"):
        return dict(meta["preprocessing"])
    dataset = meta.get("dataset") or {}
    if dataset.get("dataset") == "omniglot":
        return {"image_size": int(dataset.get("image_size") or 28), "channels": 1, "invert": True}
    if dataset.get("image_size"):
        return {"image_size": int(dataset["image_size"]), "channels": 3, "invert": False}
    return None


def resolve_encoder(
    spec: str | None,
    device: torch.device,
    clip_model: str | None = None,
    pretrained: str | None = "default",
    image_size: int | None = None,
    channels: int = 3,
    seed: int = 0,
) -> EncoderSource:
    """Build the encoder named by ``--encoder`` (see the module docstring); random weights are
    drawn from ``seed``."""
    from fewshot.encoders import ENCODERS
    from fewshot.seeding import seeded

    if spec is None:
        from fewshot.models import DEFAULT_CHECKPOINT

        spec = str(DEFAULT_CHECKPOINT)
    path = Path(spec).expanduser()
    if path.suffix == ".safetensors" or path.is_file():
        from fewshot.model_loading import load_learner

        learner, meta = load_learner(path, device)
        return EncoderSource(
            learner.encoder,
            meta["encoder"],
            _preprocessing_of(meta),
            learner,
            meta,
            f"{meta['encoder']} from {path.name}",
        )
    if spec == "clip":
        from fewshot.encoders.clip import DEFAULT_MODEL

        with seeded(seed):  # --pretrained none: random weights
            encoder = ENCODERS.create(
                "clip", model=clip_model or DEFAULT_MODEL, pretrained=pretrained, device=device
            )
        return EncoderSource(encoder, "clip", None, description=encoder.describe())
    if spec in ENCODERS:
        kwargs = (
            {"in_channels": channels, "image_size": image_size or 84} if spec in ("conv4", "resnet12") else {}
        )
        with seeded(seed):
            encoder = ENCODERS.create(spec, **kwargs).to(device)
        prep = {"image_size": image_size or 84, "channels": channels, "invert": False}
        return EncoderSource(encoder, spec, prep, description=f"{spec} (random weights)")
    raise FewshotError(
        f"--encoder {spec!r} is neither a checkpoint file nor an encoder name ({', '.join(ENCODERS.names())})"
    )


def load_for_encoder(
    source: EncoderSource,
    dataset: str,
    subset: str,
    split: str | None = None,
    data_dir: str | None = None,
    seed: int = 0,
) -> LabeledTensors:
    """Load ``dataset`` (``omniglot`` or a path) with the items prepared as ``source`` expects."""
    from fewshot.data.loading import load_dataset

    prep = source.preprocessing
    if dataset == "omniglot":
        size = (prep or {}).get("image_size") or 28
        return load_dataset("omniglot", subset, split or "vinyals", data_dir, size, seed)
    transform = getattr(source.encoder, "preprocess", None)
    if transform is None:
        from fewshot.data.transforms import image_transform

        if prep is None:
            raise FewshotError(f"{source.description}: unknown image size; pass --image-size")
        transform = image_transform(
            int(prep["image_size"]), int(prep.get("channels", 3)), bool(prep.get("invert"))
        )
    return load_dataset(dataset, subset, split, data_dir, seed=seed, transform=transform)


def embedding_source(
    dataset: str, subset: str, split: str | None = None, seed: int = 0
) -> tuple[EncoderSource, LabeledTensors]:
    """An embedding file's features with the identity encoder (nothing to embed)."""
    from fewshot.data.loading import load_dataset
    from fewshot.encoders.base import IdentityEncoder

    data = load_dataset(dataset, subset, split, seed=seed)
    encoder = IdentityEncoder(int(data.data.shape[-1]))
    return EncoderSource(encoder, "identity", None, description="identity (embedding-file features)"), data


def preprocessing_record(source: EncoderSource) -> dict | None:
    """How to prepare images for this encoder, for a checkpoint's ``preprocessing`` metadata."""
    if source.preprocessing is not None:
        return dict(source.preprocessing)
    encoder = source.encoder
    if getattr(encoder, "input_size", None) is None:
        return None
    channels, height, _ = encoder.input_size
    record: dict[str, Any] = {"image_size": int(height), "channels": int(channels), "invert": False}
    for step in getattr(getattr(encoder, "preprocess", None), "transforms", []):
        if type(step).__name__ == "Normalize":
            record["mean"], record["std"] = [float(v) for v in step.mean], [float(v) for v in step.std]
    return record


def classifier_metadata(encoder_name: str, model: Any) -> dict:
    """`learner_metadata` for a fine-tuned `Classifier`.

    Its file holds every weight, so a CLIP encoder is rebuilt with ``pretrained=None`` (no
    download when loading); the weights it started from are kept as ``pretrained_from``.
    """
    from fewshot.checkpoints import learner_metadata

    meta = learner_metadata("classifier", encoder_name, model)
    config = meta["encoder_config"]
    if "pretrained" in config and config["pretrained"] is not None:
        meta["pretrained_from"] = config["pretrained"]
        meta["encoder_config"] = {**config, "pretrained": None}
    return meta
