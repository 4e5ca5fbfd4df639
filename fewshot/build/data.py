"""Data sets loaded as a model expects (its transform, image size or own preprocessing)."""

from __future__ import annotations

import os
from typing import Any

from fewshot.build.encoders import EncoderSource
from fewshot.errors import CheckpointError, FewshotError


def data_transform(meta: dict[str, Any], learner: Any):
    """The PIL -> tensor transform for image-folder data: the encoder's own (CLIP's
    ``preprocess``), or the checkpoint's preprocessing, or None (the loader's default)."""
    from fewshot.preprocessing import preprocessing_from_metadata

    for attribute in ("preprocess", "transform"):
        own = getattr(learner.encoder, attribute, None)
        if callable(own):
            return own
    if meta.get("untrained"):
        return None
    try:
        return preprocessing_from_metadata(meta).transform()
    except CheckpointError:
        return None


def load_data(dataset, subset, split=None, data_dir=None, image_size=None, seed=0, transform=None):
    """`fewshot.data.loading.load_dataset`, passing ``transform`` to data sets that take one."""
    from fewshot.data.catalog import named_dataset
    from fewshot.data.loading import load_dataset

    named = named_dataset(dataset)
    if transform is None or (named is not None and not named.takes_transform):
        return load_dataset(dataset, subset, split, data_dir, image_size, seed)
    return load_dataset(dataset, subset, split, data_dir, image_size, seed, transform=transform)


def reads_pil(encoder: Any) -> bool:
    """Whether ``encoder`` prepares PIL images itself (CLIP): a tensor set's items then go
    through its own preprocess (`through_preprocess`) rather than being resized here."""
    return bool(getattr(encoder, "reads_images", False))


def load_through_preprocess(encoder: Any, dataset, subset, split=None, data_dir=None, seed=0):
    """A named tensor set at its own size, each item through ``encoder``'s PIL preprocess."""
    return through_preprocess(load_data(dataset, subset, split, data_dir, None, seed), encoder.preprocess)


def load_for_encoder(
    source: EncoderSource,
    dataset: str,
    subset: str,
    split: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
):
    """Load ``dataset`` (a named set or a path) with the items prepared as ``source`` expects."""
    from fewshot.data.catalog import named_dataset

    prep = source.preprocessing
    named = named_dataset(dataset)
    if named is not None and not named.takes_transform:  # a tensor set
        if reads_pil(source.encoder):
            return load_through_preprocess(source.encoder, dataset, subset, split, data_dir, seed)
        from fewshot.encoders.pretrained import ImageInput

        size = (prep or {}).get("image_size") or named.image_size
        if isinstance(getattr(source.encoder, "input", None), ImageInput):
            # it resizes every batch itself: load no larger than the originals, never a whole
            # set at 224 px in memory (70,000 Fashion-MNIST images: 42 GB at 224, 220 MB at 28)
            size = min(int(size), int(getattr(named, "native_size", named.image_size)))
        return load_data(dataset, subset, split, data_dir, size, seed)
    transform = getattr(source.encoder, "preprocess", None)
    if transform is None:
        from fewshot.data.transforms import image_transform

        if prep is None:
            raise FewshotError(f"{source.description}: unknown image size; pass --image-size")
        transform = image_transform(
            int(prep["image_size"]), int(prep.get("channels", 3)), bool(prep.get("invert"))
        )
    return load_data(dataset, subset, split, data_dir, seed=seed, transform=transform)


def through_preprocess(data, preprocess):
    """A tensor set's ``[0, 1]`` images -> PIL -> the encoder's own ``preprocess`` (CLIP reads
    PIL images: grey ones become RGB, and the model's resize, crop and normalisation apply)."""
    import torch
    from PIL import Image

    from fewshot.data.tensors import LabeledTensors

    def one(x: torch.Tensor) -> torch.Tensor:
        pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        if pixels.shape[0] == 1:
            image = Image.fromarray(pixels[0].numpy())
        else:
            image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
        return preprocess(image.convert("RGB"))

    items = torch.stack([one(x) for x in data.data])
    return LabeledTensors(items, data.labels, data.class_names, dict(data.info), data.class_groups)


def embedding_source(dataset: str, subset: str, split: str | None = None, seed: int = 0):
    """An embedding file's features with the identity encoder (nothing to embed).
    Returns ``(EncoderSource, LabeledTensors)``."""
    from fewshot.data.loading import load_dataset
    from fewshot.encoders.base import IdentityEncoder

    data = load_dataset(dataset, subset, split, seed=seed)
    encoder = IdentityEncoder(int(data.data.shape[-1]))
    return EncoderSource(encoder, "identity", None, description="identity (embedding-file features)"), data
