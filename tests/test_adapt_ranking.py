"""Ranking adapted models of different methods by ensemble agreement (EnsV): it reads only
predicted classes, so a confident but wrong method (OT mapping's near-certain head) that wins
IM does not win; and `fewshot rank-adapted` end to end."""

from __future__ import annotations

import json

import pytest
import torch
from fewshot_cli.app import app
from test_adapt_cli import adapted_models, domains  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from fewshot.adapt.ranking import rank_models, rank_probabilities
from fewshot.adapt.selection import agreement_scores, im_score
from fewshot.errors import FewshotError

runner = CliRunner()


def _predictions(labels: torch.Tensor, correct: float, confidence: float, seed: int) -> torch.Tensor:
    """Probabilities ``(n, C)`` right on a ``correct`` fraction of items (a random wrong class
    elsewhere), putting ``confidence`` on the predicted class and the rest spread evenly."""
    g = torch.Generator().manual_seed(seed)
    n, c = len(labels), int(labels.max()) + 1
    predicted = labels.clone()
    wrong = torch.rand(n, generator=g) > correct
    predicted[wrong] = (labels[wrong] + torch.randint(1, c, (int(wrong.sum()),), generator=g)) % c
    p = torch.full((n, c), (1 - confidence) / (c - 1))
    p[torch.arange(n), predicted] = confidence
    return p


def test_agreement_prefers_the_accurate_candidates_where_im_prefers_the_confident_one():
    labels = torch.arange(400) % 4
    candidates = {
        "adabn": _predictions(labels, 0.80, 0.55, 1),
        "coral": _predictions(labels, 0.75, 0.55, 2),
        "dann": _predictions(labels, 0.70, 0.55, 3),
        "ot": _predictions(labels, 0.50, 0.999, 4),  # near-certain everywhere, half wrong
    }
    im = {name: im_score(p) for name, p in candidates.items()}
    assert max(im, key=im.get) == "ot"
    rows = rank_probabilities(candidates, labels)
    assert [row["name"] for row in rows] == ["adabn", "coral", "dann", "ot"]
    right = (candidates["adabn"].argmax(-1) == labels).double().mean()
    assert rows[0]["accuracy"] == pytest.approx(float(right))
    assert set(rows[0]["scores"]) == {"entropy", "im", "snd"}


def test_agreement_is_the_share_of_items_predicted_as_the_ensemble_does():
    a = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]])
    b = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.3, 0.7]])
    c = torch.tensor([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    # predicted: a [0, 0, 1], b [0, 1, 1], c [1, 1, 1]; the vote: [0, 1, 1]
    assert agreement_scores([a, b, c]) == pytest.approx([2 / 3, 1.0, 2 / 3])
    # a tie of votes goes to the larger mean probability: class 1 (0.65 against 0.35)
    assert agreement_scores([torch.tensor([[0.6, 0.4]]), torch.tensor([[0.1, 0.9]])]) == [0.0, 1.0]
    # one near-certain candidate does not outvote two hesitant ones
    sure, hesitant = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.55, 0.45]])
    assert agreement_scores([sure, hesitant, hesitant]) == [0.0, 1.0, 1.0]
    with pytest.raises(FewshotError, match="at least two"):
        agreement_scores([a])
    with pytest.raises(FewshotError, match="differ in shape"):
        agreement_scores([a, a[:2]])


def test_rank_models_refuses_candidates_of_other_classes():
    from fewshot.encoders import ENCODERS
    from fewshot.learners.classifier import Classifier

    encoder = ENCODERS.create("identity", embed_dim=3)
    one, other = Classifier(encoder, ["a", "b"]), Classifier(encoder, ["a", "c"])
    items = torch.randn(5, 3)
    assert len(rank_models({"one": one, "two": Classifier(encoder, ["a", "b"])}, items)) == 2
    with pytest.raises(FewshotError, match="other classes"):
        rank_models({"one": one, "other": other}, items)


def test_rank_adapted_ranks_adapt_outputs_and_refuses_bad_input(domains, tmp_path):  # noqa: F811
    source, target = domains
    outs = adapted_models(source, target, tmp_path)
    result = runner.invoke(app, ["rank-adapted", *outs, "--target", str(target), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(row["name"] for row in report["models"]) == sorted(outs)
    assert report["best"] == report["models"][0]["name"] and report["items"] == 32
    assert all(row["accuracy"] is not None for row in report["models"])
    text = runner.invoke(app, ["rank-adapted", *outs, "--target", str(target), "--device", "cpu"])
    assert text.stdout.strip().splitlines()[-1] == f"best: {report['best']}"
    for bad, message in (
        ([outs[0]], "at least two models"),
        ([outs[0], str(tmp_path / "missing.safetensors")], "does not exist"),
        ([outs[0], outs[0]], "given twice"),
    ):
        refused = runner.invoke(app, ["rank-adapted", *bad, "--target", str(target)])
        assert refused.exit_code == 2 and message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
