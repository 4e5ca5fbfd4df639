"""Reverse validation in pixels (`fewshot.adapt.reverse`): target labels that follow the
classes transfer back to the labelled source, wrong or collapsed ones do not; only predicted
classes count; and `fewshot rank-adapted --source` end to end."""

from __future__ import annotations

import json

import pytest
import torch
from fewshot_cli.app import app
from test_adapt_cli import adapted_models, domains, squares  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from fewshot.adapt.ranking import pixel_reverse, rank_probabilities
from fewshot.adapt.reverse import knn_predict, pixel_representation, reverse_scores
from fewshot.errors import FewshotError

runner = CliRunner()


def _shifted_domains(n_per_class: int = 30, classes: int = 4, side: int = 12):
    """Source and target images of ``classes`` fixed random patterns plus noise; the target is
    brighter and lower in contrast (a shift), so its pixels differ from the source's."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(classes, 1, side, side, generator=g)
    labels = torch.arange(classes).repeat_interleave(n_per_class)

    def domain(contrast: float, brightness: float) -> torch.Tensor:
        noise = 0.3 * torch.rand(len(labels), 1, side, side, generator=g)
        return (contrast * (patterns[labels] + noise) + brightness).clamp(0, 1)

    return domain(1.0, 0.0), domain(0.6, 0.3), labels


def test_pixels_are_one_unit_length_grey_space_for_any_size_and_channels():
    rgb, grey = torch.rand(3, 3, 40, 40), torch.rand(2, 1, 28, 28)
    a, b = pixel_representation(rgb), pixel_representation(grey)
    assert a.shape == (3, 28 * 28) and b.shape == (2, 28 * 28)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(3))
    with pytest.raises(FewshotError, match=r"needs images \(n, C, H, W\)"):
        pixel_representation(torch.rand(3, 10))


def test_knn_votes_and_breaks_ties_by_the_nearest_neighbour():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert knn_predict(train, labels, query, 2, k=3).tolist() == [0, 1]
    # k=2 with one neighbour of each class: the nearest one decides
    mixed = torch.tensor([0, 1, 1, 0])
    assert knn_predict(train, mixed, query, 2, k=2).tolist() == [0, 1]


def test_right_target_labels_score_above_noisy_and_collapsed_ones():
    source, target, labels = _shifted_domains()
    target_z, source_z = pixel_representation(target), pixel_representation(source)
    g = torch.Generator().manual_seed(1)
    noisy = labels.clone()
    flip = torch.rand(len(labels), generator=g) < 0.5
    noisy[flip] = (labels[flip] + 1) % 4
    candidates = {"right": labels, "noisy": noisy, "collapsed": torch.zeros_like(labels)}
    scores = reverse_scores(candidates, target_z, source_z, labels)
    assert scores["right"] > 0.9
    assert scores["right"] > scores["noisy"] > scores["collapsed"]
    assert scores["collapsed"] == pytest.approx(0.25)  # every source item called class 0
    with pytest.raises(FewshotError, match="differ in size"):
        reverse_scores(candidates, target_z, source_z[:, :10], labels)
    with pytest.raises(FewshotError, match="labels for"):
        reverse_scores({"short": labels[:5]}, target_z, source_z, labels)


def test_only_the_predicted_classes_count_and_the_ranking_follows_the_reverse_score():
    source, target, labels = _shifted_domains()
    wrong = (labels + 1) % 4
    hesitant = torch.nn.functional.one_hot(labels, 4) * 0.3 + 0.175  # right, barely
    certain = torch.nn.functional.one_hot(wrong, 4) * 0.999 + 0.00025  # wrong, near-certain
    same_argmax = torch.nn.functional.one_hot(labels, 4).double()
    reverse = pixel_reverse({"hesitant": hesitant, "sure": same_argmax}, target, source, labels)
    assert reverse["hesitant"] == reverse["sure"]
    candidates = {"certain-wrong": certain, "hesitant-right": hesitant}
    reverse = pixel_reverse(candidates, target, source, labels)
    rows = rank_probabilities(candidates, None, reverse)
    assert [row["name"] for row in rows] == ["hesitant-right", "certain-wrong"]
    assert rows[0]["reverse"] == pytest.approx(reverse["hesitant-right"])
    # without the reverse scores the rows keep the agreement ranking and say reverse None
    assert all(row["reverse"] is None for row in rank_probabilities(candidates, None))


def test_rank_adapted_with_source_ranks_by_reverse_validation(domains, tmp_path):  # noqa: F811
    source, target = domains
    outs = adapted_models(source, target, tmp_path)
    args = ["rank-adapted", *outs, "--target", str(target), "--source", str(source), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ranked_by"] == "reverse" and report["source"] == str(source)
    values = [row["reverse"] for row in report["models"]]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    text = runner.invoke(app, args)
    assert "ranked by reverse validation" in text.stdout and "reverse " in text.stdout
    other = squares(tmp_path / "other", 2, 0)
    for folder in other.iterdir():
        folder.rename(folder.with_name(folder.name + "-x"))  # other class names
    refused = runner.invoke(app, ["rank-adapted", *outs, "--target", str(target), "--source", str(other)])
    assert refused.exit_code == 2 and "other classes than the models" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
