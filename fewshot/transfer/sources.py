"""Where the commands of transfer learning get their encoder and data.

``--encoder`` is a fewshot checkpoint (its encoder, and how its images were prepared),
``clip`` (a CLIP image tower, with its own preprocessing), or an encoder name from the
registry (random weights: training from scratch). Data sets are loaded so that their items
match what the encoder expects.
"""

from __future__ import annotations

from typing import Any

import torch

from fewshot.build import EncoderSource, build_encoder, embedding_source, load_for_encoder

__all__ = ["EncoderSource", "embedding_source", "load_for_encoder", "resolve_encoder"]


def resolve_encoder(
    spec: str | None,
    device: torch.device,
    clip_model: str | None = None,
    pretrained: str | None = None,
    image_size: int | None = None,
    channels: int = 3,
    seed: int = 0,
) -> EncoderSource:
    """`fewshot.build.build_encoder` with the CLIP options of the transfer commands."""
    options = {"model": clip_model, "pretrained": pretrained}
    return build_encoder(spec, device, options, image_size=image_size, seed=seed, channels=channels)


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
