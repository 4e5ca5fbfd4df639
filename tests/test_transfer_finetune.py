"""Fine-tuning strategies: blocks, frozen/unfrozen parameters per phase, the loop, export."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fewshot.checkpoints import load_learner
from fewshot.data.tensors import LabeledTensors
from fewshot.encoders.base import Encoder
from fewshot.encoders.conv4 import Conv4
from fewshot.errors import FewshotError
from fewshot.learners.linear_probe import LinearProbe
from fewshot.learners.simpleshot import SimpleShot
from fewshot.transfer.export import fit_frozen_classifier
from fewshot.transfer.finetune import FinetuneConfig, finetune, split_items
from fewshot.transfer.strategies import (
    block_parameters,
    encoder_blocks,
    frozen_state,
    parameter_groups,
    set_trainable_blocks,
    trainable_blocks_at,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def pattern_images(n_classes: int = 4, per_class: int = 12, side: int = 16, seed: int = 0) -> LabeledTensors:
    """Class c: a bright 4x4 square at a class-specific place, plus noise. ``(n, 1, side, side)``."""
    g = torch.Generator().manual_seed(seed)
    x = 0.2 * torch.rand(n_classes * per_class, 1, side, side, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    for i, c in enumerate(labels.tolist()):
        r, col = divmod(c, 2)
        x[i, 0, 2 + 8 * r : 6 + 8 * r, 2 + 8 * col : 6 + 8 * col] += 0.8
    return LabeledTensors(x, labels, [f"shape{c}" for c in range(n_classes)], {"dataset": "patterns"})


def small_conv4() -> Conv4:
    torch.manual_seed(0)
    return Conv4(in_channels=1, hidden=8, image_size=16)


class TwoLayer(Encoder):
    """No known block layout: the fallback uses the top-level children."""

    def __init__(self):
        super().__init__()
        self.embed_dim = 4
        self.first = nn.Linear(6, 5)
        self.second = nn.Linear(5, 4)

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


class FakeVisual(nn.Module):
    """open_clip's layout: stem params first, transformer.resblocks, then ln_post/proj."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Parameter(torch.randn(4, 4))
        self.conv1 = nn.Linear(4, 4)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.ln_post = nn.LayerNorm(4)


class FakeClip(Encoder):
    def __init__(self):
        super().__init__()
        self.embed_dim = 4
        self.model = nn.Module()
        self.model.visual = FakeVisual()
        self.model.text = nn.Linear(4, 4)

    def encode_text(self, texts):
        raise NotImplementedError


def test_blocks_of_known_encoders_and_fallback():
    conv = small_conv4()
    blocks = encoder_blocks(conv)
    assert len(blocks) == 4 and all(b is conv.blocks[i] for i, b in enumerate(blocks))
    two = TwoLayer()
    assert encoder_blocks(two) == [two.first, two.second]
    clip = FakeClip()
    visual = clip.model.visual
    assert encoder_blocks(clip) == list(visual.transformer.resblocks)
    groups = block_parameters(clip)
    ids = [{id(p) for p in g} for g in groups]
    assert id(visual.conv1.weight) in ids[0]  # stem goes with the first block
    assert id(visual.proj) in ids[-1] and id(visual.ln_post.weight) in ids[-1]  # head side with the last
    assert sum(len(g) for g in groups) == len(list(visual.parameters()))
    set_trainable_blocks(clip, 3)
    assert all(p.requires_grad for p in visual.parameters())
    assert not any(p.requires_grad for p in clip.model.text.parameters())  # the text tower stays frozen


def test_schedules():
    assert [trainable_blocks_at("full", 4, 0, e, 2) for e in range(3)] == [4, 4, 4]
    assert [trainable_blocks_at("partial", 4, 3, e, 2) for e in range(3)] == [1, 1, 1]
    assert [trainable_blocks_at("gradual", 4, 0, e, 2) for e in range(12)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        4,
        4,
    ]
    assert [trainable_blocks_at("gradual", 4, 2, e, 1) for e in range(5)] == [0, 1, 2, 2, 2]
    with pytest.raises(FewshotError):
        trainable_blocks_at("partial", 4, 5, 0, 1)
    with pytest.raises(FewshotError):
        trainable_blocks_at("sideways", 4, 0, 0, 1)


def test_discriminative_learning_rates():
    conv = small_conv4()
    head = nn.Linear(conv.embed_dim, 3)
    groups = parameter_groups(conv, head, lr=1e-3, head_lr=1e-2, decay=0.5, weight_decay=0.0)
    assert [g["lr"] for g in groups] == pytest.approx([1.25e-4, 2.5e-4, 5e-4, 1e-3, 1e-2])
    set_trainable_blocks(conv, 1)
    assert frozen_state(conv) == [True, True, True, False]


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}


@pytest.mark.parametrize(
    ("strategy", "freeze", "expected_trainable"),
    [("full", 0, [4, 4, 4]), ("partial", 2, [2, 2, 2]), ("gradual", 1, [0, 1, 2, 3, 3])],
)
def test_each_phase_trains_only_unfrozen_blocks(strategy, freeze, expected_trainable, tmp_path):
    data = pattern_images()
    config = FinetuneConfig(
        strategy=strategy,
        freeze=freeze,
        epochs=len(expected_trainable),
        unfreeze_every=1,
        batch_size=16,
        lr=1e-2,
        head_lr=1e-2,
        patience=0,
        device="cpu",
    )
    encoder = small_conv4()
    before = {"state": {k: v.clone() for k, v in encoder.state_dict().items()}}
    seen = []

    def check(record, model):
        n = record.trainable_blocks
        seen.append(n)
        assert record.frozen_blocks == [i < 4 - n for i in range(4)]
        after = _snapshot(model)
        for i in range(4):
            keys = [k for k in after if k.startswith(f"blocks.{i}.")]
            changed = any(not torch.equal(after[k], before["state"][k]) for k in keys)
            assert changed == (i >= 4 - n), (strategy, record.epoch, i)  # weights and BatchNorm stats
        before["state"] = after

    model, result = finetune(
        encoder, data, config, out=tmp_path / "ft.safetensors", on_epoch=check, progress=False
    )
    assert seen == expected_trainable
    assert result.epochs_done == len(expected_trainable)
    loaded, meta = load_learner(tmp_path / "ft.safetensors")
    assert meta["learner"] == "classifier" and meta["learner_config"]["class_names"] == data.class_names
    assert meta["finetune"]["strategy"] == strategy and meta["best_epoch"] == result.best_epoch
    x = data.data[:8]
    torch.testing.assert_close(loaded.logits(x), model.logits(x))


def test_full_finetune_learns_and_keeps_the_best_epoch(tmp_path):
    data = pattern_images(per_class=16)
    config = FinetuneConfig(epochs=12, lr=3e-3, head_lr=1e-2, batch_size=16, patience=4, device="cpu")
    model, result = finetune(small_conv4(), data, config, out=tmp_path / "m.safetensors", progress=False)
    assert result.best_val_accuracy >= 0.9
    best = max(r.val_accuracy for r in result.history)
    assert result.best_val_accuracy == best
    assert result.history[result.best_epoch].val_accuracy == best
    _, val = split_items(data, config.val_fraction, config.seed)
    from fewshot.transfer.finetune import accuracy

    assert accuracy(model, val, torch.device("cpu")) == pytest.approx(best)


def test_split_items_is_stratified_and_refuses_singletons():
    data = pattern_images(per_class=5)
    train, val = split_items(data, 0.2)
    assert torch.bincount(val.labels).tolist() == [1, 1, 1, 1]
    assert len(train) + len(val) == len(data)
    single = LabeledTensors(data.data[:5], torch.tensor([0, 0, 0, 0, 1]), ["a", "b"])
    with pytest.raises(FewshotError, match="at least 2"):
        split_items(single, 0.2)


def test_bad_config_is_refused():
    with pytest.raises(FewshotError):
        finetune(
            small_conv4(), pattern_images(), FinetuneConfig(strategy="all", device="cpu"), progress=False
        )
    with pytest.raises(FewshotError, match="blocks"):
        finetune(
            small_conv4(), pattern_images(), FinetuneConfig(strategy="partial", freeze=9), progress=False
        )


@pytest.mark.parametrize("method", ["linear-probe", "simpleshot"])
def test_frozen_classifiers_on_a_labelled_set_match_their_learners(method):
    data = pattern_images()
    encoder = small_conv4().eval()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = fit_frozen_classifier(encoder, data, method)
    z = encoder.encode_batched(data.data)
    if method == "linear-probe":
        learner = LinearProbe(encoder).fit_embeddings(z, data.labels)
    else:
        learner = SimpleShot(encoder, centering="base", base_mean=z.mean(0).tolist()).fit_embeddings(
            z, data.labels
        )
    with torch.no_grad():
        expected = learner.logits_embeddings(z)
        got = model.logits(data.data)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    if method == "simpleshot":  # the same logits up to the constant -scale * ||f||^2 = -scale
        torch.testing.assert_close(got - learner.scale, expected, rtol=1e-4, atol=1e-4)
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, before[k])


def test_head_starts_as_nearest_class_mean():
    from fewshot.learners.classifier import Classifier
    from fewshot.transfer.finetune import init_head_with_prototypes

    data = pattern_images()
    encoder = small_conv4().eval()
    model = Classifier(encoder, data.class_names)
    init_head_with_prototypes(model, data, torch.device("cpu"))
    z = encoder.encode_batched(data.data)
    means = torch.stack([z[data.labels == c].mean(0) for c in range(4)])
    nearest = torch.cdist(z, means).argmin(-1)
    with torch.no_grad():
        assert torch.equal(model.logits(data.data).argmax(-1), nearest)
    with pytest.raises(FewshotError, match="head_init"):
        FinetuneConfig(head_init="zeros").check()


def test_the_prototype_head_starts_at_a_sane_loss_whatever_the_feature_norm():
    """ImageNet features have norms in the tens: an unscaled ``2 mu`` head started at a loss
    near 1,000 and fine-tuning wrecked the pretrained weights in its first epoch."""
    import torch.nn.functional as F

    from fewshot.encoders.base import IdentityEncoder
    from fewshot.learners.classifier import Classifier
    from fewshot.transfer.finetune import init_head_with_prototypes

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 64, generator=g)
    labels = torch.arange(5).repeat_interleave(20)
    base = centres[labels] + 0.7 * torch.randn(100, 64, generator=g)
    losses, predictions = [], []
    for scale in (1.0, 30.0):
        data = LabeledTensors(scale * base, labels, [f"c{c}" for c in range(5)])
        model = Classifier(IdentityEncoder(64), data.class_names)
        init_head_with_prototypes(model, data, torch.device("cpu"))
        with torch.no_grad():
            logits = model.logits(data.data)
        losses.append(float(F.cross_entropy(logits, labels)))
        predictions.append(logits.argmax(-1))
    assert torch.equal(predictions[0], predictions[1])  # the same nearest-mean classifier
    assert losses[1] == pytest.approx(losses[0], rel=1e-3) and losses[1] < 2.0


def test_freeze_batchnorm_keeps_the_running_statistics_while_weights_train():
    data = pattern_images(per_class=8)
    stats = {}
    for freeze in (False, True):
        encoder = small_conv4()
        before = {k: v.clone() for k, v in encoder.state_dict().items()}
        config = FinetuneConfig(epochs=1, batch_size=8, freeze_batchnorm=freeze, device="cpu")
        finetune(encoder, data, config, progress=False)
        after = encoder.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        stats[freeze] = {k for k in changed if "running_" in k}
        assert any(k.endswith("weight") for k in changed)  # the network trained either way
    assert stats[False] and not stats[True]
