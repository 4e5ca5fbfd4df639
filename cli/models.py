"""Kept for callers of the old helpers: the model building now lives in `fewshot.build`."""

from __future__ import annotations

from typing import Any


def resolve_learner(
    method: str | None,
    checkpoint,
    encoder: str | None,
    encoder_options: dict[str, Any],
    metric: str | None,
    device,
    data_shape: tuple[int, ...] | None = None,
    seed: int = 0,
):
    """`fewshot.build.build_model` with ``--metric`` as the one learner option."""
    from fewshot.build import build_model

    return build_model(
        method, checkpoint, encoder, encoder_options, {"metric": metric}, device, data_shape, seed
    )
