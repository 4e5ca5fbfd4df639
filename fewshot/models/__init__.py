"""Checkpoints that ship inside the package."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = MODELS_DIR / "protonet-conv4-omniglot.safetensors"
