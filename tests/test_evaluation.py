"""Episodic evaluation: confidence interval, cached vs per-episode paths, episode files."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from conftest import synthetic_images

from fewshot.encoders import create_encoder
from fewshot.encoders.base import IdentityEncoder
from fewshot.errors import EpisodeError, FewshotError
from fewshot.evaluation import EvalResult, confidence_interval_95, evaluate
from fewshot.learners.protonet import ProtoNet
from fewshot.sampling import EpisodeSampler


def test_ci95_matches_a_hand_computation():
    accuracies = [0.6, 0.8, 1.0, 0.8]
    # mean 0.8; deviations -0.2, 0, 0.2, 0 -> population variance 0.08 / 4 = 0.02
    expected = 1.96 * math.sqrt(0.02) / math.sqrt(4)
    assert confidence_interval_95(accuracies) == pytest.approx(expected)
    assert expected == pytest.approx(0.1385929291)
    assert confidence_interval_95([0.5] * 10) == 0.0
    assert math.isnan(confidence_interval_95([]))


def test_result_fields_and_defaults(blobs):
    result = evaluate(ProtoNet(IdentityEncoder(16)), blobs, ways=3, shots=2, episodes=50, progress=False)
    assert isinstance(result, EvalResult)
    assert result.n_episodes == len(result.per_episode) == 50
    assert result.mean == pytest.approx(np.mean(result.per_episode))
    assert result.ci95 == pytest.approx(confidence_interval_95(result.per_episode))
    assert (result.ways, result.shots, result.queries) == (3, 2, 15)
    assert "per_episode" not in result.as_dict() and "per_episode" in result.as_dict(per_episode=True)
    defaults = inspect.signature(evaluate).parameters
    assert defaults["episodes"].default == 1000 and defaults["queries"].default == 15
    assert defaults["seed"].default == 0


def test_same_seed_same_result_other_seed_other_episodes():
    data = synthetic_images(10, 20, seed=4)
    learner = ProtoNet(create_encoder("conv4", hidden=8))
    kwargs = dict(ways=5, shots=1, queries=5, episodes=40, progress=False, device="cpu")
    a = evaluate(learner, data, seed=1, **kwargs)
    b = evaluate(learner, data, seed=1, **kwargs)
    c = evaluate(learner, data, seed=2, **kwargs)
    assert a.per_episode == b.per_episode
    assert a.per_episode != c.per_episode


def test_cached_and_per_episode_paths_agree_on_the_same_episodes():
    # noisy classes so that accuracy is neither 0 nor 1 and mistakes must match one for one
    data = synthetic_images(12, 20, seed=5)
    data.data += 0.3 * torch.rand(data.data.shape, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    learner = ProtoNet(create_encoder("conv4", hidden=8))
    kwargs = dict(ways=5, shots=2, queries=4, episodes=25, seed=3, progress=False, device="cpu")
    cached = evaluate(learner, data, use_cache=True, **kwargs)
    raw = evaluate(learner, data, use_cache=False, **kwargs)
    assert 0.3 < cached.mean < 0.99
    np.testing.assert_allclose(cached.per_episode, raw.per_episode)
    assert cached.ci95 == pytest.approx(raw.ci95)


def test_episode_file_reproduces_the_saved_episodes(tmp_path, blobs):
    learner = ProtoNet(IdentityEncoder(16))
    saved = tmp_path / "episodes.npz"
    first = evaluate(
        learner, blobs, ways=4, shots=1, queries=3, episodes=30, seed=9, save_episodes=str(saved)
    )
    assert saved.exists()
    again = evaluate(learner, blobs, episode_file=str(saved), progress=False)
    assert again.per_episode == first.per_episode
    assert (again.ways, again.shots, again.queries, again.n_episodes) == (4, 1, 3, 30)
    with pytest.raises(FewshotError, match="cannot be saved again"):
        evaluate(learner, blobs, episode_file=str(saved), save_episodes=str(tmp_path / "x.npz"))


def test_save_episodes_to_an_unwritable_place_is_a_clear_error(tmp_path, blobs):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FewshotError, match="cannot write episodes"):
        evaluate(
            ProtoNet(IdentityEncoder(16)),
            blobs,
            episodes=5,
            save_episodes=str(tmp_path / "a_file" / "e.npz"),
            progress=False,
        )


def test_skip_small_classes(blobs):
    data = blobs
    small = torch.cat([data.labels[:-15], torch.full((15,), 9)])  # class 9 keeps 20 items
    keep = torch.ones_like(small, dtype=torch.bool)
    keep[-18:-5] = False  # now class 9 has 7 items
    data.data, data.labels = data.data[keep], small[keep]
    with pytest.raises(EpisodeError, match="skip-small-classes"):
        evaluate(ProtoNet(IdentityEncoder(16)), data, ways=5, shots=1, queries=15, episodes=5)
    result = evaluate(
        ProtoNet(IdentityEncoder(16)), data, ways=5, episodes=20, skip_small_classes=True, progress=False
    )
    assert result.n_episodes == 20


def test_explicit_sampler_is_used(blobs):
    sampler = EpisodeSampler(blobs.labels, 2, 3, 4, episodes=7, seed=0)
    result = evaluate(ProtoNet(IdentityEncoder(16)), blobs, sampler=sampler, progress=False)
    assert (result.n_episodes, result.ways, result.shots, result.queries) == (7, 2, 3, 4)


def test_only_items_used_by_the_episodes_are_embedded(blobs):
    class Counting(IdentityEncoder):
        seen = 0

        def forward(self, x):
            Counting.seen += x.shape[0]
            return super().forward(x)

    learner = ProtoNet(Counting(16))
    result = evaluate(learner, blobs, ways=2, shots=1, queries=1, episodes=3, progress=False)
    # 3 episodes x 2 classes x 2 items, not all 200, plus the one item that probes the batch size
    assert Counting.seen <= 12 + 1
    full = evaluate(
        ProtoNet(IdentityEncoder(16)),
        blobs,
        sampler=None,
        ways=2,
        shots=1,
        queries=1,
        episodes=3,
        use_cache=False,
        progress=False,
    )
    assert result.per_episode == full.per_episode


# -- the path follows the learner's declared kind ------------------------------------------


def test_the_path_follows_the_declared_kind(blobs, monkeypatch):
    """EMBEDDING learners run on cached embeddings (batched when they can), ADAPTIVE ones per episode."""
    import fewshot.evaluation as evaluation

    paths: list[str] = []
    for name in ("_evaluate_cached", "_evaluate_per_episode"):
        original = getattr(evaluation, name)

        def spy(*args, original=original, name=name, **kwargs):
            paths.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(evaluation, name, spy)

    class AdaptingProtoNet(ProtoNet):  # the same algorithm declared as adapting: fitted per episode
        kind = "adaptive"

        def _fit(self, support_x, support_y):
            return self._fit_embeddings(self.encoder(support_x), support_y)

        def logits(self, query_x):
            return self.logits_embeddings(self.encoder(query_x))

    kwargs = dict(ways=3, shots=2, queries=3, episodes=4, progress=False, device="cpu")
    cached = evaluate(ProtoNet(IdentityEncoder(16)), blobs, **kwargs)
    raw = evaluate(AdaptingProtoNet(IdentityEncoder(16)), blobs, **kwargs)
    assert paths == ["_evaluate_cached", "_evaluate_per_episode"]
    np.testing.assert_allclose(cached.per_episode, raw.per_episode)


def test_fixed_class_classifier_is_refused(blobs):
    from fewshot.learners.classifier import Classifier

    with pytest.raises(FewshotError, match="fixed-class classifier"):
        evaluate(Classifier(IdentityEncoder(16), ["a", "b", "c"]), blobs, ways=3, progress=False)


def test_training_refuses_a_learner_that_cannot_be_meta_trained(tmp_path, blobs):
    from fewshot.learners.simpleshot import SimpleShot
    from fewshot.training import TrainConfig, train

    with pytest.raises(FewshotError, match="cannot be meta-trained"):
        train(SimpleShot(IdentityEncoder(16)), blobs, tmp_path / "m.safetensors", TrainConfig(steps=1))
    assert not list(tmp_path.iterdir())
