"""Indexing image files and searching by text or example image with an attached `Encoder`.

Image items get their resolved absolute path (POSIX form) as id, and the metadata
``{"path": <that path>, "label": <name of the folder holding the file>}``, so that with class
folders the label is the class. Absolute ids make ``index add`` unambiguous: a file is new
when its resolved path is not in the index yet, whichever folder argument found it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fewshot.data.images import read_image, stream_images
from fewshot.errors import FewshotError
from fewshot.faults import crash_point
from fewshot.index.base import EmbeddingIndexError
from fewshot.progress import show_progress

if TYPE_CHECKING:
    from fewshot.encoders.base import Encoder
    from fewshot.index.core import VectorIndex


def image_id(path: str | os.PathLike[str]) -> str:
    """The id an image file gets in an index: its resolved absolute path, POSIX style."""
    return Path(path).expanduser().resolve().as_posix()


def image_transform(encoder: Encoder) -> Callable:
    """PIL image -> ``(C, H, W)`` tensor the encoder takes: its ``preprocess`` when it has one,
    else a resize to its ``input_size`` (grey-scale when it wants one channel)."""
    preprocess = getattr(encoder, "preprocess", None)
    if callable(preprocess):
        return preprocess
    size = getattr(encoder, "input_size", None)
    if size is None:
        raise FewshotError(f"encoder {type(encoder).__name__} takes no images (no preprocess, no input_size)")
    from torchvision import transforms

    channels, height, width = size
    steps: list[Callable] = [transforms.Resize((height, width))]
    if channels == 1:
        steps.insert(0, transforms.Grayscale(1))
    steps.append(transforms.ToTensor())
    return transforms.Compose(steps)


def _device(encoder: Encoder) -> torch.device:
    return next(encoder.parameters(), torch.empty(0)).device


@torch.no_grad()
def embed_image_batch(encoder: Encoder, images: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` preprocessed images -> ``(B, d)`` float32 embeddings."""
    encoder.eval()
    return encoder.encode(images.to(_device(encoder))).float().cpu().numpy()


@torch.no_grad()
def embed_texts(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """``n`` strings -> ``(n, d)`` float32 embeddings, with an encoder that has ``encode_text``."""
    encode_text = getattr(encoder, "encode_text", None)
    if not callable(encode_text):
        raise FewshotError(
            f"encoder {type(encoder).__name__} cannot embed text; search by text needs a CLIP encoder"
        )
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise FewshotError("text queries must be non-empty strings")
    encoder.eval()
    out = encode_text(list(texts))
    return out.float().cpu().numpy() if hasattr(out, "cpu") else np.asarray(out, dtype=np.float32)


def embed_query_images(encoder: Encoder, images: Any) -> np.ndarray:
    """Query images -> ``(n, d)``: a path, PIL image, list of either, or a ``(n, C, H, W)`` batch."""
    if isinstance(images, torch.Tensor):
        batch = images if images.ndim == 4 else images[None]
        return embed_image_batch(encoder, batch)
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, (list, tuple)):
        images = [images]
    transform = image_transform(encoder)
    tensors = []
    for image in images:
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        tensors.append(transform(image))
    if not tensors:
        raise FewshotError("no query image given")
    return embed_image_batch(encoder, torch.stack(tensors))


def embed_image_files(
    encoder: Encoder,
    paths: Sequence[str | os.PathLike[str]],
    batch_size: int = 64,
    workers: int | None = None,
    progress: bool = False,
) -> Iterator[tuple[list[Path], np.ndarray, list[tuple[Path, str]]]]:
    """Stream image files through the encoder: yields ``(paths, (B, d) embeddings, failures)``.

    Decoding runs in `workers` processes (`fewshot.data.images.stream_images`); files that
    cannot be read are reported in ``failures`` as ``(path, reason)`` and skipped.
    """
    paths = [Path(p) for p in paths]
    bar = None
    if show_progress(progress):
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", desc="embedding", dynamic_ncols=True)
    try:
        for batch in stream_images(paths, image_transform(encoder), batch_size=batch_size, workers=workers):
            embeddings = (
                embed_image_batch(encoder, batch.images)
                if batch.images is not None
                else np.empty((0, encoder.embed_dim), np.float32)
            )
            if bar is not None:
                bar.update(len(batch.paths) + len(batch.failures))
            yield batch.paths, embeddings, batch.failures
    finally:
        if bar is not None:
            bar.close()


@dataclass
class AddReport:
    """What `add_images` did: ids added, files skipped as already indexed, files that failed."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def add_images(
    index: VectorIndex,
    encoder: Encoder,
    paths: Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = 64,
    workers: int | None = None,
    progress: bool = False,
    skip_existing: bool = True,
) -> AddReport:
    """Embed image files with `encoder` and add them to `index` under their absolute paths.

    Files already in the index are skipped (or, with ``skip_existing=False``, an error).
    Unreadable files are skipped and listed in the report. An index type that needs training
    is trained on the first embeddings, gathered until there are plenty (40 per list).
    """
    report = AddReport()
    todo = _new_files(index, paths, skip_existing, report)
    batches = _Batches(index, report, train_target=40 * index.min_training_vectors())
    for done, embeddings, failures in embed_image_files(encoder, todo, batch_size, workers, progress):
        crash_point("index.add.batch-embedded")  # nothing is on disk until the save
        report.failures.extend((image_id(p), reason) for p, reason in failures)
        if done:
            batches.append([image_id(p) for p in done], embeddings)
    batches.flush()
    return report


def _new_files(index: VectorIndex, paths, skip_existing: bool, report: AddReport) -> list[Path]:
    """The files of `paths` not in `index` (each once); the others go to ``report.skipped``."""
    todo: list[Path] = []
    seen: set[str] = set()
    for path in paths:
        key = image_id(path)
        if key in index or key in seen:
            if not skip_existing:
                raise EmbeddingIndexError(f"{key} is already in the index")
            report.skipped.append(key)
            continue
        seen.add(key)
        todo.append(Path(path))
    return todo


class _Batches:
    """Embedded batches on their way into the index: added at once to a trained index, else
    gathered until there are `train_target` vectors to train it on."""

    def __init__(self, index: VectorIndex, report: AddReport, train_target: int) -> None:
        self.index, self.report, self.train_target = index, report, train_target
        self.buffer: list[tuple[list[str], np.ndarray, list[dict[str, Any]]]] = []
        self.buffered = 0

    def append(self, keys: list[str], embeddings: np.ndarray) -> None:
        metas = [{"path": key, "label": Path(key).parent.name} for key in keys]
        self.buffer.append((keys, embeddings, metas))
        self.buffered += len(keys)
        if self.index.is_trained or self.buffered >= self.train_target:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        keys = [k for ks, _, _ in self.buffer for k in ks]
        vectors = np.concatenate([v for _, v, _ in self.buffer])
        metas = [m for _, _, ms in self.buffer for m in ms]
        self.index.add(vectors, ids=keys, metadata=metas)
        self.report.added.extend(keys)
        self.buffer.clear()
        self.buffered = 0
