"""`fewshot embed` with the local engine: sources (folders, lists, CSV and Parquet manifests),
Parquet shards with ids, paths, metadata and unreadable images recorded, a rerun that skips
finished shards, other settings refused, and kill -9 at every crash point followed by a rerun
ending with exactly the files of an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from fewshot.errors import DataError, FewshotError  # noqa: E402
from fewshot.scale.embed import EncoderSpec, embed_items  # noqa: E402
from fewshot.scale.shards import iter_embeddings, read_manifest  # noqa: E402
from fewshot.scale.sources import read_source  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_train_kill9 import run_driver  # noqa: E402


def image_folder(root: Path, classes: int = 3, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (20, 20), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    (root / "class0" / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture
def images(tmp_path) -> Path:
    return image_folder(tmp_path / "images")


def files_of(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_sources_folder_list_and_manifests_give_the_same_items(images, tmp_path):
    folder = read_source(images)
    assert len(folder) == 13 and folder[0].id == (images / "class0" / "0.png").resolve().as_posix()
    assert folder[0].metadata == {"path": folder[0].id, "label": "class0"}
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# images\n" + "\n".join(str(Path(i.path).relative_to(tmp_path)) for i in folder) + "\n"
    )
    assert [i.id for i in read_source(listing)] == [i.id for i in folder]
    csv = tmp_path / "m.csv"
    csv.write_text("path,id,split\n" + "".join(f"{i.path},item{n},train\n" for n, i in enumerate(folder)))
    manifest = read_source(csv)
    assert [i.id for i in manifest] == [f"item{n}" for n in range(13)]
    assert manifest[1].metadata["split"] == "train" and manifest[1].metadata["label"] == "class0"
    import pyarrow as pa

    pq.write_table(pa.table({"path": [i.path for i in folder]}), tmp_path / "m.parquet")
    assert [i.id for i in read_source(tmp_path / "m.parquet")] == [i.id for i in folder]


def test_bad_sources_are_refused(tmp_path):
    (tmp_path / "m.csv").write_text("file\nx.png\n")
    with pytest.raises(DataError, match="needs a 'path' column"):
        read_source(tmp_path / "m.csv")
    (tmp_path / "d.csv").write_text("path,id\na.png,same\nb.png,same\n")
    with pytest.raises(DataError, match="the id 'same' twice"):
        read_source(tmp_path / "d.csv")
    with pytest.raises(DataError, match="does not exist"):
        read_source(tmp_path / "missing")


def test_shards_hold_every_item_once_and_a_rerun_skips_them(images, tmp_path):
    items = read_source(images)
    out = tmp_path / "emb"
    summary = embed_items(items, out, EncoderSpec(), shard_size=5, workers=0, progress=False)
    assert (summary.shards, summary.embedded, summary.failed, summary.dim) == (3, 12, 1, 64)
    table = pq.read_table(out / "part-00000.parquet")
    assert table.column_names == ["id", "path", "embedding", "error", "metadata"]
    ids = [i for n in range(3) for i in pq.read_table(out / f"part-0000{n}.parquet").column("id").to_pylist()]
    assert ids == [i.id for i in items]
    broken = [r for r in table.to_pylist() if r["error"]]
    assert len(broken) == 1 and broken[0]["embedding"] is None and "broken.png" in broken[0]["path"]
    vectors, got_ids, meta = next(iter_embeddings(out / "part-00000.parquet"))
    assert vectors.shape == (4, 64) and np.isfinite(vectors).all() and meta[0]["label"] == "class0"
    # the same vectors as embedding the images directly
    from fewshot.index.images import embed_image_batch, image_transform

    model = EncoderSpec().build()
    import torch

    from fewshot.data.images import read_image

    direct = embed_image_batch(model, torch.stack([image_transform(model)(read_image(items[0].path))]))
    np.testing.assert_allclose(vectors[0], direct[0], rtol=1e-5, atol=1e-6)
    before = files_of(out)
    (out / "part-00001.parquet").unlink()
    again = embed_items(items, out, EncoderSpec(), shard_size=5, workers=0, progress=False)
    assert again.shards_skipped == 2 and files_of(out) == before
    assert read_manifest(out)["status"] == "done"


def test_other_settings_are_refused_unless_restart(images, tmp_path):
    items = read_source(images)
    out = tmp_path / "emb"
    embed_items(items, out, EncoderSpec(), shard_size=5, workers=0, progress=False)
    with pytest.raises(FewshotError, match="other settings"):
        embed_items(items, out, EncoderSpec(), shard_size=4, workers=0, progress=False)
    summary = embed_items(items, out, EncoderSpec(), shard_size=4, workers=0, progress=False, restart=True)
    assert summary.shards == 4 and summary.shards_skipped == 0 and (out / "part-00003.parquet").exists()


@pytest.mark.slow
def test_embed_killed_at_every_point_then_rerun_ends_as_an_uninterrupted_run(images, tmp_path):
    argv = ["embed", str(images), "--out", "{out}", "--shard-size", "5", "--workers", "0", "--no-progress"]
    report = run_driver(tmp_path / "kill", {"embed": {"argv": argv}})["embed"]
    assert report["clean"] == 0
    names = report["names"]
    assert names.count("embed.shard") == 3 and names.count("embed.shard-tmp") == 3
    assert {"embed.started", "embed.done"} <= set(names)
    clean = files_of(tmp_path / "kill" / "embed" / "clean" / "m.safetensors")
    for point, (killed, rerun) in report["runs"].items():
        assert killed == -9, (point, names[int(point) - 1])
        assert rerun == 0, point
        assert files_of(tmp_path / "kill" / "embed" / f"kill-{point}" / "m.safetensors") == clean, point
    manifest = json.loads(
        (tmp_path / "kill" / "embed" / "clean" / "m.safetensors" / "embed.json").read_text()
    )
    assert [s["embedded"] for s in manifest["shards"]] == [4, 5, 3]
