"""`fewshot embed`: embed a folder, a list of paths or a manifest into Parquet shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, BatchSize, Command, Device, ImageSize, Progress, Workers

Source = Annotated[
    list[str],
    typer.Argument(
        help="Image folders or files, or ONE list of paths (.txt) or manifest (.parquet/.csv with a "
        "'path' column; local or any pyarrow filesystem URI)."
    ),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Folder for the shards (part-*.parquet, embed.json).")]
Engine = Annotated[str, typer.Option("--engine", help="local (one process) or ray (Ray Data actors).")]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder", "-e", help="Encoder name or checkpoint (default: the shipped Omniglot Conv-4)."
    ),
]
Model = Annotated[str | None, typer.Option("--model", help="Architecture, for encoders that take one.")]
Pretrained = Annotated[
    str | None, typer.Option("--pretrained", help="Weights tag or file, where it applies.")
]
ShardSize = Annotated[int, typer.Option("--shard-size", min=1, help="Rows per Parquet shard.")]
Actors = Annotated[
    int | None, typer.Option("--actors", help="Ray: model actors (default: one per GPU, else 1).")
]
Restart = Annotated[
    bool, typer.Option("--restart", help="Replace embeddings made with other settings in --out.")
]


def embed_command(
    source: Source,
    out: Out,
    engine: Engine = "local",
    encoder: Encoder = None,
    model: Model = None,
    pretrained: Pretrained = None,
    image_size: ImageSize = None,
    shard_size: ShardSize = 10_000,
    batch_size: BatchSize = 64,
    workers: Workers = None,
    actors: Actors = None,
    device: Device = "auto",
    restart: Restart = False,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Embed images into Parquet shards (id, path, embedding, metadata); resumable by shard.

    A rerun skips the shards already written; a run killed at any point and run again ends
    with the files of an uninterrupted run.
    """
    options = {k: v for k, v in locals().items() if k != "as_json"}
    from fewshot.workflows.embed import EmbedRequest, run_embed

    summary = run_embed(EmbedRequest(**options))
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), allow_nan=False))
        return
    typer.echo(
        f"embedded {summary.embedded} of {summary.items} images ({summary.failed} unreadable) into "
        f"{summary.shards} shard(s) in {out} ({summary.shards_skipped} done before); "
        f"{summary.images_per_second:.1f} images/s with --engine {engine}"
    )


def register(app: typer.Typer) -> None:
    app.command("embed", cls=Command)(embed_command)
