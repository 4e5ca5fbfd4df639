"""`fewshot index build / add / search / info` as library calls: settings in, summary out.

Items are identified by the resolved absolute path of their file; `add_to_index` embeds only
files whose path is not in the index yet. One writer at a time: `build_index` and
`add_to_index` hold ``<dir>.lock`` from loading to saving, so a second writer is refused
instead of losing an update; one killed at any point leaves the index as it was.

`warn(path, reason)` is told of each file skipped (unreadable, a folder that cannot be
listed, a dangling link) as soon as it is known; the summaries count and list them too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fewshot.errors import FewshotError

if TYPE_CHECKING:
    from fewshot.index import EmbeddingIndex, SearchResults

Warn = Callable[[str, str], None]
PathLike = str | os.PathLike[str]


def _silent(path: str, reason: str) -> None:
    pass


def check_writable_dir(directory: PathLike, option: str) -> None:
    """Refuse, in one line and before any work, an output folder that cannot be written: the
    folder itself (or the nearest folder above that exists) and the folder holding its lock."""
    import tempfile

    directory = Path(directory).expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise FewshotError(f"{option} {directory} exists and is not a directory")
    for target in (directory, directory.parent):
        existing = next(p for p in (target, *target.parents) if p.exists())
        if not existing.is_dir():
            raise FewshotError(f"{option} {directory}: {existing} is not a directory")
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as err:
            raise FewshotError(
                f"{option} {directory} cannot be written ({existing}: {err.strerror or err})"
            ) from None


def check_trainable(index: EmbeddingIndex, count: int) -> None:
    needed = index.min_training_vectors()
    if count < needed:
        raise FewshotError(
            f"--factory {index.factory!r} needs at least {needed} vectors to train but IMAGES holds "
            f"{count} file(s); use Flat, or fewer IVF lists (FAISS advises 40 images per list)"
        )


def index_device(device: str) -> str:
    """FAISS searches on the GPU unless the user asked for the CPU."""
    return "cpu" if device == "cpu" else "auto"


def find_images(images: Sequence[PathLike], warn: Warn = _silent) -> list[Path]:
    """The image files under `images`; folders that cannot be listed and dangling links are
    passed to `warn`."""
    from fewshot.data.images import scan_images

    scan = scan_images(list(images))
    for path, reason in scan.problems:
        warn(str(path), reason)
    return scan.paths


def make_encoder(name: str, model: str | None, pretrained: str | None, device: str):
    """The registry encoder `name` on `device` (`fewshot.build.build_encoder`, weights drawn
    from the caller's random state), with `model`/`pretrained` for an encoder that takes them."""
    from fewshot.build import build_encoder, encoder_parameters
    from fewshot.device import resolve_device
    from fewshot.encoders import ENCODERS

    ENCODERS.get(name)  # an unknown name fails here, naming the choices (not a checkpoint path)
    given = model is not None or pretrained is not None
    if given and not {"model", "pretrained"} <= encoder_parameters(name):
        raise FewshotError("--model and --pretrained apply to the clip encoder only")
    options = {"model": model, "pretrained": pretrained}
    return build_encoder(name, resolve_device(device), options, seed=None).encoder


def attach_recorded(index: EmbeddingIndex, device: str) -> None:
    """Rebuild the encoder `index` records, on `device`."""
    from fewshot.device import resolve_device
    from fewshot.encoders import ENCODERS
    from fewshot.index.recorded import constructor_parameters

    name = index.encoder_name
    if name is None:
        raise FewshotError(
            "this index records no encoder (it was built from raw vectors); cannot embed queries"
        )
    if name in ENCODERS and "device" in constructor_parameters(ENCODERS.get(name)):
        index.attach_encoder(device=device)
    else:
        index.attach_encoder()
        index.encoder.to(resolve_device(device))


def _failures_json(failures: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"path": path, "reason": reason} for path, reason in failures]


def _refuse_existing(out: PathLike, overwrite: bool) -> None:
    from fewshot.index.storage import is_index_dir

    if is_index_dir(out) and not overwrite:
        raise FewshotError(f"{out} already holds an index; use `fewshot index add` or --overwrite")


def new_index(
    encoder: str,
    model: str | None,
    pretrained: str | None,
    factory: str,
    metric: str,
    device: str,
    count: int,
) -> EmbeddingIndex:
    """An empty index with the registry `encoder` attached, refused when `count` images are too
    few to train `factory` or when `add` and `search` could not reload the encoder's weights."""
    from fewshot.index import EmbeddingIndex
    from fewshot.index.recorded import check_local_weights, check_rebuildable

    check_local_weights(encoder, model, pretrained)
    model_encoder = make_encoder(encoder, model, pretrained, device)
    index = EmbeddingIndex(
        model_encoder.embed_dim,
        metric,
        factory,
        encoder=model_encoder,
        encoder_name=encoder,
        device=index_device(device),
    )
    check_trainable(index, count)
    check_rebuildable(index)
    return index


def build_index(
    images: Sequence[PathLike],
    out: PathLike,
    *,
    encoder: str = "clip",
    model: str | None = None,
    pretrained: str | None = None,
    factory: str = "Flat",
    metric: str = "cosine",
    overwrite: bool = False,
    batch_size: int = 64,
    workers: int | None = None,
    device: str = "auto",
    progress: bool | None = None,
    warn: Warn = _silent,
) -> dict[str, Any]:
    """Embed every image under `images` with the registry `encoder` and save an index to `out`.

    Returns the summary: ``index``, ``added``, ``unreadable``, ``failures``, ``items``,
    ``factory``, ``metric``, ``dim``. Everything that can be refused (an output that cannot be
    written or already holds an index, weights an index cannot reload, too few images to
    train `factory`) is refused before any image is embedded.
    """
    from fewshot.locking import exclusive_lock

    check_writable_dir(out, "--out")
    _refuse_existing(out, overwrite)
    paths = find_images(images, warn)
    index = new_index(encoder, model, pretrained, factory, metric, device, len(paths))
    with exclusive_lock(Path(out).expanduser().resolve(), "this index"):
        _refuse_existing(out, overwrite)  # another build finished meanwhile
        report = index.add_images(paths, batch_size=batch_size, workers=workers, progress=progress)
        for path, reason in report.failures:
            warn(path, reason)
        if not report.added:
            raise FewshotError(f"none of the {len(paths)} files could be read; nothing indexed")
        index.save(out, lock=False)
    return {
        "index": str(out),
        "added": len(report.added),
        "unreadable": len(report.failures),
        "failures": _failures_json(report.failures),
        "items": len(index),
        "factory": factory,
        "metric": metric,
        "dim": index.dim,
    }


def add_to_index(
    directory: PathLike,
    images: Sequence[PathLike],
    *,
    batch_size: int = 64,
    workers: int | None = None,
    device: str = "auto",
    progress: bool | None = None,
    warn: Warn = _silent,
) -> dict[str, Any]:
    """Embed the images under `images` that are not in the index at `directory` yet, add them
    and save. Returns ``index``, ``added``, ``already_indexed``, ``unreadable``, ``failures``,
    ``items``."""
    from fewshot.index import EmbeddingIndex
    from fewshot.index.storage import read_sidecar, remove_stale
    from fewshot.locking import exclusive_lock

    read_sidecar(directory)  # an index is there (checked fully when loaded under the lock)
    check_writable_dir(directory, "DIRECTORY")
    paths = find_images(images, warn)
    with exclusive_lock(Path(directory).expanduser().resolve(), "this index"):
        index = EmbeddingIndex.load(directory, device=index_device(device))
        attach_recorded(index, device)
        report = index.add_images(paths, batch_size=batch_size, workers=workers, progress=progress)
        for path, reason in report.failures:
            warn(path, reason)
        if report.added:
            index.save(directory, lock=False)
        else:
            remove_stale(directory)  # what a killed earlier run may have left
    return {
        "index": str(directory),
        "added": len(report.added),
        "already_indexed": len(report.skipped),
        "unreadable": len(report.failures),
        "failures": _failures_json(report.failures),
        "items": len(index),
    }


def search_index(
    directory: PathLike,
    *,
    text: str | None = None,
    image: PathLike | None = None,
    k: int = 10,
    nprobe: int | None = None,
    ef_search: int | None = None,
    device: str = "auto",
) -> tuple[EmbeddingIndex, SearchResults]:
    """The `k` images nearest to `text` or to the example `image` (exactly one of them):
    ``(the index, its results)``."""
    from fewshot.index import EmbeddingIndex

    if (text is None) == (image is None):
        raise FewshotError("give exactly one of --text or --image")
    if k < 1:
        raise FewshotError(f"-k must be >= 1; got {k}")
    index = EmbeddingIndex.load(directory, device=index_device(device))
    attach_recorded(index, device)
    params = {"nprobe": nprobe, "efSearch": ef_search}
    if text is not None:
        return index, index.search_text(text, k, **params)
    if not Path(image).is_file():
        raise FewshotError(f"query image {image} does not exist")
    return index, index.search_images(image, k, **params)


def index_info(directory: PathLike) -> dict[str, Any]:
    """Describe an index (items, dimension, metric, FAISS type, encoder, its weights, bytes),
    checking what `add` and `search` rely on: the sidecar, the FAISS file and its checksum,
    and the recorded encoder (registered, known settings, the very weights file it was built
    with)."""
    from fewshot.index import EmbeddingIndex
    from fewshot.index.recorded import verify_record

    index = EmbeddingIndex.load(directory, device="cpu")
    record = index.recorded_encoder
    if record is not None:
        verify_record(record, directory)
    info = index.describe()
    info["encoder_config"] = (record or {}).get("config")
    info["encoder_weights"] = (record or {}).get("weights")
    info["directory"] = str(directory)
    info["bytes"] = sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())
    del info["device"]
    return info
