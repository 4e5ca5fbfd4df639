"""`fewshot embed` as a library call: a source of images -> Parquet shards of embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class EmbedRequest:
    """The settings of one embedding run (the options of `fewshot embed`)."""

    source: list[str]
    out: Path
    engine: str = "local"
    encoder: str | None = None  # None: the shipped Omniglot Conv-4
    model: str | None = None
    pretrained: str | None = None
    image_size: int | None = None
    shard_size: int = 10_000
    batch_size: int = 64
    workers: int | None = None
    actors: int | None = None
    device: str = "auto"
    restart: bool = False
    progress: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def encoder_options(self) -> dict[str, Any]:
        given = {"model": self.model, "pretrained": self.pretrained, **self.options}
        return {k: v for k, v in given.items() if v is not None}


def check_request(request: EmbedRequest) -> None:
    """Everything that can be refused before any image is read or model built."""
    from fewshot.scale.embed import check_engine
    from fewshot.workflows.index import check_writable_dir

    check_engine(request.engine)
    if request.shard_size < 1:
        raise FewshotError(f"--shard-size must be >= 1; got {request.shard_size}")
    if request.actors is not None and request.engine != "ray":
        raise FewshotError("--actors applies to --engine ray only")
    if request.actors is not None and request.actors < 1:
        raise FewshotError(f"--actors must be >= 1; got {request.actors}")
    check_writable_dir(request.out, "--out")


def run_embed(request: EmbedRequest):
    """Check the settings, read the source, embed it into shards: the `EmbedSummary`."""
    from fewshot.scale.embed import EncoderSpec, embed_items
    from fewshot.scale.sources import read_source

    check_request(request)
    items = read_source(request.source)
    spec = EncoderSpec(request.encoder, request.encoder_options(), request.image_size)
    return embed_items(
        items,
        request.out,
        spec,
        engine=request.engine,
        shard_size=request.shard_size,
        batch_size=request.batch_size,
        workers=request.workers,
        actors=request.actors,
        device=request.device,
        restart=request.restart,
        progress=request.progress,
    )


def index_from_embeddings(
    embeddings: Path,
    out: Path,
    *,
    factory: str = "IVF256,Flat",
    metric: str = "cosine",
    shards: int = 4,
    layout: str = "ondisk",
    engine: str = "local",
    train_size: int = 100_000,
    overwrite: bool = False,
) -> dict[str, Any]:
    """`fewshot index build --from-embeddings DIR --shards N`: the sharded build
    (`fewshot.scale.sharded_index.build_sharded`), refused before any work when the settings
    or the folders cannot work."""
    from fewshot.index.base import METRICS
    from fewshot.locking import exclusive_lock
    from fewshot.scale.embed import check_engine
    from fewshot.scale.sharded_index import LAYOUTS, SHARDS_FILE, build_sharded
    from fewshot.scale.shards import finished_shards
    from fewshot.workflows.index import check_writable_dir

    if layout not in LAYOUTS:
        raise FewshotError(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if metric not in METRICS:
        raise FewshotError(f"--metric {metric!r}: choose one of {', '.join(METRICS)}")
    if shards < 1:
        raise FewshotError(f"--shards must be >= 1; got {shards}")
    check_engine(engine)
    try:
        finished_shards(embeddings)
    except FewshotError as err:
        raise FewshotError(f"--from-embeddings: {err}") from None
    check_writable_dir(out, "--out")
    held = [p for p in ("index.json", SHARDS_FILE) if (Path(out) / p).exists()]
    if held and not overwrite:
        raise FewshotError(f"{out} already holds an index; use --overwrite to replace it")
    with exclusive_lock(Path(out).expanduser().resolve(), "this index"):
        return build_sharded(
            embeddings, out, factory=factory, metric=metric, shards=shards, layout=layout,
            engine=engine, train_size=train_size,
        )  # fmt: skip
