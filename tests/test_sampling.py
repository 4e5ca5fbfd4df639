"""The episodic sampler: determinism, labels, DataLoader path, episode files, every error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import EpisodeError, FewshotError
from fewshot.sampling import BLOCK, EpisodeFile, EpisodeSampler


def _labels(n_classes=12, per_class=10, seed=0):
    """Shuffled labels so that items of a class are not contiguous."""
    labels = np.repeat(np.arange(n_classes), per_class)
    return np.random.default_rng(seed).permutation(labels)


def _dataset(labels):
    # item i is the vector (i, label): easy to check where each item came from
    data = torch.stack([torch.arange(len(labels)), torch.as_tensor(labels)], dim=1).float()
    return LabeledTensors(data, torch.as_tensor(labels), [f"c{i}" for i in range(int(labels.max()) + 1)])


def test_same_seed_same_episodes_and_other_seed_differs():
    labels = _labels()
    a = EpisodeSampler(labels, 5, 2, 3, episodes=50, seed=7).sample_indices()
    b = EpisodeSampler(labels, 5, 2, 3, episodes=50, seed=7).sample_indices()
    c = EpisodeSampler(labels, 5, 2, 3, episodes=50, seed=8).sample_indices()
    assert np.array_equal(a.support, b.support) and np.array_equal(a.query, b.query)
    assert not np.array_equal(a.support, c.support)


def test_episode_i_does_not_depend_on_the_number_of_episodes():
    labels = _labels()
    short = EpisodeSampler(labels, 5, 1, 2, episodes=10, seed=3).sample_indices()
    long = EpisodeSampler(labels, 5, 1, 2, episodes=BLOCK + 10, seed=3).sample_indices()
    assert np.array_equal(short.support, long.support[:10])
    # a window across a block boundary equals the same window of the full draw
    window = EpisodeSampler(labels, 5, 1, 2, episodes=BLOCK + 10, seed=3).sample_indices(BLOCK - 5, 10)
    assert np.array_equal(window.query, long.query[BLOCK - 5 : BLOCK + 5])
    iterated = list(EpisodeSampler(labels, 5, 1, 2, episodes=BLOCK + 10, seed=3).iter_indices())
    assert all(np.array_equal(iterated[i].support, long.support[i]) for i in (0, BLOCK - 1, BLOCK + 9))


def test_episodes_are_well_formed():
    labels = _labels(n_classes=12, per_class=10)
    data = _dataset(labels)
    sampler = EpisodeSampler(labels, 4, 3, 5, episodes=200, seed=1)
    for episode in sampler.episodes(data.data):
        assert episode.support_x.shape == (12, 2) and episode.query_x.shape == (20, 2)
        assert torch.equal(episode.support_y, torch.arange(4).repeat_interleave(3))
        assert torch.equal(episode.query_y, torch.arange(4).repeat_interleave(5))
        assert len(set(episode.class_ids.tolist())) == 4  # distinct classes
        # the remapped label j is the original class class_ids[j]; grouped by class
        assert torch.equal(episode.support_x[:, 1].long(), episode.class_ids[episode.support_y])
        assert torch.equal(episode.query_x[:, 1].long(), episode.class_ids[episode.query_y])
        support, query = set(episode.support_x[:, 0].tolist()), set(episode.query_x[:, 0].tolist())
        assert len(support) == 12 and len(query) == 20 and not support & query
        assert (episode.ways, episode.shots, episode.queries) == (4, 3, 5)


def test_every_class_and_item_gets_drawn():
    labels = _labels(n_classes=6, per_class=8)
    drawn = EpisodeSampler(labels, 3, 1, 1, episodes=2000, seed=0).sample_indices()
    counts = np.bincount(drawn.class_ids.reshape(-1), minlength=6)
    assert counts.min() > 0.8 * counts.mean()  # classes roughly uniform
    items = np.concatenate([drawn.support.reshape(-1), drawn.query.reshape(-1)])
    assert np.unique(items).size == labels.size


def test_many_classes_path_draws_distinct_classes():
    labels = np.repeat(np.arange(600), 4)  # more than 256 classes: the rejection path
    drawn = EpisodeSampler(labels, 60, 1, 1, episodes=300, seed=2).sample_indices()
    assert all(np.unique(row).size == 60 for row in drawn.class_ids)


def test_dataloader_with_workers_equals_in_memory_episodes():
    labels = _labels()
    data = _dataset(labels)
    sampler = EpisodeSampler(labels, 5, 2, 3, episodes=20, seed=4)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=sampler.collate, num_workers=2)
    for from_loader, in_memory in zip(loader, sampler.episodes(data.data), strict=True):
        for field in ("support_x", "support_y", "query_x", "query_y", "class_ids"):
            assert torch.equal(getattr(from_loader, field), getattr(in_memory, field)), field


def test_skip_small_classes():
    labels = np.concatenate([np.repeat(np.arange(5), 10), [5, 5]])  # class 5 has 2 items
    sampler = EpisodeSampler(labels, 5, 1, 4, episodes=30, skip_small_classes=True)
    assert 5 not in sampler.class_ids and sampler.sample_indices().class_ids.max() == 4


def test_episode_file_round_trip(tmp_path):
    labels = _labels()
    data = _dataset(labels)
    sampler = EpisodeSampler(labels, 5, 1, 4, episodes=30, seed=9)
    path = sampler.save(tmp_path / "episodes")
    assert path.name == "episodes.npz" and [p.name for p in tmp_path.iterdir()] == ["episodes.npz"]
    loaded = EpisodeFile(path, data.labels)
    assert (len(loaded), loaded.ways, loaded.shots, loaded.queries, loaded.seed) == (30, 5, 1, 4, 9)
    for a, b in zip(loaded.episodes(data.data), sampler.episodes(data.data), strict=True):
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
        assert torch.equal(a.class_ids, b.class_ids)
    assert list(loaded) == list(sampler)  # also a DataLoader batch sampler


def test_episode_file_for_another_data_set_is_refused(tmp_path):
    path = EpisodeSampler(_labels(seed=0), 5, 1, 4, episodes=5).save(tmp_path / "e.npz")
    with pytest.raises(FewshotError, match="drawn for another data set.*use the same data set and split"):
        EpisodeFile(path, _labels(seed=1))


def test_damaged_episode_files_are_refused(tmp_path):
    labels = _labels()
    path = EpisodeSampler(labels, 5, 1, 4, episodes=5).save(tmp_path / "e.npz")
    payload = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(FewshotError, match="not a readable episode file"):
        EpisodeFile(truncated, labels)
    with np.load(path) as archive:
        arrays = dict(archive)
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, **{**arrays, "class_ids": arrays["class_ids"][:, ::-1]})
    with pytest.raises(FewshotError, match="items do not belong"):
        EpisodeFile(tampered, labels)
    cut = tmp_path / "cut.npz"
    np.savez(cut, **{**arrays, "support": arrays["support"][:3]})
    with pytest.raises(FewshotError, match="arrays do not match its settings"):
        EpisodeFile(cut, labels)
    with pytest.raises(FewshotError, match="episode file not found"):
        EpisodeFile(tmp_path / "missing.npz", labels)
    (tmp_path / "junk.npz").write_bytes(b"not an npz at all")
    with pytest.raises(FewshotError, match="not a readable episode file"):
        EpisodeFile(tmp_path / "junk.npz", labels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ways": 0}, "ways must be a positive whole number, got 0"),
        ({"ways": -3}, "ways must be a positive whole number, got -3"),
        ({"ways": 1}, "ways must be at least 2"),
        ({"ways": 2.5}, "ways must be a positive whole number"),
        ({"ways": True}, "ways must be a positive whole number"),
        ({"shots": 0}, "shots must be a positive whole number, got 0"),
        ({"queries": -1}, "queries must be a positive whole number, got -1"),
        ({"queries": 0}, "queries must be a positive whole number, got 0"),
        ({"episodes": 0}, "episodes must be a positive whole number, got 0"),
        ({"ways": 13}, r"ways=13 but the data set has only 12 classes: use --ways 12 or fewer"),
        (
            {"shots": 5, "queries": 6},
            r"class 'c0' \(id 0\) has only 10 items but shots \+ queries = 11 \(12 of 12 classes are that "
            r"small\): lower --shots/--queries, or skip such classes \(--skip-small-classes\)",
        ),
    ],
)
def test_error_messages_say_how_to_fix(kwargs, message):
    settings = {"ways": 5, "shots": 1, "queries": 2, **kwargs}
    with pytest.raises(EpisodeError, match=message):
        EpisodeSampler(_labels(), class_names=[f"c{i}" for i in range(12)], **settings)


def test_small_class_is_named_and_skipping_may_leave_too_few():
    labels = np.concatenate([np.repeat(np.arange(4), 10), [4, 4, 4]])
    with pytest.raises(EpisodeError, match=r"class 4 has only 3 items.*--skip-small-classes"):
        EpisodeSampler(labels, 3, 1, 5)
    with pytest.raises(
        EpisodeError, match=r"ways=5 but the data set has only 4 classes with at least 6 items"
    ):
        EpisodeSampler(labels, 5, 1, 5, skip_small_classes=True)


def test_bad_labels():
    with pytest.raises(EpisodeError, match="no items: check its path and split"):
        EpisodeSampler([], 5, 1, 1)
    with pytest.raises(EpisodeError, match="one-dimensional"):
        EpisodeSampler(np.zeros((4, 2), dtype=int), 2, 1, 1)
    with pytest.raises(EpisodeError, match="must be integers"):
        EpisodeSampler(np.array([0.5, 1.5]), 2, 1, 1)
    sampler = EpisodeSampler(_labels(), 5, 1, 1, episodes=2)
    with pytest.raises(EpisodeError, match="data has 3 items but the sampler was built on 120 labels"):
        next(sampler.episodes(torch.zeros(3, 2)))
