"""ClipEncoder and ZeroShotClassifier on the real open_clip code path (tiny micro-clip architecture)."""

from __future__ import annotations

import pytest
import torch

from fewshot.errors import CheckpointError, FewshotError, ModelUnavailableError, NotFittedError

open_clip = pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def random_clip():
    from fewshot.encoders.clip import ClipEncoder

    torch.manual_seed(0)
    return ClipEncoder("micro-clip", pretrained=None, device="cpu")


def _images(encoder, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *encoder.input_size, generator=g)


def test_encoder_shapes_and_normalisation(random_clip):
    z = random_clip.encode(_images(random_clip))
    assert z.shape == (6, random_clip.embed_dim) and z.dtype == torch.float32
    assert torch.allclose(z.norm(dim=-1), torch.ones(6), atol=1e-5)
    t = random_clip.encode_text(["a red circle", "a blue square", "x"])
    assert t.shape == (3, random_clip.embed_dim)
    assert torch.allclose(t.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert random_clip.config() == {"model": "micro-clip", "pretrained": None, "precision": "auto"}
    assert random_clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)


def test_encoder_registered_and_built_from_registry():
    from fewshot.encoders import ENCODERS

    assert "clip" in ENCODERS.names()
    enc = ENCODERS.create("clip", model="micro-clip", pretrained=None, device="cpu")
    assert enc.input_size == (3, 32, 32)


def test_unknown_model_and_missing_weights_are_clear_errors(tmp_path):
    from fewshot.encoders.clip import ClipEncoder

    with pytest.raises(FewshotError, match="unknown CLIP model"):
        ClipEncoder("no-such-model", pretrained=None)
    with pytest.raises(ModelUnavailableError, match="neither an existing weights file nor a tag"):
        ClipEncoder("micro-clip", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(FewshotError, match="precision"):
        ClipEncoder("micro-clip", pretrained=None, precision="fp8")


def test_offline_download_fails_fast_with_instructions(monkeypatch):
    from fewshot.encoders.clip import ClipEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-fewshot-test")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", "/nonexistent-fewshot-test/hub")
    with pytest.raises(ModelUnavailableError, match="--pretrained PATH"):
        ClipEncoder("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")


def test_templates(tmp_path):
    from fewshot.zeroshot.templates import load_templates

    assert len(load_templates("imagenet")) == 80
    assert all(t.count("{}") == 1 for t in load_templates("imagenet"))
    assert len(load_templates("simple")) == 7
    f = tmp_path / "t.txt"
    f.write_text("# mine\na sketch of a {}.\n\n{} in the wild\n")
    assert load_templates(str(f)) == ["a sketch of a {}.", "{} in the wild"]
    f.write_text("no placeholder\n")
    with pytest.raises(FewshotError, match="exactly one"):
        load_templates(str(f))
    with pytest.raises(FewshotError, match="not a set"):
        load_templates("nope")


def test_class_names_parsing(tmp_path):
    from fewshot.zeroshot.classifier import parse_class_names

    assert parse_class_names("cat, dog ,bird") == ["cat", "dog", "bird"]
    f = tmp_path / "labels.txt"
    f.write_text("tabby cat\n# comment\nhot dog, with mustard\n")
    assert parse_class_names(labels_file=f) == ["tabby cat", "hot dog, with mustard"]
    with pytest.raises(FewshotError, match="duplicate"):
        parse_class_names("cat,cat")
    with pytest.raises(FewshotError):
        parse_class_names(",,")
    with pytest.raises(FewshotError, match="either"):
        parse_class_names()


@pytest.mark.parametrize("templates", ["simple", "imagenet"])
def test_logits_equal_open_clip_zero_shot_classifier(random_clip, templates):
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    from fewshot.zeroshot.classifier import ZeroShotClassifier
    from fewshot.zeroshot.templates import load_templates

    names = ["red circle", "blue square", "green triangle", "yellow star"]
    clf = ZeroShotClassifier(random_clip, names, templates).fit()
    x = _images(random_clip, 8)
    ours = clf.logits(x)
    model = random_clip.model
    with torch.no_grad():
        weights = build_zero_shot_classifier(
            model, random_clip.tokenizer, names, load_templates(templates), num_classes_per_batch=3
        )
        features = model.encode_image(x, normalize=True)
        theirs = model.logit_scale.exp() * features @ weights
    assert ours.shape == (8, 4)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_classifier_contract_and_saved_class_embeddings(random_clip, tmp_path):
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    clf = ZeroShotClassifier(random_clip, ["a", "b", "c"], "photo")
    with pytest.raises(NotFittedError):
        clf.predict(_images(random_clip, 2))
    assert clf.fit() is clf and clf.prototypes_.shape == (3, random_clip.embed_dim)
    assert clf.config() == {"class_names": ["a", "b", "c"], "templates": ["a photo of a {}."], "scale": None}
    path = clf.save_class_embeddings(tmp_path / "classes.safetensors")
    again = ZeroShotClassifier.from_class_embeddings(random_clip, path)
    x = _images(random_clip, 4)
    assert torch.equal(again.logits(x), clf.logits(x))
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError):
        ZeroShotClassifier.from_class_embeddings(random_clip, tmp_path / "bad.safetensors")


def test_classifier_messages_match_its_api(random_clip):
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    classifier = ZeroShotClassifier(random_clip, ["cat", "dog"])
    with pytest.raises(NotFittedError, match=r"call fit\(\) first"):
        classifier.predict(_images(random_clip, 2))
    with pytest.raises(
        FewshotError, match="only one class name .'red'.: zero-shot classification needs at least 2"
    ):
        ZeroShotClassifier(random_clip, ["red"])
