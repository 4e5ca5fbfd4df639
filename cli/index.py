"""`fewshot index`: embed an image folder once, then search it by text or by example image.

Items are identified by the resolved absolute path of their file; ``index add`` embeds only
files whose path is not in the index yet (see `fewshot.workflows.index`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, BatchSize, Command, Device, Progress, Workers

index_app = typer.Typer(
    help="Embedding search over image folders (FAISS): build, add, search, info.",
    no_args_is_help=True,
)

IndexDir = Annotated[Path, typer.Argument(help="Index directory (written by `fewshot index build`).")]
Images = Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")]
BuildImages = Annotated[
    list[Path] | None,
    typer.Argument(help="Image files or folders (searched recursively); none with --from-embeddings."),
]
FromEmbeddings = Annotated[
    Path | None,
    typer.Option(
        "--from-embeddings", help="Build from the Parquet shards `fewshot embed` wrote, not images."
    ),
]
Shards = Annotated[int, typer.Option("--shards", help="--from-embeddings: shards added in parallel.")]
Layout = Annotated[
    str,
    typer.Option(
        "--layout", help="--from-embeddings: ondisk (one merged IVF index) or shards (served together)."
    ),
]
Engine = Annotated[
    str, typer.Option("--engine", help="--from-embeddings: local, or ray (a Ray task per shard).")
]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Directory to write the index to.")]
Model = Annotated[
    str | None, typer.Option("--model", help="CLIP architecture (default: the encoder's, ViT-B-32).")
]
Pretrained = Annotated[
    str | None,
    typer.Option(
        "--pretrained", help="CLIP weights tag or local .safetensors file (default: the encoder's)."
    ),
]
Encoder = Annotated[str, typer.Option("--encoder", help="Encoder from the registry.")]
Factory = Annotated[
    str, typer.Option("--factory", help="FAISS index factory: Flat (exact), HNSW32, IVF1024,Flat, ...")
]
Metric = Annotated[str, typer.Option("--metric", help="cosine, ip or l2.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an index already in --out.")]
Text = Annotated[str | None, typer.Option("--text", "-t", help="Search by this text.")]
Image = Annotated[Path | None, typer.Option("--image", "-i", help="Search by this example image.")]
Top = Annotated[int, typer.Option("-k", "--top", help="Number of results.")]
Nprobe = Annotated[int | None, typer.Option("--nprobe", help="IVF: lists to visit (recall vs speed).")]
EfSearch = Annotated[int | None, typer.Option("--ef-search", help="HNSW: search breadth (recall vs speed).")]
TableJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TextJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _skipped(path: str, reason: str) -> None:
    typer.echo(f"skipped {path}: {reason}", err=True)


def _options(parameters: dict) -> tuple[dict, bool]:
    """A command's parameters without ``as_json`` (the library call's arguments), and it."""
    options = dict(parameters)
    return options, options.pop("as_json")


def build_command(
    out: OutDir,
    images: BuildImages = None,
    model: Model = None,
    pretrained: Pretrained = None,
    encoder: Encoder = "clip",
    factory: Factory = "Flat",
    metric: Metric = "cosine",
    overwrite: Overwrite = False,
    batch_size: BatchSize = 64,
    workers: Workers = None,
    device: Device = "auto",
    progress: Progress = None,
    from_embeddings: FromEmbeddings = None,
    shards: Shards = 4,
    layout: Layout = "ondisk",
    engine: Engine = "local",
    as_json: AsJson = False,
) -> None:
    """Embed every image under IMAGES and save a searchable index to --out (or build it from
    --from-embeddings: trained once, --shards added in parallel, merged).

    One writer at a time: a second build or add on the same --out is refused (lock
    ``<out>.lock``). A build killed at any point leaves --out as it was (or without an index);
    run it again.
    """
    options, as_json = _options(locals())
    sharded = {k: options.pop(k) for k in ("from_embeddings", "shards", "layout", "engine")}
    if sharded["from_embeddings"] is not None or not images:
        _build_from_embeddings(images, options, sharded, as_json)
        return
    from fewshot.workflows.index import build_index

    s = build_index(**options, warn=_skipped)
    text = (
        f"indexed {s['added']} images into {out} ({factory}, {metric}, {s['dim']}-d); "
        f"{s['unreadable']} unreadable file(s) skipped"
    )
    typer.echo(json.dumps(s, allow_nan=False) if as_json else text)


def _build_from_embeddings(images, options: dict, sharded: dict, as_json: bool) -> None:
    from fewshot.errors import FewshotError
    from fewshot.workflows.embed import index_from_embeddings

    if sharded["from_embeddings"] is None:
        raise FewshotError("give IMAGES, or --from-embeddings DIR")
    if images:
        raise FewshotError("--from-embeddings replaces IMAGES: give one of them")
    s = index_from_embeddings(
        sharded.pop("from_embeddings"), options["out"], factory=options["factory"], metric=options["metric"],
        overwrite=options["overwrite"], **sharded,
    )  # fmt: skip
    text = (
        f"indexed {s['items']} vectors into {s['index']} ({s['factory']}, {s['layout']}, {s['shards']} parts)"
    )
    typer.echo(json.dumps(s, allow_nan=False) if as_json else text)


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
    options, as_json = _options(locals())
    from fewshot.workflows.index import add_to_index

    s = add_to_index(**options, warn=_skipped)
    text = (
        f"added {s['added']} new image(s) to {directory} (now {s['items']}); "
        f"{s['already_indexed']} already indexed, {s['unreadable']} unreadable"
    )
    typer.echo(json.dumps(s, allow_nan=False) if as_json else text)


def search_command(
    directory: IndexDir,
    text: Text = None,
    image: Image = None,
    k: Top = 10,
    nprobe: Nprobe = None,
    ef_search: EfSearch = None,
    as_json: TableJson = False,
    device: Device = "auto",
) -> None:
    """Find the images nearest to a text (--text) or an example image (--image)."""
    options, as_json = _options(locals())
    from fewshot.workflows.index import search_index

    index, results = search_index(**options)
    if as_json:
        query = {"text": text} if text is not None else {"image": str(image)}
        typer.echo(json.dumps({"query": query, "metric": index.metric, "results": results.to_json()[0]}))
        return
    if not results[0]:
        typer.echo("no results (the index is empty)")
    for rank, hit in enumerate(results[0], 1):
        typer.echo(f"{rank:>3}  {hit.score:8.4f}  {hit.id}")


def info_command(directory: IndexDir, as_json: TextJson = False) -> None:
    """Describe an index: items, dimension, metric, FAISS type, encoder; validates its files.

    Checks what `add` and `search` rely on: the sidecar, the FAISS file and its checksum, and
    the recorded encoder (registered, known settings, the very weights file it was built with).
    """
    from fewshot.workflows.index import index_info

    info = index_info(directory)
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
