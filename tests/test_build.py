"""`fewshot.build` (user strings -> models) and the registries it reads, discovery included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fewshot.build import build_encoder, build_learner, build_model, rewrap
from fewshot.errors import FewshotError


def test_an_option_the_encoder_does_not_take_is_refused_by_name():
    with pytest.raises(FewshotError, match="--model does not apply to the conv4 encoder"):
        build_encoder("conv4", options={"model": "ViT-B-32"})
    with pytest.raises(FewshotError, match="neither a checkpoint file nor an encoder name .*conv4"):
        build_encoder("no-such-encoder")


def test_encoders_are_sized_by_the_data_they_declare():
    source = build_encoder("conv4", data_shape=(4, 3, 32, 32))
    assert source.encoder.config()["in_channels"] == 3 and source.encoder.config()["image_size"] == 32
    assert source.preprocessing == {"image_size": 32, "channels": 3, "invert": False}
    identity = build_encoder("identity", data_shape=(4, 7))
    assert identity.encoder.embed_dim == 7 and identity.meta["weights"].startswith("none")
    assert build_encoder("conv4").encoder.config()["image_size"] == 84  # no data: 3 x 84 x 84


def test_the_same_seed_gives_the_same_weights_and_none_uses_the_callers_generator():
    a = build_encoder("conv4", seed=3).encoder.state_dict()
    b = build_encoder("conv4", seed=3).encoder.state_dict()
    c = build_encoder("conv4", seed=4).encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    torch.manual_seed(3)
    d = build_encoder("conv4", seed=None).encoder.state_dict()
    assert all(torch.equal(a[k], d[k]) for k in a)


def test_learner_options_are_checked_against_the_constructor():
    encoder = build_encoder("identity", data_shape=(2, 5)).encoder
    with pytest.raises(FewshotError, match="unknown metric 'manhattan'; choose one of: euclidean, cosine"):
        build_learner("protonet", encoder, {"metric": "manhattan"})
    with pytest.raises(FewshotError, match="--metric does not apply to simpleshot"):
        build_learner("simpleshot", encoder, {"metric": "cosine"})
    with pytest.raises(FewshotError, match="--inner-lr does not apply to protonet"):
        build_learner("protonet", encoder, {"inner_lr": 0.1})
    assert build_learner("protonet", encoder, {"metric": None}).metric == "euclidean"  # None: not set


def test_context_goes_only_to_learners_that_take_it_and_defaults_follow_the_encoder():
    encoder = build_encoder("conv4", data_shape=(2, 1, 28, 28)).encoder
    assert build_learner("maml", encoder, context={"ways": 3}).ways == 3
    assert build_learner("protonet", encoder, context={"ways": 3}).metric == "euclidean"

    class WithTemperature(torch.nn.Module):  # as CLIP: a learned zero-shot temperature
        logit_scale = 50.0

    learner = build_learner("protonet", WithTemperature())
    assert (learner.metric, learner.scale) == ("cosine", 50.0)
    assert build_learner("protonet", WithTemperature(), {"metric": "euclidean"}).metric == "euclidean"


def test_a_checkpoint_is_reused_by_embedding_learners_only(tmp_path):
    from fewshot.checkpoints import learner_metadata, save_checkpoint
    from fewshot.encoders.conv4 import Conv4
    from fewshot.learners.protonet import ProtoNet

    path = tmp_path / "proto.safetensors"
    learner = ProtoNet(Conv4(1, 8, 28))
    save_checkpoint(path, learner, learner_metadata("protonet", "conv4", learner))
    wrapped, meta = build_model("simpleshot", path)
    assert meta["learner"] == "simpleshot" and meta["wrapped_from"] == "protonet"
    source = build_encoder(path)
    assert rewrap(source, "protonet", {"metric": "cosine"}).metric == "cosine"
    with pytest.raises(FewshotError, match="maml adapts its encoder and cannot reuse a protonet"):
        build_model("maml", path)
    with pytest.raises(FewshotError, match="--encoder resnet12 conflicts with the checkpoint"):
        build_model(None, path, "resnet12")


def test_registry_discovers_decorated_classes_without_importing_them(tmp_path, monkeypatch):
    package = tmp_path / "plugins_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from fewshot.registry import Registry\nTHINGS = Registry('thing')\n"
        "THINGS.discover(__name__, 'THINGS.register')\n"
    )
    (package / "widget.py").write_text(
        'from plugins_pkg import THINGS\n\n\n@THINGS.register("widget")\nclass Widget:\n    pass\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugins_pkg

    assert plugins_pkg.THINGS.names() == ["widget"] and "plugins_pkg.widget" not in sys.modules
    widget = plugins_pkg.THINGS.get("widget")  # importing runs the decorator: no duplicate error
    assert widget.__name__ == "Widget" and plugins_pkg.THINGS.get("widget") is widget
    with pytest.raises(ValueError, match="already registered"):
        plugins_pkg.THINGS.register("widget", dict)
    for name in ("plugins_pkg", "plugins_pkg.widget"):
        sys.modules.pop(name, None)


def test_a_learner_is_one_file_matching_is_registered_by_its_own_module():
    import fewshot.learners as learners
    from fewshot.learners import LEARNERS

    registry_file = Path(learners.__file__).read_text()
    assert "matching" not in registry_file.lower()  # nothing outside matching.py names it
    assert (
        "matching" in LEARNERS.names() and LEARNERS.get("matching").__module__ == "fewshot.learners.matching"
    )


def test_named_data_sets_come_from_the_catalog(monkeypatch):
    from fewshot.data import loading
    from fewshot.data.catalog import DATASETS
    from fewshot.data.tensors import LabeledTensors

    class Toy:
        default_split, default_subset, image_size, takes_transform = "only", "test", 8, False

        def load(self, subset, split, data_dir, image_size, seed):
            n = 20
            data = torch.arange(n * 4, dtype=torch.float32).reshape(n, 4)
            return LabeledTensors(data, torch.arange(n), [f"c{i}" for i in range(n)], {"subset": subset})

        def train_val_subsets(self, split, trainval):
            return "train", None

    monkeypatch.setitem(DATASETS._entries, "toy", Toy)
    assert loading.load_dataset("toy", "train").info["subset"] == "train"
    train, val = loading.load_train_val("toy", seed=0)
    assert (train.n_classes, val.n_classes) == (18, 2)  # 10% of the classes held out
    assert loading.load_train_val("toy", trainval=True)[1] is None
    assert loading.default_subset("toy") == "test" and loading.default_subset("/some/folder") == "all"
    with pytest.raises(FewshotError, match="a transform applies to image folders only; toy is preprocessed"):
        loading.load_dataset("toy", "train", transform=lambda image: image)


def test_compare_leaves_out_untrained_heads_unless_the_checkpoint_trained_one():
    from fewshot.learners import LEARNERS
    from fewshot.workflows.compare import default_methods

    with_heads = [n for n in LEARNERS.names() if LEARNERS.get(n).trained_head]
    assert "relation" in with_heads and "feat" in with_heads
    plain = default_methods(has_text=False)
    assert not set(with_heads) & set(plain) and "protonet" in plain
    assert "feat" in default_methods(has_text=False, trained="feat")
