"""`fewshot index`: embed an image folder once, then search it by text or by example image.

Items are identified by the resolved absolute path of their file; ``index add`` embeds only
files whose path is not in the index yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import Command, Device, Progress

index_app = typer.Typer(
    help="Embedding search over image folders (FAISS): build, add, search, info.",
    no_args_is_help=True,
)

IndexDir = Annotated[Path, typer.Argument(help="Index directory (written by `fewshot index build`).")]
Images = Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per encoder batch.")]
Workers = Annotated[
    int | None, typer.Option("--workers", help="Image decoding processes (default: up to 8, one per core).")
]


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


def build_command(
    images: Images,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the index to.")],
    model: Annotated[
        str | None, typer.Option("--model", help="CLIP architecture (default: the encoder's, ViT-B-32).")
    ] = None,
    pretrained: Annotated[
        str | None,
        typer.Option("--pretrained", help="CLIP weights tag or local file (default: the encoder's)."),
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
) -> None:
    """Embed every image under IMAGES and save a searchable index to --out."""
    from fewshot.data.images import find_images
    from fewshot.errors import FewshotError
    from fewshot.index import EmbeddingIndex
    from fewshot.index.storage import is_index_dir

    if out.exists() and not out.is_dir():
        raise FewshotError(f"--out {out} exists and is not a directory")
    if is_index_dir(out) and not overwrite:
        raise FewshotError(f"{out} already holds an index; use `fewshot index add` or --overwrite")
    paths = find_images(images)
    model_encoder = _make_encoder(encoder, model, pretrained, device)
    index = EmbeddingIndex(
        model_encoder.embed_dim,
        metric,
        factory,
        encoder=model_encoder,
        encoder_name=encoder,
        device=_index_device(device),
    )
    report = index.add_images(paths, batch_size=batch_size, workers=workers, progress=progress)
    _report_failures(report.failures)
    if not report.added:
        raise FewshotError(f"none of the {len(paths)} files could be read; nothing indexed")
    index.save(out)
    typer.echo(
        f"indexed {len(report.added)} images into {out} ({factory}, {metric}, {index.dim}-d); "
        f"{len(report.failures)} unreadable file(s) skipped"
    )


def add_command(
    directory: IndexDir,
    images: Images,
    batch_size: BatchSize = 64,
    workers: Workers = None,
    device: Device = "auto",
    progress: Progress = None,
) -> None:
    """Embed the images under IMAGES that are not in the index yet and add them."""
    from fewshot.data.images import find_images
    from fewshot.index import EmbeddingIndex

    index = EmbeddingIndex.load(directory, device=_index_device(device))
    paths = find_images(images)
    _attach_recorded_encoder(index, device)
    report = index.add_images(paths, batch_size=batch_size, workers=workers, progress=progress)
    _report_failures(report.failures)
    if report.added:
        index.save(directory)
    typer.echo(
        f"added {len(report.added)} new image(s) to {directory} (now {len(index)}); "
        f"{len(report.skipped)} already indexed, {len(report.failures)} unreadable"
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
    """Describe an index: items, dimension, metric, FAISS type, encoder; validates its files."""
    from fewshot.index import EmbeddingIndex

    index = EmbeddingIndex.load(directory, device="cpu")
    info = index.describe()
    info["encoder_config"] = (index._encoder_record or {}).get("config")
    info["directory"] = str(directory)
    info["bytes"] = sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())
    del info["device"]
    if as_json:
        typer.echo(json.dumps(info))
        return
    for key, value in info.items():
        typer.echo(f"{key:>15}: {value}")


index_app.command("build", cls=Command)(build_command)
index_app.command("add", cls=Command)(add_command)
index_app.command("search", cls=Command)(search_command)
index_app.command("info", cls=Command)(info_command)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
