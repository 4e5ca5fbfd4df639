"""`fewshot.sampling` split in three (sampler, episodes, episode files): every name stays
importable from `fewshot.sampling`, and a file read back behaves like the sampler that saved it."""

from __future__ import annotations

import numpy as np
import torch

from fewshot import episode_files, episodes, sampling
from fewshot.sampling import BLOCK, EpisodeFile, EpisodeSampler


def test_moved_names_stay_importable_from_sampling():
    assert sampling.Episode is episodes.Episode
    assert sampling.EpisodeIndices is episodes.EpisodeIndices
    assert sampling.labels_fingerprint is episodes.labels_fingerprint
    assert sampling.EpisodeFile is episode_files.EpisodeFile
    assert sampling.read_episode_settings is episode_files.read_episode_settings
    assert sampling.EPISODE_FILE_VERSION == episode_files.EPISODE_FILE_VERSION == 1
    for name in sampling.__all__:
        assert hasattr(sampling, name), name


def test_a_file_read_back_iterates_like_its_sampler(tmp_path):
    labels = np.repeat(np.arange(12), 6)
    sampler = EpisodeSampler(labels, 5, 1, 2, episodes=BLOCK + 10, seed=3)
    read = EpisodeFile(sampler.save(tmp_path / "episodes"), labels)
    assert len(read) == len(sampler)
    assert list(read) == list(sampler)
    data = torch.arange(labels.size * 2.0).reshape(-1, 2)
    for mine, theirs in zip(read.episodes(data), sampler.episodes(data), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(vars(mine).values(), vars(theirs).values(), strict=True))
