"""The one text-prototype recipe (`fewshot.zeroshot.prompts`) and the one zero-shot learner."""

from __future__ import annotations

import subprocess
import sys
import zlib

import pytest
import torch
import torch.nn.functional as F

from fewshot.errors import FewshotError
from fewshot.learners.base import EMBEDDING, FIXED, check_contract
from fewshot.learners.zeroshot import ZeroShot
from fewshot.zeroshot.classifier import ZeroShotClassifier
from fewshot.zeroshot.prompts import text_prototypes

DIM = 8


class FakeClip(torch.nn.Module):
    """A text tower that maps each prompt to a fixed unit vector; images are their own embeddings."""

    logit_scale = 10.0
    embed_dim = DIM
    input_size = None

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[list[str]] = []

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        self.prompts.append(list(prompts))
        rows = [
            torch.randn(DIM, generator=torch.Generator().manual_seed(zlib.crc32(p.encode()))) for p in prompts
        ]
        return F.normalize(torch.stack(rows), dim=-1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=-1)

    forward = encode


def test_text_prototypes_is_the_normalised_mean_over_templates():
    clip = FakeClip()
    templates = ["a {}.", "the {}!"]
    got = text_prototypes(clip, ["cat", "dog"], templates)
    assert clip.prompts == [["a cat.", "the cat!", "a dog.", "the dog!"]]
    for row, name in zip(got, ["cat", "dog"], strict=True):
        mean = clip.encode_text([t.replace("{}", name) for t in templates]).mean(0)
        torch.testing.assert_close(row, F.normalize(mean, dim=0))
    assert got.dtype == torch.float32 and torch.allclose(got.norm(dim=-1), torch.ones(2))


def test_text_prototypes_refuses_an_encoder_without_text_tower():
    with pytest.raises(FewshotError, match="no text tower"):
        text_prototypes(torch.nn.Identity(), ["cat", "dog"], "photo")


def test_episode_learner_and_classifier_share_the_recipe():
    clip, names = FakeClip(), ["red", "green", "blue"]
    episodic = ZeroShot(clip, "photo")
    episodic.set_class_names(names)
    episodic.fit()
    fixed = ZeroShotClassifier(clip, names, "photo").fit()
    expected = text_prototypes(clip, names, "photo")
    assert torch.equal(episodic.prototypes_, expected) and torch.equal(fixed.prototypes_, expected)
    z = torch.randn(5, DIM)
    assert torch.equal(fixed.logits_embeddings(z), episodic.logits_embeddings(z))


def test_a_single_new_class_name_in_a_later_episode_is_embedded():
    # Regression: the per-name cache used to build a one-class ZeroShotClassifier for the one
    # missing name, which refuses a single class (`fewshot compare --encoder clip` crashed).
    clip = FakeClip()
    learner = ZeroShot(clip, "photo")
    learner.set_class_names(["red", "green"])
    learner.fit()
    learner.set_class_names(["red", "blue"])
    learner.fit()
    assert clip.prompts[-1] == ["a photo of a blue."]
    torch.testing.assert_close(learner.prototypes_, text_prototypes(clip, ["red", "blue"], "photo"))


def test_classifier_is_a_fixed_kind_zero_shot_learner():
    clip = FakeClip()
    clf = ZeroShotClassifier(clip, ["a", "b", "c"], "photo")
    assert isinstance(clf, ZeroShot) and clf.kind == FIXED and clf.fixed_classes
    assert not clf.uses_class_names and ZeroShot(clip).kind == EMBEDDING
    check_contract(clf)
    check_contract(ZeroShot(clip))
    assert not clf.fitted and clf.fit().fitted
    assert clf.get_params() == {
        "class_names": ["a", "b", "c"],
        "templates": ["a photo of a {}."],
        "scale": None,
    }
    with pytest.raises(FewshotError, match="fits on inputs, not embeddings"):
        clf.fit_embeddings(torch.randn(4, DIM), torch.tensor([0, 0, 1, 1]))


def test_proba_embeddings_is_the_public_probability_of_predict_proba():
    clf = ZeroShotClassifier(FakeClip(), ["a", "b", "c"], "photo").fit()
    x = torch.randn(6, DIM)
    probs = clf.proba_embeddings(clf.encoder.encode(x))
    assert torch.equal(probs, clf.predict_proba(x))
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))


def test_prompts_module_imports_no_learner():
    code = (
        "import sys, fewshot.zeroshot.prompts\n"
        "print(any(m.startswith('fewshot.learners') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
