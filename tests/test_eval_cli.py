"""`fewshot eval` and `fewshot compare` on tiny data: seeded untrained models, embedding files,
episode files that impose their settings, valid JSON, and the table's wording."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from fewshot_cli.app import app
from fewshot_cli.evaluate import episode_rate, json_line
from typer.testing import CliRunner

from fewshot.data.embeddings import save_embeddings

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity (which Python's json accepts, but JSON does not)."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from fewshot.zeroshot.micro_clip import make_folder

    return make_folder(tmp_path_factory.mktemp("eval-cli") / "imgs", per_class=3, size=32)


@pytest.fixture
def features(tmp_path):
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(4, 8, generator=g).repeat_interleave(6, 0) + 0.3 * torch.randn(24, 8, generator=g)
    return save_embeddings(
        tmp_path / "feats.npz", vectors, torch.arange(4).repeat_interleave(6), list("abcd")
    )


def test_embedding_file_uses_the_identity_encoder_and_says_so(features):
    args = ["eval", "--dataset", features, "--subset", "all", "--ways", 2, "--queries", 2, "--episodes", 5]
    report = strict_json(invoke(*args, "--json").stdout)
    assert report["encoder"] == "identity" and "identity" in report["model"]
    table = invoke(*args)
    assert table.exit_code == 0, table.output
    assert "identity encoder: the embedding file's features" in table.output


def test_untrained_encoder_is_seeded(folder):
    args = ["eval", "--encoder", "conv4", "--dataset", folder, "--subset", "all", "--image-size", 16]
    args += ["--ways", 5, "--queries", 1, "--episodes", 10, "--json"]
    first, second = (strict_json(invoke(*args).stdout) for _ in range(2))
    assert (first["accuracy"], first["ci95"]) == (second["accuracy"], second["ci95"])
    assert "seed 0" in first["model"]


def test_episode_file_settings_cannot_be_contradicted(features, tmp_path):
    episodes = tmp_path / "ep.npz"
    base = ["eval", "--dataset", features, "--subset", "all"]
    saved = invoke(*base, "--ways", 3, "--queries", 2, "--episodes", 4, "--save-episodes", episodes, "--json")
    assert saved.exit_code == 0, saved.output
    refused = invoke(*base, "--episode-file", episodes, "--ways", 20, "--shots", 5)
    assert refused.exit_code == 2
    assert "--ways 20 and --shots 5 contradict" in refused.stderr
    assert "4 3-way 1-shot episodes with 2 queries" in refused.stderr
    agreed = invoke(*base, "--episode-file", episodes, "--ways", 3)
    assert agreed.exit_code == 0, agreed.output
    assert "3-way 1-shot, 2 queries" in agreed.output and "(its settings)" in agreed.output


def test_json_is_valid_even_with_nan():
    assert json_line({"accuracy": float("nan"), "ci95": float("inf"), "n": 3}) == (
        '{"accuracy": null, "ci95": null, "n": 3}'
    )


def test_slow_rates_are_not_zero():
    assert episode_rate(1, 4.0) == "0.25"
    assert episode_rate(200, 2.0) == "100"
    assert episode_rate(5, 0.0) == "-"


def test_pretrained_clip_is_reported_as_pretrained(folder, caplog):
    with caplog.at_level(logging.WARNING):
        result = invoke(
            "eval", "--encoder", "clip", "--model", "micro-clip", "--dataset", folder, "--subset", "all",
            "--ways", 3, "--queries", 1, "--episodes", 3,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    model_line = next(line for line in result.output.splitlines() if line.startswith("model"))
    assert "pretrained CLIP micro-clip" in model_line and "untrained" not in model_line


def test_random_clip_is_quiet_when_we_load_our_own_weights(caplog):
    from fewshot.encoders.clip import ClipEncoder

    with caplog.at_level(logging.WARNING):
        ClipEncoder(model="micro-clip", pretrained=None, device="cpu")
    assert "No pretrained weights" not in caplog.text


def test_compare_refuses_adapting_methods_and_a_file_for_episodes(features, tmp_path):
    refused = invoke("compare", "--methods", "protonet,maml", "--encoder", "identity", "--dataset", features)
    assert refused.exit_code == 2
    assert "maml adapts its encoder, and compare runs frozen-encoder methods only" in refused.stderr
    assert "protonet" in refused.stderr
    a_file = tmp_path / "a.txt"
    a_file.write_text("x")
    result = invoke("compare", "--save-episodes", a_file, "--encoder", "identity", "--dataset", features)
    assert result.exit_code == 2 and "is a file: give a folder" in result.stderr
    assert a_file.read_text() == "x"


def test_compare_table_never_prints_nan_and_plot_bars_stop_at_100(tmp_path):
    from fewshot.transfer.compare import CompareRow, _clipped_errors, format_table, plot_rows

    rows = [
        CompareRow("a", 1, 5, 15, 0.99, 0.05, 10, 0.1, "x"),
        CompareRow("a", 2, 5, 15, float("nan"), float("nan"), 0, 0.1, "y"),
    ]
    table = format_table(rows)
    assert "nan" not in table.lower() and "n/a" in table
    assert _clipped_errors([99.0, 3.0], [5.0, 5.0]) == [[5.0, 3.0], [1.0, 5.0]]
    title = "a very long title that would run past the edge of the figure " * 2
    assert plot_rows(rows[:1], tmp_path / "p.png", title).stat().st_size > 0
