"""Encoders: one interface (`Encoder.encode(x) -> (n, d)`) and a registry of architectures.

``ENCODERS.names()`` lists them without importing torch models; ``create_encoder(name, **kw)``
builds one. Register a new encoder with ``ENCODERS.register("name", "module:Class")`` or as a
decorator, and it appears in the command line's ``--encoder`` choices.
"""

from __future__ import annotations

from typing import Any

from fewshot.registry import Registry

ENCODERS: Registry = Registry("encoder")
ENCODERS.register("clip", "fewshot.encoders.clip:ClipEncoder")
ENCODERS.register("conv4", "fewshot.encoders.conv4:Conv4")
ENCODERS.register("resnet12", "fewshot.encoders.resnet12:ResNet12")
ENCODERS.register("identity", "fewshot.encoders.base:IdentityEncoder")


def create_encoder(name: str, **kwargs: Any):
    """Build the encoder registered as `name` (see ``ENCODERS.names()``)."""
    return ENCODERS.create(name, **kwargs)


__all__ = ["ENCODERS", "create_encoder"]
