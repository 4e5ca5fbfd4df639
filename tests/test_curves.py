"""Learning curves, data efficiency and the negative-transfer gap (`fewshot curves`)."""

from __future__ import annotations

import json
import math

import pytest
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.errors import FewshotError
from fewshot.transfer.curves import (
    area_under_curve,
    negative_transfer_gap,
    steps_to_fraction,
    t_interval,
)
from fewshot.workflows.curves import parse_sizes


def test_convergence_measures_on_known_curves():
    curve = [(10, 0.2), (20, 0.6), (30, 0.85), (40, 0.9)]
    assert steps_to_fraction(curve) == 30  # 0.85 >= 0.9 * 0.9
    assert steps_to_fraction(curve, 0.5) == 20
    assert area_under_curve(curve) == pytest.approx((0.4 + 0.725 + 0.875) * 10 / 30)
    assert area_under_curve([(5, 0.7)]) == 0.7


def test_t_interval_uses_student_t():
    mean, half = t_interval([0.5, 0.7])
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(12.7062 * math.sqrt(0.02) / math.sqrt(2), rel=1e-4)
    assert math.isnan(t_interval([0.3])[1])


def test_negative_transfer_gap_sign_on_a_constructed_case():
    hurt = negative_transfer_gap([0.60, 0.62, 0.61], [0.80, 0.81, 0.79])  # the source hurts
    assert hurt["gap"] == pytest.approx(0.19) and hurt["gap"] > hurt["ci95"]
    assert hurt["verdict"].startswith("negative transfer: training from scratch makes 19.0 points fewer")
    helped = negative_transfer_gap([0.9, 0.92, 0.91], [0.5, 0.55, 0.6])
    assert helped["gap"] < 0 and helped["verdict"].startswith("positive transfer: pretraining makes")
    noisy = negative_transfer_gap([0.5, 0.9], [0.6, 0.7])
    assert "within the noise" in noisy["verdict"]


def test_sizes_are_parsed_and_checked():
    assert parse_sizes("all,5,1") == [1, 5, None]
    for bad in ("0", "2,2", "x"):
        with pytest.raises(FewshotError, match="--sizes"):
            parse_sizes(bad)


def test_curves_command_end_to_end(tmp_path):
    out, plot = tmp_path / "c.json", tmp_path / "c.png"
    argv = ["curves", "digits", "-e", "protonet-conv4-omniglot", "--sizes", "1,3", "--seeds", "2"]
    argv += [
        "--epochs",
        "2",
        "--test-per-class",
        "4",
        "--out",
        str(out),
        "--plot",
        str(plot),
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s["size"] for s in report["sizes"]] == ["1", "3"]
    assert len(report["runs"]) == 2 * 2 * 2 and report["test_items"] == 40
    for size in report["sizes"]:
        pre, scr = size["pretrained"], size["scratch"]
        gap = (1 - pre["accuracy"]["mean"]) - (1 - scr["accuracy"]["mean"])
        assert size["negative_transfer"]["gap"] == pytest.approx(gap)
    runs = {(r["init"], r["size"], r["seed"]): r for r in report["runs"]}
    # pretrained and scratch runs of a seed and size train on the same number of items
    assert runs[("pretrained", "3", 1)]["train_items"] == runs[("scratch", "3", 1)]["train_items"] == 30
    assert report["learning_curves"]["size"] == "3"
    assert report["learning_curves"]["pretrained"]["steps"] == [1, 2]
    assert "   3 per class: " in result.output  # the table and a verdict per size
    again = CliRunner().invoke(app, [*argv, "--json"])
    assert json.loads(again.output)["sizes"] == report["sizes"]  # same seed, same numbers


def test_freeze_batchnorm_reaches_pretrained_runs_only():
    from fewshot.workflows.curves import CurvesRequest, _config

    r = CurvesRequest(data="digits", encoder="conv4", freeze_batchnorm=True, lr=1e-4, scratch_lr=1e-3)
    pretrained, scratch = _config(r, "pretrained", 1, "cpu"), _config(r, "scratch", 1, "cpu")
    assert pretrained.freeze_batchnorm and not scratch.freeze_batchnorm
    assert (pretrained.lr, scratch.lr) == (1e-4, 1e-3) and pretrained.seed == r.seed + 1
    assert not _config(CurvesRequest(data="digits", encoder="conv4"), "pretrained", 0, "cpu").freeze_batchnorm
