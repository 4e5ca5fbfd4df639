"""Shared checks for the meta-trainable learners of issue #14 (relation, feat, reptile, r2d2):
a short meta-training loss curve, and `fewshot train` -> checkpoint -> `fewshot eval` on fake data."""

from __future__ import annotations

import json

import torch
from conftest import synthetic_images
from fewshot_cli.app import app
from typer.testing import CliRunner

import fewshot.data.loading as loading
from fewshot.encoders import create_encoder
from fewshot.sampling import EpisodeSampler


def tiny_conv4(seed: int = 0, side: int = 16):
    torch.manual_seed(seed)
    return create_encoder("conv4", in_channels=1, hidden=8, image_size=side)


def loss_curve(learner, steps: int = 40, ways: int = 3, shots: int = 2, queries: int = 3, lr: float = 3e-3):
    """Meta-train `learner` with Adam for `steps` episodes of one fixed synthetic data set, as
    `fewshot.training` drives it (``meta_batch_backward`` when it runs one, else ``episode_loss``);
    returns the per-step losses."""
    data = synthetic_images(6, 12, seed=7, side=16)
    sampler = EpisodeSampler(data.labels, ways, shots, queries, episodes=steps, seed=0)
    optimizer = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=lr)
    learner.train()
    losses = []
    for episode in sampler.episodes(data.data):
        optimizer.zero_grad()
        if learner.runs_meta_batch:
            loss, _ = learner.meta_batch_backward([episode])
        else:
            loss, _ = learner.episode_loss(episode)
            loss.backward()
            loss = loss.item()
        optimizer.step()
        losses.append(float(loss))
    return losses


def assert_loss_falls(losses: list[float], margin: float = 0.85) -> None:
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < margin * first, f"mean loss of the last 10 steps {last:.4f} vs first 10 {first:.4f}"


def fake_data(monkeypatch) -> None:
    """`load_dataset` returns small 16x16 synthetic images for every subset."""

    def load_dataset(dataset, subset="test", split=None, data_dir=None, image_size=None, seed=0, **kw):
        n = {"train": 12, "val": 5}.get(subset, 8)
        data = synthetic_images(n, 16, seed={"train": 1, "val": 2}.get(subset, 3), side=16)
        data.info.update(dataset="omniglot", split=split, subset=subset, image_size=16)
        return data

    monkeypatch.setattr(loading, "load_dataset", load_dataset)


def train_then_eval(tmp_path, monkeypatch, method: str, *extra: str) -> tuple[dict, dict, float]:
    """`fewshot train --method M` then `fewshot eval --checkpoint` (JSON both); returns the two
    reports and the library's accuracy of the reloaded checkpoint on the same episodes."""
    from fewshot.evaluation import evaluate
    from fewshot.model_loading import load_learner

    fake_data(monkeypatch)
    out = tmp_path / f"{method}.safetensors"
    args = ["train", "--method", method, "--ways", "3", "--queries", "2", "--steps", "4", "--val-every", "2"]
    args += ["--val-episodes", "3", "--out", str(out), "--device", "cpu", "--no-progress", "--json", *extra]
    trained = CliRunner().invoke(app, args)
    assert trained.exit_code == 0, trained.output
    episodes = ["--ways", "3", "--shots", "1", "--queries", "3", "--episodes", "6"]
    evaluated = CliRunner().invoke(app, ["eval", "-c", str(out), *episodes, "--device", "cpu", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    learner, _ = load_learner(out)
    test = loading.load_dataset("omniglot", "test")
    library = evaluate(learner, test, 3, 1, 3, episodes=6, seed=0, device="cpu", progress=False).mean
    return json.loads(trained.stdout), json.loads(evaluated.stdout), library


def assert_checkpoint_round_trip(learner, name: str, tmp_path, episode) -> None:
    """Save `learner` as a checkpoint and reload it: same weights, same hyperparameters and the
    same logits on `episode` (in eval mode)."""
    from fewshot.checkpoints import learner_metadata, save_checkpoint
    from fewshot.model_loading import load_learner

    path = save_checkpoint(
        tmp_path / f"{name}.safetensors", learner, learner_metadata(name, "conv4", learner)
    )
    loaded, meta = load_learner(path)
    assert type(loaded) is type(learner) and loaded.get_params() == learner.get_params()
    for key, value in learner.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    learner.eval()
    expected = learner.fit(episode.support_x, episode.support_y).logits(episode.query_x)
    got = loaded.fit(episode.support_x, episode.support_y).logits(episode.query_x)
    torch.testing.assert_close(got, expected)


def tiny_episode(seed: int = 0, ways: int = 3, shots: int = 2, queries: int = 3, side: int = 16):
    data = synthetic_images(ways, shots + queries, seed=seed, side=side)
    return next(EpisodeSampler(data.labels, ways, shots, queries, episodes=1, seed=seed).episodes(data.data))
