"""`fewshot compare --method-option NAME.KEY=VALUE`: typed from the learner's constructor, one
clear line for a bad item, and the options reach the learners (CoOp with no training steps
scores exactly as zero-shot with the same template, on the same episodes)."""

from __future__ import annotations

import json

import pytest

from fewshot.errors import FewshotError
from fewshot.workflows.compare_options import check_method_options, parse_method_options


def test_values_are_typed_from_the_constructor():
    options = parse_method_options(
        [
            "coop.epochs=20",
            "coop.lr=0.01",
            "coop.context=class",
            "coop.init=none",
            "tip-adapter.text=false",
            "tip-adapter.alphas=0.5, 1,2",
            "tip-adapter-f.train_steps=7",  # a parent's option, reached through **kwargs
            "lp++.steps=0",
        ]
    )
    assert options == {
        "coop": {"epochs": 20, "lr": 0.01, "context": "class", "init": None},
        "tip-adapter": {"text": False, "alphas": [0.5, 1.0, 2.0]},
        "tip-adapter-f": {"train_steps": 7},
        "lp++": {"steps": 0},
    }
    assert isinstance(options["coop"]["epochs"], int) and isinstance(options["coop"]["lr"], float)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("coop", "must be NAME.KEY=VALUE"),
        ("coop.=3", "must be NAME.KEY=VALUE"),
        ("knn.k=3", "unknown method 'knn'"),
        ("coop.rank=2", "coop has no option 'rank'; its options: context, n_ctx"),
        ("coop.epochs=1.5", "epochs takes"),
        ("tip-adapter.text=maybe", "text takes true or false"),
        ("clip-lora.lr=fast", "lr takes a number"),
        ("tim.metric=manhattan", "metric takes one of euclidean, cosine, got 'manhattan'"),
        ("transductive-finetune.head=dot", "head takes one of cosine, l2"),
    ],
)
def test_bad_items_are_refused_naming_the_item(item, message):
    with pytest.raises(FewshotError, match="--method-option") as err:
        parse_method_options([item])
    assert message in str(err.value)


def test_options_must_belong_to_compared_methods_and_choices():
    check_method_options({"coop": {"epochs": 1}}, ["zeroshot", "coop"])
    with pytest.raises(FewshotError, match="coop is not among the compared methods"):
        check_method_options({"coop": {"epochs": 1}}, ["zeroshot"])
    with pytest.raises(FewshotError, match="--method-option for coop: unknown context 'both'"):
        check_method_options({"coop": {"context": "both"}}, ["coop"])


@pytest.mark.usefixtures("one_thread")
def test_compare_cli_passes_options_to_the_clip_methods(tmp_path):
    """CoOp untrained from the template "a photo of a {}." equals zero-shot with that template
    (``photo``) on every episode; CLIP-LoRA runs when named; the table, JSON and PNG."""
    pytest.importorskip("open_clip")
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    from fewshot.tools.shapes import make_folder

    folder = make_folder(tmp_path / "shapes", per_class=4, seed=5, size=32)
    common = ["compare", "--encoder", "clip", "--model", "micro-clip", "--dataset", str(folder)]
    common += ["--methods", "zeroshot,coop,clip-lora", "--shots", "1,2", "--episodes", "2", "--ways", "3"]
    options = ["zeroshot.templates=photo", "coop.epochs=0", "clip-lora.iterations_per_shot=1"]
    common += [f"--method-option={o}" for o in options]
    runner = CliRunner()
    result = runner.invoke(app, [*common, "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["method"], r["shots"]): r for r in json.loads(result.output)}
    assert {m for m, _ in rows} == {"zeroshot", "coop", "clip-lora"}
    for k in (1, 2):
        assert rows[("coop", k)]["mean"] == rows[("zeroshot", k)]["mean"]
        assert rows[("coop", k)]["episode_file"] == rows[("clip-lora", k)]["episode_file"]
    plot = tmp_path / "clip.png"
    result = runner.invoke(app, [*common, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "clip-lora" in result.output and "2-shot" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, [*common, "--method-option", "coop.epochs=x"])
    assert result.exit_code == 2 and "epochs takes a whole number" in result.output
