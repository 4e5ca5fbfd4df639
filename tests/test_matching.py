"""Matching Networks: the paper's attention, the batched path, and the CLI picking it up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import synthetic_images
from fewshot_cli.app import app
from PIL import Image
from typer.testing import CliRunner

import fewshot.data.loading as loading
from fewshot.encoders.base import IdentityEncoder
from fewshot.learners import LEARNERS
from fewshot.learners.matching import MatchingNet
from fewshot.sampling import Episode

pytestmark = pytest.mark.usefixtures("one_thread")


def test_probabilities_are_softmax_cosine_attention_summed_per_class():
    g = torch.Generator().manual_seed(0)
    support, queries = torch.randn(6, 5, generator=g), torch.randn(4, 5, generator=g)
    labels = torch.tensor([2, 0, 1, 0, 2, 1])
    learner = MatchingNet(IdentityEncoder(5), scale=3.0).fit(support, labels)
    cosine = F.cosine_similarity(queries[:, None], support[None], dim=-1)  # (4, 6)
    attention = (3.0 * cosine).softmax(-1)
    expected = attention @ F.one_hot(labels, 3).float()
    torch.testing.assert_close(learner.predict_proba(queries), expected)
    torch.testing.assert_close(learner.logits(queries).exp().sum(-1), torch.ones(4))


def test_a_sharp_attention_is_the_cosine_nearest_neighbour():
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1]])
    learner = MatchingNet(IdentityEncoder(2), scale=100.0).fit(support, torch.tensor([4, 7, 9]))
    assert learner.predict(torch.tensor([[3.0, 0.2], [0.1, 5.0], [-2.0, 0.0]])).tolist() == [4, 7, 9]


def test_batched_episodes_match_one_at_a_time():
    g = torch.Generator().manual_seed(1)
    support, queries = torch.randn(3, 4, 2, 6, generator=g), torch.randn(3, 5, 6, generator=g)
    learner = MatchingNet(IdentityEncoder(6), scale=5.0)
    batched = learner.batch_logits_embeddings(support, queries)
    for i in range(3):
        learner.fit_embeddings(support[i].reshape(8, 6), torch.arange(4).repeat_interleave(2))
        torch.testing.assert_close(batched[i], learner.logits_embeddings(queries[i]), rtol=1e-5, atol=1e-5)


def test_episode_loss_is_the_negative_log_likelihood_of_the_query_labels():
    g = torch.Generator().manual_seed(2)
    episode = Episode(
        torch.randn(4, 3, generator=g),
        torch.tensor([0, 0, 1, 1]),
        torch.randn(2, 3, generator=g),
        torch.tensor([1, 0]),
        torch.tensor([0, 1]),
    )
    learner = MatchingNet(IdentityEncoder(3))
    loss, _ = learner.episode_loss(episode)
    log_p = learner.fit(episode.support_x, episode.support_y).logits(episode.query_x)
    torch.testing.assert_close(loss, -log_p[torch.arange(2), episode.query_y].mean())


def test_declared_on_the_contract():
    cls = LEARNERS.get("matching")
    assert cls is MatchingNet and cls.kind == "embedding" and cls.meta_trainable
    assert cls.frozen_encoder and not cls.fixed_classes and cls.batches_embeddings


def test_fewshot_train_method_matching(tmp_path, monkeypatch):
    def load_dataset(dataset, subset="test", split=None, data_dir=None, image_size=None, seed=0, **kw):
        data = synthetic_images({"train": 12, "val": 5}.get(subset, 8), 16, seed=1, side=16)
        data.info.update(dataset="omniglot", split=split, subset=subset, image_size=16)
        return data

    monkeypatch.setattr(loading, "load_dataset", load_dataset)
    out = tmp_path / "m.safetensors"
    args = ["train", "--method", "matching", "--queries", "2", "--steps", "4", "--val-every", "2"]
    args += ["--val-episodes", "3", "--out", str(out), "--device", "cpu", "--no-progress", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["best_val_accuracy"] is not None
    from fewshot.checkpoints import load_learner

    learner, meta = load_learner(out)
    assert isinstance(learner, MatchingNet) and meta["learner"] == "matching"
    assert meta["learner_config"] == {"scale": 1.0} and meta["train"]["ways"] == 5


def test_fewshot_compare_runs_matching(tmp_path):
    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / "images" / f"c{c}").mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
            pixels[c * 4 : c * 4 + 4] = 255
            Image.fromarray(pixels).save(tmp_path / "images" / f"c{c}" / f"{i}.png")
    args = ["compare", "--encoder", "conv4", "--dataset", str(tmp_path / "images"), "--ways", "3"]
    args += ["--shots", "1", "--queries", "2", "--episodes", "4", "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, [*args, "--methods", "protonet,matching"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["method"] for r in rows] == ["protonet", "matching"]
