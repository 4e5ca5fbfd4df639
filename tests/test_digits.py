"""The digits data set (scikit-learn's bundled copy): items, the seeded item split and the
class-disjoint splits, and `fewshot eval --dataset digits` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.data.loading import load_dataset, load_train_val
from fewshot.errors import DataError

pytest.importorskip("sklearn", reason="the digits data set is scikit-learn's bundled copy")


def test_all_digits_as_ten_classes_upsampled_to_28():
    data = load_dataset("digits", "all")
    assert data.data.shape == (1797, 1, 28, 28) and data.data.dtype == torch.float32
    assert data.class_names == [str(d) for d in range(10)]
    assert torch.bincount(data.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert float(data.data.min()) >= 0.0 and float(data.data.max()) <= 1.0
    assert data.info == {"dataset": "digits", "split": "items", "subset": "all", "image_size": 28}


def test_native_size_gives_the_original_pixels():
    from sklearn.datasets import load_digits

    data = load_dataset("digits", "all", image_size=8)
    expected = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)
    assert torch.equal(data.data[:, 0], expected)


def _rows(data) -> set[bytes]:
    return {row.numpy().tobytes() for row in data.data.flatten(1)}


def test_item_split_is_stratified_disjoint_and_seeded():
    train, test = load_dataset("digits", "train", image_size=8), load_dataset("digits", "test", image_size=8)
    assert (len(train), len(test)) == (1347, 450)
    assert train.n_classes == test.n_classes == 10
    assert torch.bincount(test.labels).min() >= 43  # a quarter of every class
    assert not _rows(train) & _rows(test)
    again = load_dataset("digits", "test", image_size=8)
    assert torch.equal(again.data, test.data)
    other = load_dataset("digits", "test", image_size=8, seed=1)
    assert not torch.equal(other.data, test.data)
    fit, val = load_train_val("digits", image_size=8)
    assert (len(fit), len(val)) == (1078, 269) and fit.n_classes == val.n_classes == 10
    assert _rows(fit) | _rows(val) == _rows(train) and not _rows(fit) & _rows(val)


def test_class_split_parts_are_disjoint_cover_every_class_and_follow_the_seed():
    parts = {s: load_dataset("digits", s, "classes", image_size=8) for s in ("train", "val", "test")}
    names = [set(parts[s].class_names) for s in ("train", "val", "test")]
    assert [len(n) for n in names] == [3, 2, 5]
    assert set.union(*names) == set("0123456789") and sum(map(len, names)) == 10
    for part in parts.values():  # every image of a class goes with it, relabelled 0..k-1
        assert torch.unique(part.labels).tolist() == list(range(part.n_classes))
    assert len(parts["train"]) + len(parts["val"]) + len(parts["test"]) == 1797
    again = load_dataset("digits", "test", "classes", image_size=8)
    assert again.class_names == parts["test"].class_names and torch.equal(again.data, parts["test"].data)
    seeds = {
        tuple(load_dataset("digits", "test", "classes", image_size=8, seed=s).class_names) for s in range(4)
    }
    assert len(seeds) > 1
    ratios = load_dataset("digits", "test", "0.5,0,0.5", image_size=8)
    assert ratios.n_classes == 5 and ratios.info["split"] == "0.5,0,0.5"
    train, val = load_train_val("digits", "classes", image_size=8)
    assert train.class_names == parts["train"].class_names and val.class_names == parts["val"].class_names
    trainval, none = load_train_val("digits", "classes", trainval=True, image_size=8)
    assert none is None and sorted(trainval.class_names) == sorted(names[0] | names[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", None), "unknown subset 'nope' of the items split of digits"),
        (("fit", "classes"), "unknown subset 'fit' of the classes split"),
        (("test", "official"), "unknown split 'official' of digits: choose items"),
        (("test", "1,2,x"), "class ratios train,val,test"),
        (("val", "0.5,0,0.5"), "the val part of split 0.5,0,0.5 has no class"),
    ],
)
def test_bad_requests_are_one_line(args, message):
    with pytest.raises(DataError, match=message) as err:
        load_dataset("digits", *args)
    assert "\n" not in str(err.value)


def test_training_needs_a_val_part_of_two_classes():
    with pytest.raises(DataError, match="val part 0 class"):
        load_train_val("digits", "0.5,0,0.5")


def test_cli_eval_on_digits_with_an_untrained_conv4():
    result = CliRunner().invoke(
        app, ["eval", "--dataset", "digits", "--encoder", "conv4", "--episodes", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 0.0 <= report["accuracy"] <= 1.0 and report["episodes"] == 20
    assert (report["dataset"], report["split"], report["subset"]) == ("digits", "items", "test")
