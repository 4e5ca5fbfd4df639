"""Whole models: a checkpoint (reused by another learner where it can be), or encoder + learner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fewshot.build.encoders import build_encoder, checkpoint_source
from fewshot.build.learners import build_learner, rewrap
from fewshot.errors import CheckpointError, FewshotError


def build_model(
    method: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    learner_options: dict[str, Any] | None = None,
    device: Any = "cpu",
    data_shape: tuple[int, ...] | None = None,
    seed: int = 0,
):
    """The model a command asked for, in eval mode. Returns ``(learner, metadata)``.

    - ``checkpoint`` given, or neither ``checkpoint`` nor ``encoder`` (the shipped Omniglot
      ProtoNet): load it; another ``method`` reuses its encoder if it learns on embeddings.
    - ``encoder`` alone: that registry encoder (sized from ``data_shape``) inside ``method``
      (default protonet), untrained unless the encoder loads pretrained weights.

    ``metadata["from_checkpoint"]`` says whether weights were loaded from a checkpoint;
    ``metadata["weights"]`` describes them otherwise.
    """
    from fewshot.learners import LEARNERS

    if method is not None:
        LEARNERS.get(method)  # unknown names fail here, before any loading
    if checkpoint is None and encoder is not None:
        source = build_encoder(encoder, device, encoder_options, data_shape, seed=seed)
        name = method or "protonet"
        learner = build_learner(name, source.encoder, learner_options, seed=seed)
        return learner.to(device).eval(), {"learner": name, **source.meta}
    source = checkpoint_source(_checkpoint_path(checkpoint), device)
    if encoder is not None and encoder != source.name:
        raise FewshotError(
            f"--encoder {encoder} conflicts with the checkpoint, which holds a {source.name} "
            "encoder: leave out --encoder or --checkpoint"
        )
    own = source.meta["learner"]
    learner = rewrap(source, method or own, learner_options, seed=seed).to(device).eval()
    meta = {**source.meta, "from_checkpoint": True}
    if learner is not source.learner:
        meta.update(learner=method, wrapped_from=own)
    return learner, meta


def _checkpoint_path(checkpoint: str | os.PathLike[str] | None) -> Path:
    if checkpoint is not None:
        return Path(checkpoint)
    from fewshot.models import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.exists():
        raise CheckpointError(
            f"the shipped checkpoint {DEFAULT_CHECKPOINT.name} is not installed: "
            "pass --checkpoint FILE or --encoder NAME"
        )
    return DEFAULT_CHECKPOINT
