"""`fewshot rank-models` through Typer's runner, on the bundled UCI digits."""

from __future__ import annotations

import json

import pytest
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.errors import FewshotError
from fewshot.transfer.candidates import parse_model, split_models

MODELS = "conv4[hidden=8],conv4[hidden=32],protonet-conv4-omniglot,efficientnet-lite0[image_size=32]"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank") / "rank.json"
    argv = ["rank-models", "digits", "--models", MODELS, "--per-class", "8", "--finetune"]
    argv += ["--strategy", "linear-probe", "--out", str(out), "--json", "--device", "cpu"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert json.loads(out.read_text()) == printed  # the file holds what was printed
    return printed


def test_every_candidate_is_scored_and_tested_on_the_same_items(report):
    rows = report["models"]
    assert [r["model"] for r in rows] == split_models(MODELS)
    assert {r["train_items"] for r in rows} == {60} and {r["test_items"] for r in rows} == {20}
    for row in rows:
        assert 0 <= row["accuracy"] <= 1
        assert set(row["scores"]) == {"hscore", "hscore-shrinkage", "leep", "logme", "nce", "transrate"}
    # only the ImageNet encoder kept its source head: LEEP and NCE exist for it alone
    assert [r["source_head"] for r in rows] == [False, False, False, True]
    assert [r["scores"]["leep"] is None for r in rows] == [True, True, True, False]
    assert rows[0]["features"] == 8 and rows[1]["features"] == 32 and rows[3]["features"] == 1280


def test_tau_per_score_is_reported(report):
    from fewshot.transfer.ranking import weighted_tau

    accuracies = [r["accuracy"] for r in report["models"]]
    for name, c in report["correlations"].items():
        values = [r["scores"][name] for r in report["models"]]
        assert c["models"] == sum(v is not None for v in values)
        assert c["weighted_tau"] == (weighted_tau(values, accuracies) if c["models"] >= 3 else None)
    assert report["best"]["accuracy"] in [r["model"] for r in report["models"]]


def test_the_table_lists_models_scores_and_tau():
    argv = ["rank-models", "digits", "--models", "conv4[hidden=8],conv4[hidden=16]", "--per-class", "4"]
    result = CliRunner().invoke(app, [*argv, "--scores", "logme,hscore", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["model", "logme", "hscore"]
    assert lines[2].startswith("conv4[hidden=8]") and "best by logme" in result.output


def test_model_specs():
    assert split_models("a,b[x=1;y=z],c") == ["a", "b[x=1;y=z]", "c"]
    assert parse_model("timm:resnet18[pretrained=none;image-size=64]") == (
        "timm:resnet18",
        {"pretrained": "none", "image_size": 64},
    )
    assert parse_model("protonet-conv4-omniglot")[0].endswith("protonet-conv4-omniglot.safetensors")
    with pytest.raises(FewshotError, match="twice"):
        split_models("a,a")
    with pytest.raises(FewshotError, match="option=value"):
        parse_model("a[b]")


def test_freeze_batchnorm_reaches_the_finetuning_config():
    from fewshot.workflows.rank_models import RankRequest, _config

    assert _config(RankRequest(data="digits", models="conv4", freeze_batchnorm=True), "cpu").freeze_batchnorm
    assert not _config(RankRequest(data="digits", models="conv4"), "cpu").freeze_batchnorm
