"""Continual streams: seeded and explicit class splits, groups, domains from shifts and folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from continual_streams import squares
from PIL import Image

from fewshot.continual import scenarios
from fewshot.errors import DataError


def test_the_same_seed_gives_the_same_stream_and_another_seed_another():
    a = scenarios.class_splits(10, 5, seed=3)
    assert a == scenarios.class_splits(10, 5, seed=3)
    assert a != scenarios.class_splits(10, 5, seed=4)
    assert sorted(c for part in a for c in part) == list(range(10))
    assert [len(p) for p in a] == [2] * 5


def test_an_explicit_order_is_cut_in_order_and_uneven_counts_go_first():
    assert scenarios.class_splits(5, 2, order=[4, 3, 2, 1, 0]) == [[4, 3, 2], [1, 0]]
    with pytest.raises(DataError, match="--class-order"):
        scenarios.class_splits(5, 2, order=[0, 1, 2, 3, 3])
    with pytest.raises(DataError, match="--tasks"):
        scenarios.class_splits(5, 6)


def test_class_incremental_experiences_hold_only_their_classes_with_global_labels():
    train, test = squares(6, 5, 0), squares(6, 3, 1)
    stream = scenarios.class_incremental(train, test, 3, order=[5, 4, 3, 2, 1, 0])
    assert stream.scenario == "class-il" and not stream.task_aware
    assert [e.classes for e in stream.experiences] == [[5, 4], [3, 2], [1, 0]]
    for e in stream.experiences:
        assert set(e.train.labels.tolist()) == set(e.classes) == set(e.test.labels.tolist())
        assert len(e.train) == 10 and len(e.test) == 6
    assert scenarios.task_incremental(train, test, 3).task_aware


def test_group_splits_give_one_experience_per_group():
    data = squares(6, 2, 0)
    data.class_groups = ["b", "a", "b", "c", "a", "c"]
    parts, names = scenarios.group_splits(data)
    assert names == ["a", "b", "c"] and parts == [[1, 4], [0, 2], [3, 5]]
    assert scenarios.group_splits(data, 2)[0] == [[1, 4], [0, 2]]
    with pytest.raises(DataError, match="3 class groups"):
        scenarios.group_splits(data, 4)


def test_domains_from_shifts_keep_the_classes_and_change_the_images():
    train, test = squares(4, 3, 0), squares(4, 2, 1)
    stream = scenarios.domains_from_shifts(train, test, ["none", "inversion", "rotation"], seed=0)
    assert stream.scenario == "domain-il" and [e.name for e in stream.experiences] == [
        "none",
        "inversion",
        "rotation",
    ]
    first, inverted = stream.experiences[0], stream.experiences[1]
    assert torch.equal(first.train.data, train.data)
    assert torch.allclose(inverted.train.data, 1 - train.data)
    assert all(e.classes == [0, 1, 2, 3] for e in stream.experiences)
    again = scenarios.domains_from_shifts(train, test, ["none", "inversion", "rotation"], seed=0)
    assert torch.equal(again.experiences[2].test.data, stream.experiences[2].test.data)


def test_domains_from_a_folder_per_domain(tmp_path):
    rng = np.random.default_rng(0)
    for domain in ("photo", "sketch"):
        for c in ("cat", "dog"):
            (tmp_path / domain / c).mkdir(parents=True)
            for i in range(5):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                    tmp_path / domain / c / f"{i}.png"
                )
    stream = scenarios.domains_from_folder(tmp_path, test_fraction=0.2, seed=0)
    assert [e.name for e in stream.experiences] == ["photo", "sketch"]
    assert stream.class_names == ["cat", "dog"]
    assert [len(e.train) for e in stream.experiences] == [8, 8] and len(stream.experiences[0].test) == 2


def test_domains_with_other_classes_are_refused():
    a, b = squares(3, 2, 0), squares(4, 2, 0)
    with pytest.raises(DataError, match="other classes"):
        scenarios.domain_incremental([("a", a, a), ("b", b, b)])


def test_item_split_and_subsample_are_seeded_and_per_class():
    data = squares(3, 10, 0)
    train, test = scenarios.item_split(data, 0.3, seed=1)
    assert np.bincount(test.labels.numpy()).tolist() == [3, 3, 3]
    assert torch.equal(scenarios.item_split(data, 0.3, seed=1)[1].data, test.data)
    small = scenarios.subsample(data, 4, seed=0)
    assert np.bincount(small.labels.numpy()).tolist() == [4, 4, 4]
