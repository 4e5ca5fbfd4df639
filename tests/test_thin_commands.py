"""`fewshot label`, `predict` and `index`: each command is parse -> one library call -> print.

The library calls refuse bad settings with the commands' messages, before any model loads,
and the command modules hold no branch on a model's name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fewshot.errors import FewshotError

CLI = Path(__file__).resolve().parents[1] / "cli"
THIN = ["label.py", "predict.py", "index.py", "index_checks.py"]


def _functions(name: str):
    tree = ast.parse((CLI / name).read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


@pytest.mark.parametrize("name", THIN)
def test_no_command_compares_a_name_with_a_string(name):
    for node in ast.walk(ast.parse((CLI / name).read_text())):
        if isinstance(node, ast.Compare):
            constants = [c for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
            assert not any(isinstance(c.value, str) for c in constants), ast.unparse(node)


@pytest.mark.parametrize("name", THIN)
def test_command_functions_are_short(name):
    for function in _functions(name):
        assert function.end_lineno - function.lineno + 1 <= 40, function.name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"labels": "cat"}, "--labels gives one class ('cat')"),
        ({"labels": "cat,dog", "class_embeddings": "x.pt"}, "--class-embeddings already holds"),
        ({"labels": "cat,dog", "templates": "no-such-templates"}, "templates"),
        ({}, "either --labels"),
    ],
)
def test_label_with_clip_refuses_bad_classes_before_loading_clip(options, message, tmp_path, monkeypatch):
    import fewshot.encoders.clip as clip
    from fewshot.workflows.label import label_with_clip

    monkeypatch.setattr(clip, "ClipEncoder", None)  # building one would fail differently
    with pytest.raises(FewshotError, match=message.replace("(", r"\(").replace(")", r"\)")):
        label_with_clip(tmp_path, out=tmp_path / "labels.csv", **options)
    assert not (tmp_path / "labels.csv").exists()


def test_search_index_refuses_bad_queries_before_loading(tmp_path):
    from fewshot.workflows.index import search_index

    with pytest.raises(FewshotError, match="exactly one of --text or --image"):
        search_index(tmp_path)
    with pytest.raises(FewshotError, match="exactly one of --text or --image"):
        search_index(tmp_path, text="red", image=tmp_path / "a.png")
    with pytest.raises(FewshotError, match="-k must be >= 1; got 0"):
        search_index(tmp_path, text="red", k=0)


def test_build_index_refuses_model_options_the_encoder_does_not_take(tmp_path):
    from fewshot.workflows.index import make_encoder

    with pytest.raises(FewshotError, match="--model and --pretrained apply to the clip encoder only"):
        make_encoder("conv4", "ViT-B-32", None, "cpu")
    with pytest.raises(FewshotError, match="unknown encoder 'nope'"):
        make_encoder("nope", None, None, "cpu")


def test_predict_folder_refuses_top_k_0_before_loading(tmp_path):
    from fewshot.workflows.predict import predict_folder

    with pytest.raises(FewshotError, match="--top-k must be at least 1"):
        predict_folder([tmp_path], checkpoint=tmp_path / "absent.safetensors", top_k=0)
