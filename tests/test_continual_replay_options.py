"""Replay's options on the tiny synthetic stream: augmented copies are shifted (and mirrored)
images, the distillation targets are the model's own logits at the end of an experience, the
heads' re-fit removes a bias towards new classes and leaves the encoder alone, bad values are
refused, and every option keeps the same seed -> the same numbers."""

from __future__ import annotations

import pytest
import torch
from continual_streams import encoder, squares

from fewshot.continual.augment import augment_images
from fewshot.continual.base import TrainSettings
from fewshot.continual.model import ContinualModel
from fewshot.continual.rebalance import memory_features, refit_heads
from fewshot.continual.replay import Replay
from fewshot.continual.scenarios import class_incremental
from fewshot.continual.trainer import ContinualRun, train_continual
from fewshot.data.tensors import LabeledTensors
from fewshot.encoders.base import IdentityEncoder
from fewshot.errors import FewshotError

SETTINGS = TrainSettings(epochs=4, lr=0.05, batch_size=8, precision="fp32")


def run(seed: int = 0, **options) -> dict:
    stream = class_incremental(squares(6, 24, 0), squares(6, 10, 1), 3, seed=0)
    task = ContinualRun(stream, Replay(memory=12, **options), encoder(seed), SETTINGS, seed=seed)
    return train_continual(task, None, {}, progress=False)


@torch.no_grad()
def memory_logits(model: ContinualModel, data: LabeledTensors) -> torch.Tensor:
    return model.head_logits(memory_features(model, data, "cpu"))


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`x (c, h, w)` moved down `dy` and right `dx` pixels, zero-filled."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def as_some_copy(original: torch.Tensor, copy: torch.Tensor, flips: bool) -> tuple[int, int, bool] | None:
    for flip in (False, True) if flips else (False,):
        source = original.flip(-1) if flip else original
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                if torch.equal(shifted(source, dy, dx), copy):
                    return dy, dx, flip
    return None


@pytest.mark.parametrize("how", ["shift", "shift-flip"])
def test_augmented_copies_are_shifted_and_mirrored_images(how):
    x = torch.rand(64, 1, 28, 28)
    out = augment_images(x, how, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    moves = [as_some_copy(a, b, how == "shift-flip") for a, b in zip(x, out, strict=True)]
    assert all(m is not None for m in moves)  # every copy is its image moved by <= 2 px
    assert len({m[:2] for m in moves}) > 10  # ... by many different moves
    assert any(m[2] for m in moves) == (how == "shift-flip")
    again = augment_images(x, how, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert augment_images(x, "none", torch.Generator()) is x
    features = torch.rand(8, 16)  # embeddings: nothing to shift
    assert augment_images(features, how, torch.Generator()) is features


def test_distillation_targets_are_the_models_logits_on_the_memory():
    stream = class_incremental(squares(6, 24, 0), squares(6, 10, 1), 3, seed=0)
    task = ContinualRun(stream, Replay(memory=12, distill=0.5), encoder(0), SETTINGS, seed=0)
    task.run_unit(0)
    strategy = task.strategy
    assert strategy.targets.shape == (12, 6)
    assert strategy.target_classes.tolist() == task.model.class_mask().tolist()
    expected = memory_logits(task.model, strategy.store.data())
    assert torch.allclose(strategy.targets, expected)
    # the loss adds distill x MSE on the replayed part only: zero where the logits match
    x = strategy.store.data().data
    batch = torch.cat([x[:4], x]), torch.cat([strategy.store.labels[:4], strategy.store.labels])
    strategy._drawn = strategy.targets
    task.model.eval()
    strategy.replay_ratio = 3  # 4 current + 12 replayed
    strategy.distill = 0.0
    plain = strategy.loss(task.model, *batch, stream.experiences[1])
    strategy.distill = 0.5
    matched = strategy.loss(task.model, *batch, stream.experiences[1])
    assert torch.allclose(matched, plain)
    strategy._drawn = strategy.targets + 2.0
    assert torch.allclose(strategy.loss(task.model, *batch, stream.experiences[1]), plain + 0.5 * 4.0)


def test_refitting_the_heads_on_a_balanced_memory_removes_a_bias_to_new_classes():
    images = squares(6, 10, 0)  # flattened pixels: linearly separable features
    data = LabeledTensors(images.data.flatten(1), images.labels, images.class_names)
    model = ContinualModel(IdentityEncoder(256), 6)
    model.add_classes([0, 1, 2])
    model.add_classes([3, 4, 5])
    with torch.no_grad():
        model.heads[1].bias.fill_(20.0)  # every item is now called a new class
    biased = memory_logits(model, data).argmax(-1)
    assert (biased >= 3).all()
    z = memory_features(model, data, "cpu")
    refit_heads(model, z, data.labels, SETTINGS, torch.Generator().manual_seed(0), epochs=40)
    fitted = memory_logits(model, data).argmax(-1)
    assert (fitted < 3).sum() >= 20  # the old classes are predicted again
    assert (fitted == data.labels).float().mean() >= 0.8


def test_refitting_leaves_the_encoder_as_it_was():
    data = squares(6, 10, 0)
    model = ContinualModel(encoder(0), 6)
    model.add_classes([0, 1, 2, 3, 4, 5])
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head = model.heads[0].weight.clone()
    z = memory_features(model, data, "cpu")
    refit_heads(model, z, data.labels, SETTINGS, torch.Generator().manual_seed(0), epochs=3)
    assert not torch.equal(model.heads[0].weight, head)
    for k, v in model.encoder.state_dict().items():  # weights and BatchNorm statistics alike
        assert torch.equal(v, before[k])


def test_every_option_keeps_the_same_seed_the_same_numbers_and_still_learns():
    options = {"augment": "shift-flip", "distill": 0.3, "rebalance": 5, "replay_ratio": 2}
    first, again = run(**options), run(**options)
    assert first["accuracy_matrix"] == again["accuracy_matrix"]
    assert first["metrics"]["average_accuracy"] >= 0.6
    assert run(seed=1, **options)["accuracy_matrix"] != first["accuracy_matrix"]


@pytest.mark.parametrize(
    "options, flag",
    [
        ({"augment": "rotate"}, "--augment"),
        ({"distill": -1.0}, "--distill"),
        ({"rebalance": -2}, "--rebalance"),
        ({"replay_ratio": 0}, "--replay-ratio"),
    ],
)
def test_bad_replay_options_are_refused_naming_the_option(options, flag):
    with pytest.raises(FewshotError, match=flag):
        Replay(**options)
