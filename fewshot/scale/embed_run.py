"""One embedding run over an output folder: its settings, the shards done, the manifest writes.

Called with the folder's lock held (`fewshot.scale.embed.embed_items`). The manifest is written
first (status ``running``, the plan), then each shard as it completes, then the manifest again
(status ``done``, rows embedded per shard). A folder holding a run with other settings (another
source, encoder or shard size) is refused unless ``restart``, which deletes that run's files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError
from fewshot.faults import crash_point
from fewshot.fileio import atomic_write_bytes
from fewshot.scale.shards import (
    MANIFEST,
    ShardPlan,
    manifest_document,
    plan_shards,
    read_manifest,
    shard_rows_done,
    write_shard,
)
from fewshot.scale.sources import Item, fingerprint


def encoder_record(spec, model) -> dict[str, Any]:
    """What the manifest records of the encoder: how it was asked for, its config, and, for a
    registry encoder, the record an index keeps (`fewshot.index.recorded.encoder_record`), so
    that an index built from these embeddings can embed queries with the same encoder."""
    from types import SimpleNamespace

    from fewshot.encoders import ENCODERS

    record: dict[str, Any] = {
        "spec": None if spec.spec is None else str(spec.spec),
        "options": spec.options,
        "image_size": spec.image_size,
        "seed": spec.seed,
        "config": model.config() if hasattr(model, "config") else None,
        "index_record": None,
    }
    if spec.spec is not None and str(spec.spec) in ENCODERS:
        from fewshot.index.recorded import encoder_record as index_record

        shim = SimpleNamespace(encoder_name=str(spec.spec), encoder=model, recorded_encoder=None)
        record["index_record"] = index_record(shim)
    return json.loads(json.dumps(record, default=str))


class EmbeddingRun:
    """The shards of one output folder: planned, done, written."""

    def __init__(self, out: Path, items: Sequence[Item], settings: dict[str, Any], plans: list[ShardPlan]):
        self.out, self.items, self.settings, self.plans = out, items, settings, plans
        self.done: dict[int, int] = {}
        self.skipped = 0  # shards finished by an earlier run

    def pending(self) -> list[ShardPlan]:
        return [p for p in self.plans if p.number not in self.done]

    def write(self, plan: ShardPlan, rows: list[dict]) -> None:
        self.done[plan.number] = write_shard(self.out, plan, rows, self.settings["dim"])

    def finish(self) -> None:
        document = manifest_document(self.settings, self.plans, self.done, "done")
        atomic_write_bytes(self.out / MANIFEST, document)
        crash_point("embed.done")

    def summary(self, engine: str, seconds: float, count: int):
        from fewshot.scale.encoding import EmbedSummary

        embedded = sum(self.done.values())
        return EmbedSummary(
            out=str(self.out),
            engine=engine,
            items=len(self.items),
            shards=len(self.plans),
            shards_skipped=self.skipped,
            embedded=embedded,
            failed=len(self.items) - embedded,
            dim=self.settings["dim"],
            seconds=round(seconds, 3),
            images_per_second=round(count / seconds, 2) if seconds > 0 and count else 0.0,
        )


def _settings(items: Sequence[Item], spec, model, shard_size: int) -> dict[str, Any]:
    return {
        "source": fingerprint(items),
        "items": len(items),
        "encoder": encoder_record(spec, model),
        "dim": int(model.embed_dim),
        "shard_size": shard_size,
    }


def _clear(out: Path) -> None:
    for path in out.glob("part-*.parquet"):
        path.unlink()
    (out / MANIFEST).unlink(missing_ok=True)


def _remove_litter(out: Path) -> None:
    for tmp in out.glob(".*.tmp"):
        if tmp.name.startswith((".part-", f".{MANIFEST}.")):
            tmp.unlink(missing_ok=True)


def open_embedding_run(
    out: Path, items: Sequence[Item], spec, model, shard_size: int, restart: bool
) -> EmbeddingRun:
    """The run at `out` for these settings: resumed (finished shards kept), or new."""
    settings = _settings(items, spec, model, shard_size)
    plans = plan_shards(len(items), shard_size)
    out.mkdir(parents=True, exist_ok=True)
    _remove_litter(out)
    if (out / MANIFEST).exists():
        if restart:
            _clear(out)
        elif read_manifest(out)["settings"] != settings:
            raise FewshotError(
                f"--out {out} holds embeddings made with other settings (source, encoder or "
                "--shard-size): use another --out, or --restart to replace them"
            )
    elif any(out.glob("part-*.parquet")):
        raise FewshotError(f"--out {out} holds shard files but no {MANIFEST}: use an empty folder")
    run = EmbeddingRun(out, items, settings, plans)
    for plan in plans:
        rows = shard_rows_done(out / plan.name, plan)
        if rows is not None:
            run.done[plan.number] = rows
    run.skipped = len(run.done)
    if not (out / MANIFEST).exists() or read_manifest(out)["status"] != "running":
        atomic_write_bytes(out / MANIFEST, manifest_document(settings, plans, {}, "running"))
        crash_point("embed.started")
    return run


__all__ = ["EmbeddingRun", "encoder_record", "open_embedding_run"]
