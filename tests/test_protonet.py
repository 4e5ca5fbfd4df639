import torch

from fewshot.encoders.base import IdentityEncoder
from fewshot.evaluation import evaluate
from fewshot.learners.protonet import ProtoNet
from fewshot.scoring import class_means


def test_prototypes_are_class_means():
    z = torch.randn(12, 4)
    y = torch.tensor([0, 1, 2] * 4)
    learner = ProtoNet(IdentityEncoder(4)).fit(z, y)
    for c in range(3):
        torch.testing.assert_close(learner.prototypes_[c], z[y == c].mean(0))
    torch.testing.assert_close(class_means(z, y, 3), learner.prototypes_)


def test_near_perfect_on_separated_classes(blobs):
    result = evaluate(
        ProtoNet(IdentityEncoder(16)), blobs, ways=5, shots=1, queries=5, episodes=200, progress=False
    )
    assert result.mean > 0.99
    assert result.n_episodes == 200
