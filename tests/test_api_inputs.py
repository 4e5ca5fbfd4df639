"""The Python API's entry points check what they are given: one table of bad and odd inputs for
learner fit/predict/predict_proba, Encoder.encode/encode_batched and evaluate."""

from __future__ import annotations

import pytest
import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.encoders import create_encoder
from fewshot.encoders.base import IdentityEncoder
from fewshot.errors import FewshotError
from fewshot.evaluation import evaluate
from fewshot.learners.maml import MAML
from fewshot.learners.protonet import ProtoNet


def conv4():
    torch.manual_seed(0)
    return create_encoder("conv4", in_channels=1, hidden=8, image_size=28).eval()


def nan_images():
    x = torch.rand(4, 1, 28, 28)
    x[1, 0, 3, 3] = float("nan")
    return x


def inf_images():
    x = torch.rand(4, 1, 28, 28)
    x[2, 0, 0, 0] = float("inf")
    return x


CLASSES = ["a", "b", "c", "d"]


class FakePILImage:
    __module__ = "PIL.Image"


# (id, input, message fragment) for an image encoder expecting (n, 1, 28, 28)
BAD_IMAGES = [
    ("nan", nan_images(), "NaN or infinite"),
    ("inf", inf_images(), "NaN or infinite"),
    ("empty", torch.empty(0, 1, 28, 28), "empty"),
    ("one-image-no-batch", torch.rand(1, 28, 28), "expected (n, 1, 28, 28); for one item use x[None]"),
    ("flat", torch.rand(4, 784), "expected (n, 1, 28, 28)"),
    ("rank-5", torch.rand(2, 4, 1, 28, 28), "expected (n, 1, 28, 28)"),
    ("uint8", torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "x.float() / 255"),
    ("pil", FakePILImage(), "PIL image"),
    ("list-of-pil", [FakePILImage(), FakePILImage()], "PIL image"),
    ("list-of-tensors", [torch.rand(1, 28, 28)] * 2, "torch.stack"),
    ("string", "cat.jpg", "expected a torch.Tensor or numpy array"),
]


@pytest.mark.parametrize(("x", "fragment"), [c[1:] for c in BAD_IMAGES], ids=[c[0] for c in BAD_IMAGES])
def test_bad_images_are_refused_at_every_entry_point(x, fragment):
    encoder = conv4()
    good_x, good_y = torch.rand(4, 1, 28, 28), torch.tensor([0, 0, 1, 1])
    calls = {
        "encode": lambda: encoder.encode(x),
        "encode_batched": lambda: encoder.encode_batched(x),
        "fit": lambda: ProtoNet(encoder).fit(x, good_y),
        "predict": lambda: ProtoNet(encoder).fit(good_x, good_y).predict(x),
        "predict_proba": lambda: ProtoNet(encoder).fit(good_x, good_y).predict_proba(x),
        "maml-fit": lambda: MAML(encoder, ways=2).fit(x, good_y),
    }
    for name, call in calls.items():
        with pytest.raises(FewshotError, match="x") as err:
            call()
        assert fragment in str(err.value), (name, str(err.value))


@pytest.mark.parametrize(
    ("y", "fragment"),
    [
        (torch.tensor([0.0, 0.0, 1.0, 1.0]), "integer class labels"),
        (torch.tensor([0, 1]), "one label per item, (4,)"),
        (torch.tensor([[0, 0, 1, 1]]), "one label per item"),
        (torch.tensor([3, 3, 3, 3]), "at least 2 classes"),
        ("0011", "expected integer labels"),
    ],
)
def test_bad_labels_are_refused(y, fragment):
    with pytest.raises(FewshotError, match="support_y") as err:
        ProtoNet(conv4()).fit(torch.rand(4, 1, 28, 28), y)
    assert fragment in str(err.value)


def test_numpy_and_float64_inputs_give_the_float32_tensor_result():
    encoder = conv4()
    x = torch.rand(6, 1, 28, 28)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    reference = ProtoNet(encoder).fit(x, y).predict_proba(x)
    from_numpy = ProtoNet(encoder).fit(x.double().numpy(), y.numpy()).predict_proba(x.numpy())
    torch.testing.assert_close(from_numpy, reference)
    torch.testing.assert_close(encoder.encode(x.double()), encoder.encode(x))
    torch.testing.assert_close(encoder.encode_batched(x.numpy()), encoder.encode_batched(x))


def test_feature_inputs_expect_n_by_d():
    learner = ProtoNet(IdentityEncoder(3))
    with pytest.raises(FewshotError, match=r"expected \(n, d\); for one item use x\[None\]"):
        learner.fit(torch.rand(3), torch.tensor([0, 1, 1]))
    with pytest.raises(FewshotError, match="NaN"):
        learner.fit_embeddings(
            torch.tensor([[0.0, 1.0, float("nan")], [1.0, 0.0, 0.0]]), torch.tensor([0, 1])
        )


def test_evaluate_refuses_nan_items_and_mismatched_labels_once():
    images = torch.rand(20, 1, 28, 28)
    labels = torch.arange(4).repeat_interleave(5)
    images[::5, 0, 0, 0] = float("nan")  # one item of each class: every episode meets one
    learner = ProtoNet(conv4())
    for use_cache in (True, False):
        with pytest.raises(FewshotError, match="NaN"):
            evaluate(
                learner,
                LabeledTensors(images, labels, CLASSES),
                2,
                1,
                1,
                episodes=3,
                use_cache=use_cache,
                progress=False,
            )
    with pytest.raises(FewshotError, match="20 items but 19 labels"):
        evaluate(
            learner, LabeledTensors(torch.rand(20, 1, 28, 28), labels[:19], CLASSES), 2, 1, 1, progress=False
        )


def test_evaluate_accepts_float64_items():
    images = torch.rand(20, 1, 28, 28)
    labels = torch.arange(4).repeat_interleave(5)
    learner = ProtoNet(conv4())
    settings = {"ways": 2, "shots": 1, "queries": 2, "episodes": 5, "progress": False}
    reference = evaluate(learner, LabeledTensors(images, labels, CLASSES), **settings)
    for use_cache in (True, False):
        result = evaluate(
            learner, LabeledTensors(images.double(), labels, CLASSES), use_cache=use_cache, **settings
        )
        assert result.per_episode == reference.per_episode


def test_evaluate_refuses_zero_queries_shots_and_one_way():
    data = LabeledTensors(torch.rand(20, 1, 28, 28), torch.arange(4).repeat_interleave(5), CLASSES)
    learner = ProtoNet(conv4())
    for settings, fragment in (
        ({"queries": 0}, "queries must be a positive whole number, got 0"),
        ({"shots": 0}, "shots must be a positive whole number, got 0"),
        ({"ways": 1}, "ways must be at least 2"),
    ):
        with pytest.raises(FewshotError, match=fragment):
            evaluate(learner, data, **{"ways": 2, "shots": 1, "queries": 2, **settings}, progress=False)
