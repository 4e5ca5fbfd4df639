"""The Ray engine in local mode (one Ray session for the module): Ray Data embedding gives the
local engine's shards, a model actor killed (SIGKILL) mid-run has its batch redone by Ray with
no row written twice, and the sharded index built with Ray tasks equals the local build."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from fewshot.scale.embed import EncoderSpec, embed_items  # noqa: E402
from fewshot.scale.ray_embed import KILL_ONCE  # noqa: E402
from fewshot.scale.sources import read_source  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_scale_embed import image_folder  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def shard_rows(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.glob("part-*.parquet")) for row in pq.read_table(path).to_pylist()]


def same_rows(a: list[dict], b: list[dict]) -> None:
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert [r["error"] for r in a] == [r["error"] for r in b]
    for x, y in zip(a, b, strict=True):
        if x["embedding"] is not None:
            np.testing.assert_allclose(x["embedding"], y["embedding"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # Ray Data start-up and an actor restart: about a minute on 2 cores
def test_ray_embedding_equals_local_even_with_an_actor_killed(ray_session, tmp_path, monkeypatch):
    items = read_source(image_folder(tmp_path / "images", classes=2, per_class=4))
    local = embed_items(items, tmp_path / "local", EncoderSpec(), shard_size=4, workers=0, progress=False)
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ONCE, str(marker))
    summary = embed_items(
        items, tmp_path / "ray", EncoderSpec(), engine="ray", shard_size=4, batch_size=4, progress=False
    )
    assert marker.exists()  # an actor did die at its first batch; Ray restarted it
    assert (summary.shards, summary.embedded, summary.failed) == (local.shards, local.embedded, local.failed)
    rows = shard_rows(tmp_path / "ray")
    assert len(rows) == len(items) == len({r["id"] for r in rows})  # every item once
    same_rows(rows, shard_rows(tmp_path / "local"))


def test_sharded_index_with_ray_tasks_equals_the_local_build(ray_session, tmp_path):
    from test_scale_index import embedding_folder

    from fewshot.index import EmbeddingIndex
    from fewshot.scale.sharded_index import build_sharded

    folder = tmp_path / "emb"
    folder.mkdir()
    vectors = embedding_folder(folder)
    found = []
    for engine in ("local", "ray"):
        build_sharded(
            folder, tmp_path / engine, factory="IVF16,Flat", shards=3, engine=engine, train_size=300
        )
        found.append(EmbeddingIndex.load(tmp_path / engine, device="cpu").search(vectors[:20], k=5, nprobe=4))
    assert (found[0].ids == found[1].ids).all()
    np.testing.assert_array_equal(found[0].scores, found[1].scores)


@pytest.fixture(scope="module")
def micro_classifier():
    pytest.importorskip("open_clip")
    import torch

    from fewshot.encoders.clip import ClipEncoder
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    torch.manual_seed(0)
    encoder = ClipEncoder("micro-clip", pretrained=None, device="cpu")
    return ZeroShotClassifier(encoder, ["red circle", "blue square", "green cross"], "photo").fit()


def label_with(classifier, folder: Path, out: Path, batches) -> bytes:
    from fewshot.zeroshot.labelling import label_images

    summary = label_images(
        folder, classifier, out, top_k=2, batch_size=4, workers=0, progress=False, batches=batches
    )
    assert (summary.labelled, summary.failed) == (6, 2)
    return out.read_bytes()


def in_process_stages(paths, classifier, top_k, batch_size, workers=None):
    """The Ray engine's two stages and the driver's conversion, chained here without Ray."""
    import os

    from PIL import Image

    from fewshot.scale.ray_label import ClassifyBatch, decode_label_batch, scored

    transform = classifier.encoder.preprocess
    shape = tuple(transform(Image.new("RGB", (64, 64))).shape)
    actor = ClassifyBatch(classifier, top_k, device="cpu")
    for start in range(0, len(paths), batch_size):
        chunk = range(start, min(start + batch_size, len(paths)))
        batch = {"pos": np.array(chunk), "path": np.array([os.fsencode(paths[i]) for i in chunk])}
        yield scored(actor(decode_label_batch(batch, transform, shape)), paths)


def test_ray_labelling_stages_give_the_local_rows(micro_classifier, tmp_path):
    folder = image_folder(tmp_path / "images", classes=2, per_class=3)
    (folder / "broken.jpg").write_bytes(b"not an image")
    local = label_with(micro_classifier, folder, tmp_path / "local.csv", None)
    assert b"broken.jpg,error" in local and b",ok," in local
    assert label_with(micro_classifier, folder, tmp_path / "stages.csv", in_process_stages) == local


def test_ray_labelling_writes_the_local_engines_rows(ray_session, micro_classifier, tmp_path):
    from fewshot.scale.ray_label import RayBatches

    folder = image_folder(tmp_path / "images", classes=2, per_class=3)
    (folder / "broken.jpg").write_bytes(b"not an image")
    local = label_with(micro_classifier, folder, tmp_path / "local.jsonl", None)
    engine = RayBatches(actors=1, device="cpu")
    ray_rows = label_with(micro_classifier, folder, tmp_path / "ray.jsonl", engine)
    assert ray_rows == local  # same rows, same order, same probabilities
