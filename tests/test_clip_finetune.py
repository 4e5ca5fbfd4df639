"""`fewshot finetune --strategy coop|clap|zs-lp|lp++|clip-lora|clip-adapter|cocoop`: a CLIP
adaptation method fitted on a labelled folder and saved as a fixed-class model (a `Classifier`,
or CoCoOp's own) that scores as the learner did."""

from __future__ import annotations

import json

import pytest
import torch
from clip_learners import CLASS_NAMES, micro_clip
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.build import build_learner
from fewshot.checkpoints import save_checkpoint
from fewshot.data.tensors import LabeledTensors
from fewshot.model_loading import load_learner
from fewshot.transfer.clip_export import exporting_methods, fit_exported_classifier
from fewshot.transfer.sources import classifier_metadata

pytest.importorskip("open_clip")
pytestmark = pytest.mark.usefixtures("one_thread")


def labelled(encoder, per_class: int = 4, seed: int = 0) -> LabeledTensors:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(len(CLASS_NAMES), *encoder.input_size, generator=g)
    items = means.repeat_interleave(per_class, 0)
    items = items + 0.3 * torch.randn(items.shape, generator=g)
    labels = torch.arange(len(CLASS_NAMES)).repeat_interleave(per_class)
    return LabeledTensors(items, labels, list(CLASS_NAMES))


def test_every_clip_adaptation_method_is_exported():
    expected = {"coop", "clap", "zs-lp", "lp++", "clip-lora", "clip-adapter", "cocoop"}
    assert set(exporting_methods()) == expected


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("coop", {"epochs": 3}),
        ("lp++", {}),
        ("clip-lora", {"iterations_per_shot": 3, "lr": 1e-2}),
        ("clip-adapter", {"epochs": 5, "lr": 1e-2}),
        ("cocoop", {"epochs": 1, "batch_size": 4}),
    ],
)
def test_the_saved_classifier_scores_as_the_fitted_learner(method, options, tmp_path):
    encoder = micro_clip()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    data = labelled(encoder)
    model = fit_exported_classifier(encoder, data, method, options=options)
    learner = build_learner(method, encoder, options)
    learner.set_class_names(CLASS_NAMES)
    learner.fit(data.data, data.labels)
    query = labelled(encoder, 2, seed=1).data
    with torch.no_grad():
        torch.testing.assert_close(model.logits(query), learner.logits(query), atol=1e-4, rtol=1e-4)
    path = save_checkpoint(tmp_path / "m.safetensors", model, classifier_metadata("clip", model))
    loaded, meta = load_learner(path)
    expected = "cocoop-classifier" if method == "cocoop" else "classifier"
    assert meta["learner"] == expected and loaded.class_names == CLASS_NAMES
    with torch.no_grad():
        torch.testing.assert_close(loaded.logits(query), model.logits(query), atol=1e-5, rtol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # encoder untouched


def test_finetune_command_fits_and_saves_lp_plus_plus(tmp_path):
    from fewshot.tools.shapes import make_folder

    folder = make_folder(tmp_path / "shapes", per_class=3, seed=0)
    out = tmp_path / "lp.safetensors"
    argv = ["finetune", str(folder), "--encoder", "clip", "--model", "micro-clip", "--strategy", "lp++"]
    result = CliRunner().invoke(app, [*argv, "--out", str(out), "--device", "cpu", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["strategy"] == "lp++" and report["classes"] == 24 and report["epochs_done"] == 0
    assert report["best_val_accuracy"] > 0.5  # the shipped micro-CLIP knows these shapes
    model, meta = load_learner(out)
    assert meta["learner"] == "classifier" and len(model.class_names) == 24


@pytest.mark.parametrize("strategy", ["clip-adapter", "cocoop"])
def test_finetune_saves_a_model_that_predict_uses_without_a_support_set(strategy, tmp_path):
    from fewshot.tools.shapes import make_folder

    folder = make_folder(tmp_path / "shapes", per_class=2, seed=0)
    out = tmp_path / f"{strategy}.safetensors"
    argv = ["finetune", str(folder), "--encoder", "clip", "--model", "micro-clip", "--strategy", strategy]
    argv += ["--out", str(out), "--device", "cpu", "--json", "--no-progress"]
    trained = CliRunner().invoke(app, argv)
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["strategy"] == strategy
    query = folder / "red circle"
    predicted = CliRunner().invoke(app, ["predict", "-c", str(out), "-q", str(query), "--workers", "0"])
    assert predicted.exit_code == 0, predicted.output
    rows = [line.split(",") for line in predicted.stdout.strip().splitlines()[1:]]
    assert len(rows) == len(list(query.iterdir()))
    assert sum(row[1] == "red circle" for row in rows) >= len(rows) / 2  # the micro-CLIP knows its shapes
