"""The ``ray`` engine of `fewshot.scale.embed`: Ray Data batch inference with model actors.

The pipeline is Ray Data's own (no scheduler or queue of ours): ``from_items`` (positions and
paths of the pending shards) -> ``map_batches(decode_batch)`` (stateless tasks: decode and
preprocess) -> ``map_batches(EncodeBatch)`` (a pool of actors, each holding the model, one GPU
each when the cluster has GPUs) -> ``iter_batches`` in this process, which collects rows by
position and hands over each shard once complete. Order is preserved, so memory stays near
one shard. Ray restarts a killed actor and runs its batch again; rows are keyed by position, so
none is counted twice.

Ray is started locally unless ``RAY_ADDRESS`` names a cluster (``ray.init`` reads it).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.scale.shards import ShardPlan
from fewshot.scale.sources import Item

# Fault injection for the tests: an actor SIGKILLs itself at its first batch when this names a
# file that does not exist yet (it creates the file first, so the restarted actor carries on).
KILL_ONCE = "FEWSHOT_RAY_KILL_ONCE"


def ensure_ray(num_cpus: int | None = None) -> None:
    """Start Ray (or join ``RAY_ADDRESS``) unless this process is connected already."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def ray_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def decode_batch(batch: dict[str, np.ndarray], transform: Callable, shape: tuple) -> dict[str, np.ndarray]:
    """Ray Data stage 1: ``{"pos", "path"}`` -> ``{"pos", "pixels" (B, C, H, W), "error"}``
    (a failed image gets zero pixels of the transform's output `shape` and its reason;
    ``error`` is ``""`` for the others)."""
    from fewshot.scale.encoding import decode_item

    tensors, errors = [], []
    for path in batch["path"]:
        tensor, error = decode_item(str(path), transform)
        tensors.append(tensor)
        errors.append(error or "")
    pixels = np.zeros((len(tensors), *shape), dtype=np.float32)
    for i, tensor in enumerate(tensors):
        if tensor is not None:
            pixels[i] = tensor.numpy()
    return {"pos": batch["pos"], "pixels": pixels, "error": np.array(errors, dtype=object)}


class EncodeBatch:
    """Ray Data stage 2, a stateful actor: builds the encoder once (on its GPU if it has one)
    and embeds each batch: ``{"pos", "pixels", "error"}`` -> ``{"pos", "embedding", "error"}``."""

    def __init__(self, spec: Any, device: str = "auto") -> None:
        import torch

        cuda = device != "cpu" and torch.cuda.is_available()
        self.device = torch.device("cuda" if cuda else "cpu")
        self.encoder = spec.build(self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from fewshot.index.images import embed_image_batch

        _kill_once()
        ok = np.array([e == "" for e in batch["error"]], dtype=bool)
        dim = int(self.encoder.embed_dim)
        vectors = np.full((len(ok), dim), np.nan, dtype=np.float32)
        if ok.any():
            vectors[ok] = embed_image_batch(self.encoder, torch.from_numpy(batch["pixels"][ok]))
        return {"pos": batch["pos"], "embedding": vectors, "error": batch["error"]}


def _kill_once() -> None:
    marker = os.environ.get(KILL_ONCE)
    if marker and not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)


def _dataset(items, plans, spec, transform, batch_size: int, actors: int | None, device: str):
    import ray
    from PIL import Image

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    rows = [{"pos": i, "path": items[i].path} for p in plans for i in range(p.start, p.start + p.rows)]
    blocks = max(1, min(len(rows) // max(batch_size, 1), 200))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    shape = tuple(transform(Image.new("RGB", (64, 64))).shape)  # every batch's pixels alike
    ds = ds.map_batches(
        decode_batch, fn_kwargs={"transform": transform, "shape": shape}, batch_size=batch_size
    )
    return ds.map_batches(
        EncodeBatch,
        fn_constructor_kwargs={"spec": spec, "device": device},
        batch_size=batch_size,
        **actor_options(device, actors),
    )


def actor_options(device: str, actors: int | None) -> dict[str, Any]:
    """`map_batches` options of the model actors: one per GPU (one GPU each) unless `actors`
    says how many, and the fault-injection variable passed on to their processes."""
    gpus = ray_gpus() if device != "cpu" else 0
    options: dict[str, Any] = {"concurrency": actors or max(1, gpus), "num_gpus": 1 if gpus else 0}
    if os.environ.get(KILL_ONCE):
        options["runtime_env"] = {"env_vars": {KILL_ONCE: os.environ[KILL_ONCE]}}
    return options


def ray_shards(
    items: Sequence[Item],
    plans: Sequence[ShardPlan],
    spec: Any,
    transform: Callable,
    batch_size: int,
    actors: int | None,
    device: str,
    bar,
) -> Iterator[tuple[ShardPlan, list[dict[str, Any]]]]:
    """The planned shards' rows, in order, each once all its rows came back from the actors."""
    from fewshot.scale.encoding import rows_of

    if not plans:
        return
    ensure_ray()
    shard_of = {}
    for plan in plans:
        shard_of.update(dict.fromkeys(range(plan.start, plan.start + plan.rows), plan.number))
    pending = {p.number: (p, {}, {}) for p in plans}  # number -> (plan, vectors, errors)
    ds = _dataset(items, plans, spec, transform, batch_size, actors, device)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for pos, vector, error in zip(batch["pos"], batch["embedding"], batch["error"], strict=True):
            plan, vectors, errors = pending[shard_of[int(pos)]]
            local = int(pos) - plan.start
            if error:
                errors[local] = str(error)
            else:
                vectors[local] = np.asarray(vector, dtype=np.float32)
        bar.update(len(batch["pos"]))
        for number in sorted(pending):
            plan, vectors, errors = pending[number]
            if len(vectors) + len(errors) == plan.rows:
                del pending[number]
                yield plan, rows_of(items[plan.start : plan.start + plan.rows], vectors, errors)


__all__ = ["EncodeBatch", "KILL_ONCE", "decode_batch", "ensure_ray", "ray_shards"]
