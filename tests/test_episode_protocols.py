"""Episodes that follow the real protocols: within-group and variable-way, variable-shot
episodes (sampler, episode files, evaluation), and the class groups the loaders give."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from fewshot.data.splits import holdout_classes, join_classes, subset_classes
from fewshot.data.tensors import LabeledTensors
from fewshot.encoders.base import IdentityEncoder
from fewshot.errors import EpisodeError, FewshotError
from fewshot.evaluation import evaluate
from fewshot.learners.protonet import ProtoNet
from fewshot.sampling import BLOCK, EpisodeFile, EpisodeSampler, read_episode_settings

GROUPS = ["a"] * 5 + ["b"] * 4 + ["c"] * 3  # class id -> group: 12 classes in 3 groups


def _labels(n_classes: int = 12, per_class: int = 10) -> np.ndarray:
    return np.random.default_rng(0).permutation(np.repeat(np.arange(n_classes), per_class))


def _blobs(n_classes: int = 12, per_class: int = 12, dim: int = 8) -> LabeledTensors:
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(n_classes, dim, generator=g)
    data = centres.repeat_interleave(per_class, 0) + torch.randn(n_classes * per_class, dim, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return LabeledTensors(data, labels, [f"c{i}" for i in range(n_classes)], {}, class_groups=list(GROUPS))


def _digest(indices) -> str:
    parts = [indices.support.ravel(), indices.query.ravel(), indices.class_ids.ravel()]
    return hashlib.sha256(np.concatenate(parts).astype(np.int64).tobytes()).hexdigest()[:16]


def test_plain_episodes_are_the_ones_drawn_before_groups_existed():
    labels = np.repeat(np.arange(12), 10)
    # digests of the sampler as it was before groups and variable episodes were added
    assert (
        _digest(EpisodeSampler(labels, 5, 2, 3, episodes=1100, seed=7).sample_indices()) == "5da5b196af826a0d"
    )
    assert (
        _digest(EpisodeSampler(labels, 3, 1, 4, episodes=50, seed=0).sample_indices()) == "7af3507ffe7b3b03"
    )


@pytest.mark.parametrize("variable", [False, True])
def test_within_group_episodes_never_mix_groups_and_use_every_group(variable):
    labels = _labels()
    sampler = EpisodeSampler(
        labels, 3, 2, 3, episodes=BLOCK + 200, seed=1, class_groups=GROUPS, variable=variable, min_ways=2
    )
    groups = np.array(GROUPS)
    seen = set()
    for episode in sampler.iter_indices():
        of = groups[episode.class_ids]
        assert (of == of[0]).all() and len(set(episode.class_ids.tolist())) == episode.class_ids.size
        assert (labels[episode.support] == episode.class_ids[:, None]).all()
        seen.add(of[0])
    assert seen == {"a", "b", "c"} and sampler.within_group


def test_a_group_smaller_than_ways_is_named_or_left_out():
    labels = _labels()
    with pytest.raises(EpisodeError, match=r"group 'c' has only 3 classes but ways=4.*--skip-small-groups"):
        EpisodeSampler(labels, 4, 1, 1, class_groups=GROUPS)
    sampler = EpisodeSampler(labels, 4, 1, 1, episodes=300, class_groups=GROUPS, skip_small_groups=True)
    drawn = {GROUPS[int(c)] for ep in sampler.iter_indices() for c in ep.class_ids}
    assert drawn == {"a", "b"}
    with pytest.raises(EpisodeError, match=r"no group has that many classes \(the largest, 'a', has 5\)"):
        EpisodeSampler(labels, 6, 1, 1, class_groups=GROUPS, skip_small_groups=True)
    with pytest.raises(EpisodeError, match="class_groups names 3 classes but the labels go up to 11"):
        EpisodeSampler(labels, 2, 1, 1, class_groups=["a", "b", "c"])


@pytest.mark.parametrize(
    "options", [{"class_groups": GROUPS}, {"variable": True}, {"class_groups": GROUPS, "variable": True}]
)
def test_same_seed_same_episodes_and_episode_i_does_not_depend_on_the_count(options):
    labels = _labels()
    short = EpisodeSampler(labels, 3, 2, 2, episodes=10, seed=3, **options).sample_indices()
    long = EpisodeSampler(labels, 3, 2, 2, episodes=BLOCK + 10, seed=3, **options)
    full = long.sample_indices()
    assert np.array_equal(short.support, full.support[:10]) and np.array_equal(
        short.class_ids, full.class_ids[:10]
    )
    window = long.sample_indices(BLOCK - 5, 10)
    assert np.array_equal(window.query, full.query[BLOCK - 5 : BLOCK + 5])
    other = EpisodeSampler(labels, 3, 2, 2, episodes=10, seed=4, **options).sample_indices()
    assert not np.array_equal(short.support, other.support)


def test_variable_episodes_stay_within_their_bounds():
    labels = _labels()
    data = torch.stack([torch.arange(labels.size), torch.as_tensor(labels)], dim=1).float()
    sampler = EpisodeSampler(labels, 6, 4, 3, episodes=600, seed=2, variable=True, min_ways=2)
    shapes = set()
    for episode in sampler.episodes(data):
        n, k = episode.ways, episode.shots
        assert 2 <= n <= 6 and 1 <= k <= 4 and episode.query_y.numel() == 3 * n
        assert episode.support_x.shape[0] == n * k and len(set(episode.class_ids.tolist())) == n
        assert torch.equal(episode.support_x[:, 1].long(), episode.class_ids[episode.support_y])
        assert torch.equal(episode.query_x[:, 1].long(), episode.class_ids[episode.query_y])
        support, query = set(episode.support_x[:, 0].tolist()), set(episode.query_x[:, 0].tolist())
        assert not support & query
        shapes.add((n, k))
    assert shapes == {(n, k) for n in range(2, 7) for k in range(1, 5)}  # every size is drawn
    assert EpisodeSampler(labels, 8, 1, 1, variable=True).min_ways == 5  # Meta-Dataset's fewest
    with pytest.raises(EpisodeError, match="min_ways must be a whole number from 2 to ways=3"):
        EpisodeSampler(labels, 3, 1, 1, variable=True, min_ways=4)


def test_variable_episodes_in_a_small_group_take_at_most_its_classes():
    labels = _labels()
    sampler = EpisodeSampler(
        labels, 5, 1, 1, episodes=400, seed=0, class_groups=GROUPS, variable=True, min_ways=2
    )
    sizes = {"a": 5, "b": 4, "c": 3}
    ways = {g: set() for g in sizes}
    for episode in sampler.iter_indices():
        ways[GROUPS[int(episode.class_ids[0])]].add(episode.class_ids.size)
    assert ways == {g: set(range(2, n + 1)) for g, n in sizes.items()}


def test_dataloader_batches_of_variable_episodes_collate_to_their_sizes():
    labels = _labels()
    dataset = LabeledTensors(torch.arange(labels.size).float()[:, None], torch.as_tensor(labels), [])
    sampler = EpisodeSampler(labels, 4, 3, 2, episodes=30, seed=5, variable=True, min_ways=2)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=sampler.collate)
    for episode, indices in zip(loader, sampler.iter_indices(), strict=True):
        assert torch.equal(episode.support_x[:, 0].long(), torch.as_tensor(indices.support.reshape(-1)))
        assert torch.equal(episode.class_ids, torch.as_tensor(indices.class_ids))


@pytest.mark.parametrize("options", [{"class_groups": GROUPS}, {"class_groups": GROUPS, "variable": True}])
def test_episode_file_round_trip_keeps_groups_and_variable_episodes(tmp_path, options):
    labels = _labels()
    sampler = EpisodeSampler(labels, 3, 2, 2, episodes=40, seed=1, **options)
    path = sampler.save(tmp_path / "eps")
    settings = read_episode_settings(path)
    assert settings["within_group"] and settings["variable"] == sampler.variable
    replay = EpisodeFile(path, labels)
    assert replay.within_group and replay.variable == sampler.variable
    for a, b in zip(replay.iter_indices(), sampler.iter_indices(), strict=True):
        assert np.array_equal(a.support, b.support) and np.array_equal(a.class_ids, b.class_ids)


def test_badly_padded_variable_episode_file_is_refused(tmp_path):
    labels = _labels()
    path = EpisodeSampler(labels, 4, 3, 2, episodes=20, seed=1, variable=True, min_ways=2).save(
        tmp_path / "v"
    )
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["support"][0, 0, :] = -1  # an episode class without a single shot
    np.savez(path, **arrays)
    with pytest.raises(FewshotError, match="padded wrongly"):
        EpisodeFile(path, labels)


def test_evaluation_on_variable_episodes_matches_episode_by_episode():
    data = _blobs()
    learner = ProtoNet(IdentityEncoder(8))
    sampler = EpisodeSampler(data.labels, 5, 3, 4, episodes=60, seed=0, variable=True, min_ways=2)
    result = evaluate(learner, data, sampler=sampler, progress=False, device="cpu")
    assert result.variable and (result.ways, result.shots, result.n_episodes) == (5, 3, 60)
    expected = []
    for episode in sampler.episodes(data.data):
        predicted = learner.fit(episode.support_x, episode.support_y).predict(episode.query_x)
        expected.append(float((predicted == episode.query_y).float().mean()))
    np.testing.assert_allclose(result.per_episode, expected, atol=1e-6)
    raw = evaluate(learner, data, sampler=sampler, progress=False, device="cpu", use_cache=False)
    np.testing.assert_allclose(raw.per_episode, expected, atol=1e-6)


def test_evaluate_within_group_needs_groups_and_reports_them():
    data = _blobs()
    result = evaluate(
        ProtoNet(IdentityEncoder(8)), data, ways=3, queries=4, episodes=20, within_group=True, progress=False
    )
    assert result.within_group and not result.variable
    data.class_groups = None
    with pytest.raises(FewshotError, match="--within-group: this data set has no class groups"):
        evaluate(ProtoNet(IdentityEncoder(8)), data, ways=3, queries=4, episodes=5, within_group=True)


def test_class_splits_keep_the_groups():
    data = _blobs()
    part = subset_classes(data, [11, 0, 5], "x")
    assert part.class_groups == ["c", "a", "b"]
    rest, held = holdout_classes(data, 0.25, seed=0)
    assert sorted(rest.class_groups + held.class_groups) == sorted(GROUPS)
    assert join_classes(rest, held, "trainval").class_groups == rest.class_groups + held.class_groups
    held.class_groups = None
    assert join_classes(rest, held, "trainval").class_groups is None


def test_image_folder_groups_are_parent_folders(tmp_path):
    from PIL import Image

    from fewshot.data.folders import folder_groups, load_image_folder

    for name in ("latin/a", "latin/b", "greek/alpha", "greek/beta", "greek/gamma"):
        (tmp_path / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / name / f"{i}.png")
    data = load_image_folder(tmp_path, image_size=8, workers=0)
    assert dict(zip(data.class_names, data.class_groups, strict=True)) == {
        "greek/alpha": "greek",
        "greek/beta": "greek",
        "greek/gamma": "greek",
        "latin/a": "latin",
        "latin/b": "latin",
    }
    assert folder_groups(["cat", "dog"]) is None and folder_groups(["cat", "pets/dog"]) == [".", "pets"]
