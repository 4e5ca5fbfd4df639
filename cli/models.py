"""Which model a command uses: a checkpoint, a registry encoder, or the shipped checkpoint."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any


def resolve_learner(
    method: str | None,
    checkpoint: Path | None,
    encoder: str | None,
    encoder_options: dict[str, Any],
    metric: str | None,
    device,
    data_shape: tuple[int, ...] | None = None,
    seed: int = 0,
):
    """Build the learner a command asked for. Returns ``(learner, metadata)``.

    - ``checkpoint`` given: load it; a ``method`` other than the checkpoint's learner wraps the
      checkpoint's encoder in that learner (frozen-encoder learners such as SimpleShot).
    - ``encoder`` without a checkpoint: build it from the registry (``encoder_options`` such as
      ``model``/``pretrained`` are passed through) inside ``method`` (default protonet),
      untrained. ``data_shape`` ``(n, C, H, W)`` sizes Conv-4 and ResNet-12.
    - neither: the shipped Omniglot checkpoint.

    Weights that are not loaded (untrained encoders, heads) are drawn from ``seed``, so the same
    command gives the same numbers. ``metadata["from_checkpoint"]`` says whether weights were
    loaded from a checkpoint; ``metadata["weights"]`` describes them otherwise.
    """
    from fewshot.encoders import ENCODERS
    from fewshot.errors import CheckpointError, FewshotError
    from fewshot.learners import LEARNERS
    from fewshot.model_loading import load_learner
    from fewshot.seeding import seeded

    if method is not None:
        LEARNERS.get(method)  # unknown names fail here, before any loading
    if metric is not None and metric not in ("euclidean", "cosine"):
        raise FewshotError(f"unknown metric {metric!r}; choose one of: euclidean, cosine")
    if checkpoint is None and encoder == "clip":
        from fewshot_cli.common import clip_encoder

        opts = encoder_options
        with seeded(seed):  # --pretrained none: random weights
            clip = clip_encoder(
                opts.get("model") or "ViT-B-32",
                opts.get("pretrained") or "default",
                str(device),
                opts.get("precision") or "auto",
            )
        name = method or "protonet"
        cls = LEARNERS.get(name)
        if name == "protonet":  # CLIP's zero-shot head: scaled cosine
            learner = cls(clip, metric=metric or "cosine", scale=clip.logit_scale)
        else:
            learner = _build(cls, clip, metric)
        untrained = clip.pretrained is None
        weights = (
            f"untrained (random weights, seed {seed})" if untrained else f"pretrained CLIP {clip.describe()}"
        )
        meta = {
            "learner": name,
            "encoder": f"clip {clip.describe()}",
            "untrained": untrained,
            "weights": weights,
        }
        return learner.eval(), meta
    if checkpoint is None and encoder is not None:
        factory = ENCODERS.get(encoder)
        accepted = inspect.signature(factory).parameters
        # --model/--pretrained/--precision go to encoders that take them
        options = {k: v for k, v in encoder_options.items() if v is not None and k in accepted}
        if encoder in ("conv4", "resnet12") and data_shape is not None and len(data_shape) == 4:
            options.setdefault("in_channels", int(data_shape[1]))
            options.setdefault("image_size", int(data_shape[-1]))
        elif encoder == "identity" and data_shape is not None:
            options.setdefault("embed_dim", int(data_shape[-1]))
        name = method or "protonet"
        with seeded(seed):
            try:
                enc = factory(**options)
            except TypeError as err:
                raise FewshotError(f"encoder {encoder!r} does not take these options: {err}") from err
            learner = _build(LEARNERS.get(name), enc, metric)
        weights = (
            "none (identity encoder: the embedding file's features)"
            if encoder == "identity"
            else f"untrained (random weights, seed {seed})"
        )
        meta = {
            "learner": name,
            "encoder": encoder,
            "encoder_config": _config(enc),
            "untrained": True,
            "weights": weights,
        }
        return learner.to(device).eval(), meta

    if checkpoint is None:
        from fewshot.models import DEFAULT_CHECKPOINT

        if not DEFAULT_CHECKPOINT.exists():
            raise CheckpointError(
                f"the shipped checkpoint {DEFAULT_CHECKPOINT.name} is not installed: "
                "pass --checkpoint FILE or --encoder NAME"
            )
        checkpoint = DEFAULT_CHECKPOINT
    learner, meta = load_learner(checkpoint, device)
    if encoder is not None and encoder != meta.get("encoder"):
        raise FewshotError(
            f"--encoder {encoder} conflicts with the checkpoint, which holds a {meta.get('encoder')} "
            "encoder: leave out --encoder or --checkpoint"
        )
    if method is not None and method != meta["learner"]:
        cls = LEARNERS.get(method)
        if not getattr(cls, "frozen_encoder", False):
            raise FewshotError(
                f"--method {method} adapts its encoder and cannot reuse a {meta['learner']} checkpoint: "
                f"train one with `fewshot train --method {method}`"
            )
        with seeded(seed):
            learner = _build(cls, learner.encoder, metric).to(device).eval()
        meta = {**meta, "learner": method, "wrapped_from": meta["learner"]}
    elif metric is not None:
        if not hasattr(learner, "metric"):
            raise FewshotError(f"--metric does not apply to {meta['learner']}")
        learner.metric = metric
    return learner, {**meta, "from_checkpoint": True}


def _build(cls, encoder, metric: str | None):
    from fewshot.errors import FewshotError

    if metric is None:
        return cls(encoder)
    if "metric" not in inspect.signature(cls).parameters:
        raise FewshotError(f"--metric does not apply to {cls.__name__}")
    return cls(encoder, metric=metric)


def _config(encoder) -> dict:
    try:
        return encoder.config()
    except Exception:  # noqa: BLE001 - metadata for display only
        return {}


def dataset_transform(meta: dict[str, Any], learner):
    """The PIL -> tensor transform for image-folder data: the checkpoint's preprocessing, or
    the encoder's own (``encoder.preprocess``, e.g. CLIP's), or None."""
    from fewshot.errors import CheckpointError
    from fewshot.preprocessing import preprocessing_from_metadata

    for attribute in ("preprocess", "transform"):  # e.g. ClipEncoder.preprocess
        own = getattr(learner.encoder, attribute, None)
        if callable(own):
            return own
    if meta.get("untrained"):
        return None
    try:
        return preprocessing_from_metadata(meta).transform()
    except CheckpointError:
        return None


def load_data(dataset, subset, split, data_dir, image_size, seed, transform=None):
    """`fewshot.data.loading.load_dataset`, passing ``transform`` where it is supported."""
    from fewshot.data.loading import load_dataset

    accepts = "transform" in inspect.signature(load_dataset).parameters
    if transform is not None and dataset != "omniglot" and accepts:
        return load_dataset(dataset, subset, split, data_dir, image_size, seed, transform=transform)
    return load_dataset(dataset, subset, split, data_dir, image_size, seed)
