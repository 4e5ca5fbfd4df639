"""``fewshot label --engine ray``: the labelling pass's batches from Ray Data actors.

The same pipeline as the embedding engine (`fewshot.scale.ray_embed`): ``from_items``
(positions and paths) -> ``map_batches(decode_label_batch)`` (stateless decode tasks) ->
``map_batches(ClassifyBatch)`` (a pool of actors, each holding the fitted zero-shot classifier,
one GPU each when the cluster has GPUs) -> ``iter_batches`` here, in order. What the actors send
back is each image's top-k class indices and probabilities; this process alone turns them into
rows and writes them through the labelling journal, exactly as the local engine does, so the
CSV / JSON Lines output, resume and ``--organize`` are the local engine's.

Paths travel as bytes (``os.fsencode``): a file name that is not UTF-8 survives Arrow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.zeroshot.label_pass import ScoredBatch


def decode_label_batch(
    batch: dict[str, np.ndarray], transform: Callable, shape: tuple
) -> dict[str, np.ndarray]:
    """Stage 1: ``{"pos", "path"}`` -> ``{"pos", "pixels" (B, C, H, W), "error"}``, with the
    reasons the local engine gives (`fewshot.data.images.stream_images`); ``""`` when read."""
    from fewshot.data.images import ImageReadError, read_image

    pixels = np.zeros((len(batch["pos"]), *shape), dtype=np.float32)
    errors = []
    for i, raw in enumerate(batch["path"]):
        path = Path(os.fsdecode(bytes(raw)))
        try:
            pixels[i] = transform(read_image(path, "RGB")).numpy()
            errors.append("")
        except ImageReadError as err:
            errors.append(str(err).removeprefix(f"{path}: "))
        except Exception as err:  # noqa: BLE001 - one file's transform must not end the run
            errors.append(f"cannot transform image ({type(err).__name__}: {err})")
    return {"pos": batch["pos"], "pixels": pixels, "error": np.array(errors, dtype=object)}


class ClassifyBatch:
    """Stage 2, a stateful actor: the fitted classifier (moved to this actor's GPU if it has
    one) scores each batch: -> ``{"pos", "top_p" (B, k), "top_i" (B, k), "error"}``."""

    def __init__(self, classifier: Any, top_k: int, device: str = "auto") -> None:
        import ray
        import torch

        if isinstance(classifier, ray.ObjectRef):
            classifier = ray.get(classifier)
        cuda = device != "cpu" and torch.cuda.is_available()
        self.classifier = classifier
        self.classifier.encoder.to(torch.device("cuda" if cuda else "cpu"))
        self.top_k = top_k

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from fewshot.scale.ray_embed import _kill_once

        _kill_once()
        ok = np.array([e == "" for e in batch["error"]], dtype=bool)
        top_p = np.zeros((len(ok), self.top_k), dtype=np.float32)
        top_i = np.zeros((len(ok), self.top_k), dtype=np.int64)
        if ok.any():
            with torch.inference_mode():
                images = torch.from_numpy(batch["pixels"][ok])
                probs = self.classifier.proba_embeddings(self.classifier.encoder.encode(images))
                p, i = probs.topk(self.top_k, dim=-1)
            top_p[ok], top_i[ok] = p.float().cpu().numpy(), i.cpu().numpy()
        return {"pos": batch["pos"], "top_p": top_p, "top_i": top_i, "error": batch["error"]}


def scored(batch: dict[str, np.ndarray], paths: Sequence[Path]) -> ScoredBatch:
    """One batch Ray handed back, as the labelling pass's `ScoredBatch`."""
    good = np.array([not e for e in batch["error"]], dtype=bool)
    positions = [int(p) for p in batch["pos"]]
    return ScoredBatch(
        paths=[paths[p] for p, ok in zip(positions, good, strict=True) if ok],
        top_p=batch["top_p"][good].tolist(),
        top_i=batch["top_i"][good].tolist(),
        failures=[(paths[p], str(e)) for p, e in zip(positions, batch["error"], strict=True) if e],
    )


def _pipeline(paths: Sequence[Path], classifier, top_k: int, batch_size: int, actors, device: str):
    import ray
    from PIL import Image

    from fewshot.scale.ray_embed import actor_options

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    rows = [{"pos": i, "path": os.fsencode(p)} for i, p in enumerate(paths)]
    blocks = max(1, min(len(rows) // max(batch_size, 1), 200))
    transform = classifier.encoder.preprocess
    shape = tuple(transform(Image.new("RGB", (64, 64))).shape)
    ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        decode_label_batch, fn_kwargs={"transform": transform, "shape": shape}, batch_size=batch_size
    )
    return ds.map_batches(
        ClassifyBatch,
        fn_constructor_kwargs={"classifier": ray.put(classifier), "top_k": top_k, "device": device},
        batch_size=batch_size,
        **actor_options(device, actors),
    )


class RayBatches:
    """``batches`` for `fewshot.zeroshot.label_pass.label_all`: `paths` scored by Ray actors, in
    order (``workers`` is the local engine's and is ignored: Ray sizes its decode tasks)."""

    def __init__(self, actors: int | None = None, device: str = "auto") -> None:
        self.actors, self.device = actors, device

    def __call__(
        self, paths: Sequence[Path], classifier, top_k: int, batch_size: int, workers=None
    ) -> Iterator[ScoredBatch]:
        from fewshot.scale.ray_embed import ensure_ray

        if not paths:
            return
        ensure_ray()
        ds = _pipeline(paths, classifier, top_k, batch_size, self.actors, self.device)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield scored(batch, paths)


__all__ = ["ClassifyBatch", "RayBatches", "decode_label_batch", "scored"]
