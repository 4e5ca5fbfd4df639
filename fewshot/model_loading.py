"""Rebuild a learner from a checkpoint through the encoder and learner registries.

This sits above `fewshot.learners` and `fewshot.encoders`, so `fewshot.checkpoints` (the file
format) need not import them; ``fewshot.checkpoints.load_learner`` re-exports it lazily.
"""

from __future__ import annotations

import os

import torch

from fewshot.checkpoints import read_checkpoint
from fewshot.encoders import ENCODERS
from fewshot.errors import CheckpointError, FewshotError
from fewshot.learners import LEARNERS


def load_learner(path: str | os.PathLike[str], device: torch.device | str = "cpu"):
    """Rebuild the learner saved in a checkpoint. Returns ``(learner, metadata)``."""
    tensors, meta = read_checkpoint(path)
    try:
        encoder = ENCODERS.create(meta["encoder"], **meta.get("encoder_config", {}))
        learner = LEARNERS.get(meta["learner"])(encoder, **meta.get("learner_config", {}))
    except CheckpointError:
        raise
    except (FewshotError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: its metadata does not describe a model this toolkit can build "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from err
    try:
        learner.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(
            f"{path}: its weights do not match the model its metadata describes "
            f"({' '.join(str(err).split())[:300]})"
        ) from err
    return learner.to(device).eval(), meta
