"""`fewshot index`: embed an image folder once, then search it by text or by example image.

Items are identified by the resolved absolute path of their file; ``index add`` embeds only
files whose path is not in the index yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, BatchSize, Command, Device, Progress, Workers
from fewshot_cli.index_checks import check_pretrained, check_rebuildable, check_trainable, check_writable

index_app = typer.Typer(
    help="Embedding search over image folders (FAISS): build, add, search, info.",
    no_args_is_help=True,
)

IndexDir = Annotated[Path, typer.Argument(help="Index directory (written by `fewshot index build`).")]
Images = Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")]


def _make_encoder(name: str, model: str | None, pretrained: str | None, device: str):
    from fewshot.device import resolve_device
    from fewshot.encoders import create_encoder
    from fewshot.errors import FewshotError

    kwargs: dict = {}
    if name == "clip":
        kwargs["device"] = device
        if model is not None:
            kwargs["model"] = model
        if pretrained is not None:
            kwargs["pretrained"] = pretrained
    elif model is not None or pretrained is not None:
        raise FewshotError("--model and --pretrained apply to the clip encoder only")
    encoder = create_encoder(name, **kwargs)
    if name != "clip":
        encoder = encoder.to(resolve_device(device))
    return encoder


def _attach_recorded_encoder(index, device: str) -> None:
    from fewshot.device import resolve_device
    from fewshot.errors import FewshotError

    if index.encoder_name is None:
        raise FewshotError(
            "this index records no encoder (it was built from raw vectors); cannot embed queries"
        )
    if index.encoder_name == "clip":
        index.attach_encoder(device=device)
    else:
        index.attach_encoder()
        index.encoder.to(resolve_device(device))


def _index_device(device: str) -> str:
    """FAISS searches on the GPU unless the user asked for the CPU."""
    return "cpu" if device == "cpu" else "auto"


def _report_failures(failures: list[tuple[str, str]]) -> None:
    for path, reason in failures:
        typer.echo(f"skipped {path}: {reason}", err=True)


def _find_images(images: list[Path]) -> list[Path]:
    """The image files under IMAGES; folders that cannot be listed and dangling links are named."""
    from fewshot.data.images import scan_images

    scan = scan_images(images)
    _report_failures([(str(path), reason) for path, reason in scan.problems])
    return scan.paths


def _echo_result(as_json: bool, summary: dict, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(summary, allow_nan=False))
    else:
        typer.echo(text)


def _failures_json(failures: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"path": path, "reason": reason} for path, reason in failures]


def build_command(
    images: Images,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the index to.")],
    model: Annotated[
        str | None, typer.Option("--model", help="CLIP architecture (default: the encoder's, ViT-B-32).")
    ] = None,
    pretrained: Annotated[
        str | None,
        typer.Option(
            "--pretrained",
            help="CLIP weights tag or local .safetensors file (default: the encoder's).",
        ),
    ] = None,
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder from the registry.")] = "clip",
    factory: Annotated[
        str, typer.Option("--factory", help="FAISS index factory: Flat (exact), HNSW32, IVF1024,Flat, ...")
    ] = "Flat",
    metric: Annotated[str, typer.Option("--metric", help="cosine, ip or l2.")] = "cosine",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an index already in --out.")
    ] = False,
    batch_size: BatchSize = 64,
    workers: Workers = None,
    device: Device = "auto",
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Embed every image under IMAGES and save a searchable index to --out.

    One writer at a time: a second build or add on the same --out is refused (lock
    ``<out>.lock``). A build killed at any point leaves --out as it was (or without an index);
    run it again.
    """
    from fewshot.errors import FewshotError
    from fewshot.index import EmbeddingIndex
    from fewshot.index.storage import is_index_dir
    from fewshot.locking import exclusive_lock

    check_writable(out, "--out")
    if is_index_dir(out) and not overwrite:
        raise FewshotError(f"{out} already holds an index; use `fewshot index add` or --overwrite")
    paths = _find_images(images)
    check_pretrained(encoder, model, pretrained)
    model_encoder = _make_encoder(encoder, model, pretrained, device)
    index = EmbeddingIndex(
        model_encoder.embed_dim,
        metric,
        factory,
        encoder=model_encoder,
        encoder_name=encoder,
        device=_index_device(device),
    )
    check_trainable(index, len(paths))
    check_rebuildable(index)
    with exclusive_lock(out.expanduser().resolve(), "this index"):
        if is_index_dir(out) and not overwrite:  # another build finished meanwhile
            raise FewshotError(f"{out} already holds an index; use `fewshot index add` or --overwrite")
        report = index.add_images(paths, batch_size=batch_size, workers=workers, progress=progress)
        _report_failures(report.failures)
        if not report.added:
            raise FewshotError(f"none of the {len(paths)} files could be read; nothing indexed")
        index.save(out, lock=False)
    summary = {
        "index": str(out),
        "added": len(report.added),
        "unreadable": len(report.failures),
        "failures": _failures_json(report.failures),
        "items": len(index),
        "factory": factory,
        "metric": metric,
        "dim": index.dim,
    }
    _echo_result(
        as_json,
        summary,
        f"indexed {len(report.added)} images into {out} ({factory}, {metric}, {index.dim}-d); "
        f"{len(report.failures)} unreadable file(s) skipped",
    )


def add_command(
    directory: IndexDir,
    images: Images,
    batch_size: BatchSize = 64,
    workers: Workers = None,
    device: Device = "auto",
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Embed the images under IMAGES that are not in the index yet and add them.

    One writer at a time: the index is locked from loading to saving (``<dir>.lock``), so a
    second add or build on it is refused instead of losing an update. An add killed at any
    point leaves the index as it was; run it again.
    """
    from fewshot.index import EmbeddingIndex
    from fewshot.index.storage import read_sidecar, remove_stale
    from fewshot.locking import exclusive_lock

    read_sidecar(directory)  # an index is there (checked fully when loaded under the lock)
    check_writable(directory, "DIRECTORY")
    paths = _find_images(images)
    with exclusive_lock(directory.expanduser().resolve(), "this index"):
        index = EmbeddingIndex.load(directory, device=_index_device(device))
        _attach_recorded_encoder(index, device)
        report = index.add_images(paths, batch_size=batch_size, workers=workers, progress=progress)
        _report_failures(report.failures)
        if report.added:
            index.save(directory, lock=False)
        else:
            remove_stale(directory)  # what a killed earlier run may have left
    summary = {
        "index": str(directory),
        "added": len(report.added),
        "already_indexed": len(report.skipped),
        "unreadable": len(report.failures),
        "failures": _failures_json(report.failures),
        "items": len(index),
    }
    _echo_result(
        as_json,
        summary,
        f"added {len(report.added)} new image(s) to {directory} (now {len(index)}); "
        f"{len(report.skipped)} already indexed, {len(report.failures)} unreadable",
    )


def search_command(
    directory: IndexDir,
    text: Annotated[str | None, typer.Option("--text", "-t", help="Search by this text.")] = None,
    image: Annotated[Path | None, typer.Option("--image", "-i", help="Search by this example image.")] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="Number of results.")] = 10,
    nprobe: Annotated[
        int | None, typer.Option("--nprobe", help="IVF: lists to visit (recall vs speed).")
    ] = None,
    ef_search: Annotated[
        int | None, typer.Option("--ef-search", help="HNSW: search breadth (recall vs speed).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    device: Device = "auto",
) -> None:
    """Find the images nearest to a text (--text) or an example image (--image)."""
    from fewshot.errors import FewshotError
    from fewshot.index import EmbeddingIndex

    if (text is None) == (image is None):
        raise FewshotError("give exactly one of --text or --image")
    if k < 1:
        raise FewshotError(f"-k must be >= 1; got {k}")
    index = EmbeddingIndex.load(directory, device=_index_device(device))
    _attach_recorded_encoder(index, device)
    params = {"nprobe": nprobe, "efSearch": ef_search}
    if text is not None:
        results = index.search_text(text, k, **params)
    else:
        if not image.is_file():
            raise FewshotError(f"query image {image} does not exist")
        results = index.search_images(image, k, **params)
    hits = results[0]
    if as_json:
        query = {"text": text} if text is not None else {"image": str(image)}
        typer.echo(json.dumps({"query": query, "metric": index.metric, "results": results.to_json()[0]}))
        return
    if not hits:
        typer.echo("no results (the index is empty)")
    for rank, hit in enumerate(hits, 1):
        typer.echo(f"{rank:>3}  {hit.score:8.4f}  {hit.id}")


def info_command(
    directory: IndexDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Describe an index: items, dimension, metric, FAISS type, encoder; validates its files.

    Checks what `add` and `search` rely on: the sidecar, the FAISS file and its checksum, and
    the recorded encoder (registered, known settings, the very weights file it was built with).
    """
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
    if as_json:
        typer.echo(json.dumps(info, allow_nan=False))
        return
    for key, value in info.items():
        typer.echo(f"{key:>15}: {value}")


index_app.command("build", cls=Command)(build_command)
index_app.command("add", cls=Command)(add_command)
index_app.command("search", cls=Command)(search_command)
index_app.command("info", cls=Command)(info_command)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
