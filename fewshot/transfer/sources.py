"""What a transfer run records of its encoder: the preprocessing and a classifier's metadata.

Building the encoder from ``--encoder`` and loading data for it is `fewshot.build`
(`EncoderSource`, `load_for_encoder` and `embedding_source` are re-exported here).
"""

from __future__ import annotations

from typing import Any

from fewshot.build import EncoderSource, embedding_source, load_for_encoder

__all__ = [
    "EncoderSource",
    "classifier_metadata",
    "embedding_source",
    "load_for_encoder",
    "preprocessing_record",
    "weights_provenance",
]


def preprocessing_record(source: EncoderSource) -> dict | None:
    """How to prepare images for this encoder, for a checkpoint's ``preprocessing`` metadata:
    what the encoder declares (``encoder.preprocessing()``, the ImageNet encoders), else the
    source's record, else read off the encoder's size and its ``preprocess`` transforms (CLIP)."""
    encoder = source.encoder
    if callable(getattr(encoder, "preprocessing", None)):
        return dict(encoder.preprocessing())
    if source.preprocessing is not None:
        return dict(source.preprocessing)
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
    An encoder that states its provenance (`weights_provenance`: source, licence, training
    data of pretrained weights) has it carried forward, so users know what they may ship.
    """
    from fewshot.checkpoints import learner_metadata
    from fewshot.learners import LEARNERS

    name = LEARNERS.name_of(type(model))  # "classifier"; "cocoop-classifier" for CoCoOp's
    meta = {**learner_metadata(name, encoder_name, model), **weights_provenance(model.encoder)}
    config = meta["encoder_config"]
    if "pretrained" in config and config["pretrained"] is not None:
        meta["pretrained_from"] = config["pretrained"]
        meta["encoder_config"] = {**config, "pretrained": None}
    return meta


def weights_provenance(encoder: Any) -> dict:
    """``weights_source``, ``weights_licence`` (and ``weights_training_data``) of an encoder that
    declares them (``encoder.provenance()``), else ``{}``. Reports and checkpoints carry them."""
    provenance = getattr(encoder, "provenance", None)
    return dict(provenance()) if callable(provenance) else {}
