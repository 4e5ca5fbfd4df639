"""The continual model's inference copy (`ContinualModel.inference_copy`, what the trainer
evaluates): the same logits as the model in eval mode, heads shared, the model untouched."""

from __future__ import annotations

import torch
from continual_streams import encoder, squares

from fewshot.continual.base import evaluate
from fewshot.continual.model import ContinualModel


def test_the_inference_copy_predicts_as_the_model_and_leaves_it_as_it_was():
    data = squares(6, 10, 0)
    model = ContinualModel(encoder(0), 6)
    model.add_classes([0, 1, 2])
    model.train()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so folding matters
        for _ in range(3):
            model(data.data * 3 + 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = model.inference_copy()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(data.data), model(data.data), atol=1e-4, rtol=1e-4)
    assert fast.heads is model.heads and fast.encoder is not model.encoder
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.encoder.modules()) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    mask = model.class_mask()
    assert evaluate(fast, data, mask, "cpu", 4) == evaluate(model, data, mask, "cpu", 512)
