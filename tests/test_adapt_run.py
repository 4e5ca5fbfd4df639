"""Adaptation runs on a known shift: UCI digits (16 px) -> the same digits rotated or blurred.

A Conv-4 with BatchNorm is trained on the source once (the shared source-only model); each
network method then adapts a copy of it and must beat source-only target accuracy on a shift
it is meant to fix: AdaBN on blur + contrast (a change of the input statistics), the
alignment and self-training methods on a 20-degree rotation (source-only is about 0.58).
"""

from __future__ import annotations

import copy

import pytest
import torch

from fewshot.adapt.config import AdaptConfig, Evaluation
from fewshot.adapt.run import adapt, judge
from fewshot.data.loading import load_dataset
from fewshot.data.shifts import shift_data
from fewshot.data.tensors import LabeledTensors
from fewshot.encoders import create_encoder
from fewshot.errors import FewshotError

pytest.importorskip("sklearn", reason="the digits are scikit-learn's bundled copy")
pytestmark = pytest.mark.usefixtures("one_thread")

SHIFTS = {"blur-contrast": {"sigma": 1.0, "contrast": 0.4}, "rotation": {"degrees": 20.0}}


def _config(method: str, **kw) -> AdaptConfig:
    values = {"source_epochs": 0, "epochs": 6, "batch_size": 32, "lr": 0.05, "device": "cpu"}
    return AdaptConfig(method=method, **{**values, **kw})


@pytest.fixture(scope="module")
def digits():
    full = load_dataset("digits", "train", image_size=16)
    keep = torch.arange(0, len(full), 3)
    source = LabeledTensors(full.data[keep], full.labels[keep], full.class_names, {"dataset": "digits/3"})
    test = load_dataset("digits", "test", image_size=16)
    return source, {name: shift_data(test, name, **opts) for name, opts in SHIFTS.items()}


@pytest.fixture(scope="module")
def source_only(digits):
    """The source-only model, trained once: 8 epochs on the source (no target involved)."""
    source, targets = digits
    torch.manual_seed(0)
    encoder = create_encoder("conv4", in_channels=1, hidden=16, image_size=16)
    config = _config("mcc", source_epochs=8, epochs=1)
    _, _, models = adapt(encoder, source, targets["rotation"], config, progress=False)
    return models["source-only"]


def _adapt(source_only, source, target, method, **kw):
    torch.manual_seed(0)  # augmentations and batches draw from torch's generator: the same in any test order
    model = copy.deepcopy(source_only)
    return adapt(model.encoder, source, target, _config(method, **kw), progress=False, init=model)


@pytest.mark.parametrize(
    ("method", "shift"),
    [
        ("adabn", "blur-contrast"),
        ("dann", "rotation"),
        ("cdan", "rotation"),
        ("cdan-e", "rotation"),
        ("mcc", "rotation"),
        ("self-training", "rotation"),
        ("fixmatch", "rotation"),
    ],
)
def test_each_network_method_beats_source_only_on_its_shift(digits, source_only, method, shift):
    source, targets = digits
    _, result, models = _adapt(source_only, source, targets[shift], method)
    # FixMatch gains least in 6 epochs here (59.3% vs 57.3% source-only, seed 0)
    margin = 0.015 if method == "fixmatch" else 0.03
    assert result.adapted.accuracy > result.source_only.accuracy + margin, (method, result)
    assert not result.negative_transfer and result.kept == "adapted"
    assert 1 <= result.best_unit <= result.units  # chosen by the validator, not by labels
    # the source-only model it reports is the one it started from
    p = models["source-only"](targets[shift].data).argmax(-1)
    assert float((p == targets[shift].labels).float().mean()) == pytest.approx(result.source_only.accuracy)


def test_the_same_seed_gives_the_same_adapted_model(digits, source_only):
    source, targets = digits
    a = _adapt(source_only, source, targets["rotation"], "dann", epochs=2)[0]
    b = _adapt(source_only, source, targets["rotation"], "dann", epochs=2)[0]
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def test_source_only_is_reported_beside_adapted_and_keep_chooses_the_output(digits, source_only):
    source, _ = digits
    inverted = shift_data(load_dataset("digits", "test", image_size=16), "inversion")
    kept, result, models = _adapt(source_only, source, inverted, "dann", epochs=2)
    fell = result.adapted.accuracy < result.source_only.accuracy
    assert result.negative_transfer == fell
    assert (
        f"{result.source_only.accuracy:.4f} (source-only) to {result.adapted.accuracy:.4f}" in result.reason
    )
    assert kept is models["source-only" if fell else "adapted"]
    forced = _adapt(source_only, source, inverted, "dann", epochs=2, keep="source-only")
    assert forced[1].kept == "source-only" and forced[0] is forced[2]["source-only"]


def test_without_target_labels_the_validator_decides():
    before = Evaluation(None, {"im": 1.0, "entropy": -1.0, "snd": 3.0})
    worse = Evaluation(None, {"im": 0.5, "entropy": -0.1, "snd": 3.5})
    assert judge(before, worse, "im")[0] and "im score fell" in judge(before, worse, "im")[1]
    assert not judge(before, worse, "entropy")[0]
    labelled = judge(Evaluation(0.5, before.scores), Evaluation(0.6, worse.scores), "im")
    assert not labelled[0]  # labels, when given, are the truth


def test_batchnorm_methods_refuse_an_encoder_without_batchnorm(digits):
    from fewshot.encoders.base import IdentityEncoder

    source, targets = digits
    flat = LabeledTensors(source.data.flatten(1), source.labels, source.class_names)
    target = targets["rotation"].data.flatten(1)
    with pytest.raises(FewshotError, match="--method adabn re-estimates BatchNorm statistics"):
        adapt(IdentityEncoder(256), flat, target, _config("adabn"), progress=False)


def test_different_class_sets_are_refused(digits, source_only):
    source, targets = digits
    t = targets["rotation"]
    other = LabeledTensors(t.data, t.labels, [f"d{i}" for i in range(10)])
    with pytest.raises(FewshotError, match="different classes"):
        _adapt(source_only, source, other, "mcc")
