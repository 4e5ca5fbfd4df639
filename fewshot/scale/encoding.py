"""The parts both embedding engines share: how to build the encoder anywhere, how one image
is decoded, a shard's rows, and the summary of a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fewshot.scale.sources import Item

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class EncoderSpec:
    """How to build the encoder, anywhere (a Ray actor builds its own): the arguments of
    `fewshot.build.build_encoder`. ``spec=None`` is the shipped Omniglot Conv-4."""

    spec: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    seed: int = 0

    def source(self, device: Any = "cpu"):
        from fewshot.build import build_encoder

        return build_encoder(
            self.spec, device, dict(self.options), image_size=self.image_size, seed=self.seed
        )

    def build(self, device: Any = "cpu"):
        """The encoder on `device`, in eval mode."""
        return self.source(device).encoder.eval()


def decode_item(path: str, transform: Callable, mode: str = "RGB"):
    """``(preprocessed tensor, None)`` for a readable image, ``(None, reason)`` otherwise."""
    from fewshot.data.images import ImageReadError, read_image
    from fewshot.scale.sources import is_uri, open_bytes

    try:
        if is_uri(path):
            from PIL import Image

            with Image.open(open_bytes(path)) as image:
                image.load()
                return transform(image.convert(mode)), None
        return transform(read_image(path, mode)), None
    except ImageReadError as err:
        return None, str(err).removeprefix(f"{path}: ")
    except Exception as err:  # noqa: BLE001 - one bad file must not end the run
        return None, f"cannot read image ({type(err).__name__}: {err})"


def rows_of(items: Sequence[Item], vectors: dict[int, np.ndarray], errors: dict[int, str]) -> Rows:
    """Shard rows for `items` (position i: ``vectors[i]`` or ``errors[i]``)."""
    return [
        {
            "id": item.id,
            "path": item.path,
            "embedding": vectors.get(i),
            "error": errors.get(i),
            "metadata": item.metadata,
        }
        for i, item in enumerate(items)
    ]


@dataclass
class EmbedSummary:
    """What one `embed_items` call did."""

    out: str
    engine: str
    items: int
    shards: int
    shards_skipped: int  # finished by an earlier run
    embedded: int  # rows with an embedding, all shards
    failed: int
    dim: int
    seconds: float
    images_per_second: float  # images this run decoded and embedded, per second

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["EmbedSummary", "EncoderSpec", "Rows", "decode_item", "rows_of"]
