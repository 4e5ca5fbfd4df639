"""Encoders: one interface (`Encoder.encode(x) -> (n, d)`) and a registry of architectures.

``ENCODERS.names()`` lists them without importing torch models; ``create_encoder(name, **kw)``
builds one. A new encoder is one module here whose class is decorated
``@ENCODERS.register("name")``: it appears in the command line's ``--encoder`` choices.
"""

from __future__ import annotations

from typing import Any

from fewshot.registry import Registry

ENCODERS: Registry = Registry("encoder")
# every `@ENCODERS.register("name")` class of this package, found without importing it
ENCODERS.discover(__name__, "ENCODERS.register")


def create_encoder(name: str, **kwargs: Any):
    """Build the encoder registered as `name` (see ``ENCODERS.names()``)."""
    return ENCODERS.create(name, **kwargs)


__all__ = ["ENCODERS", "create_encoder"]
