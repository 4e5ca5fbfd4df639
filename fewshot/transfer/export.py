"""Frozen-encoder methods fitted on a whole labelled set, exported as a fixed-class `Classifier`.

``linear-probe``: logistic regression on the (L2-normalised) embeddings of every item, its
``C`` chosen by cross-validation on those items. ``simpleshot``: nearest class mean on
embeddings centred with the data set's mean and L2-normalised; since
``-||f - p||^2 = 2 f.p - ||p||^2 - 1`` for unit vectors, it is exactly a linear head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError
from fewshot.learners.classifier import Classifier

FROZEN_STRATEGIES = ("linear-probe", "simpleshot")


@torch.no_grad()
def fit_frozen_classifier(
    encoder: torch.nn.Module,
    data: LabeledTensors,
    method: str = "linear-probe",
    batch_size: int | None = None,
    embeddings: torch.Tensor | None = None,
) -> Classifier:
    """Fit ``method`` on every item of ``data`` and return the equivalent `Classifier`.

    Args:
        encoder: a frozen `Encoder`; its weights are not changed.
        data: labelled items ``(n, ...)``; every class becomes one output.
        embeddings: ``(n, d)`` precomputed embeddings of ``data`` (skips encoding).
    """
    from fewshot.transfer.clip_export import exporting_methods, fit_exported_classifier

    if method in exporting_methods():  # the CLIP methods: fitted, then exported (`clip_export`)
        return fit_exported_classifier(encoder, data, method, batch_size)
    if method not in FROZEN_STRATEGIES:
        raise FewshotError(f"unknown frozen method {method!r}: choose one of {', '.join(FROZEN_STRATEGIES)}")
    z = encoder.encode_batched(data.data, batch_size) if embeddings is None else embeddings
    z = z.float().cpu()
    y = data.labels.cpu()
    device = next(encoder.parameters(), torch.empty(0)).device
    if method == "linear-probe":
        from fewshot.learners.linear_probe import LinearProbe

        probe = LinearProbe(encoder).fit_embeddings(z, y)
        model = Classifier(encoder, data.class_names, normalize=probe.normalize)
        model.head.weight.copy_(probe.weight_)
        model.head.bias.copy_(probe.bias_)
    else:
        from fewshot.learners.simpleshot import SimpleShot

        scale = SimpleShot(encoder).scale
        center = z.mean(0)
        prototypes = torch.stack(
            [F.normalize(z[y == c] - center, dim=-1).mean(0) for c in range(len(data.class_names))]
        )
        model = Classifier(encoder, data.class_names, normalize=True, centered=True)
        model.center.copy_(center)
        model.head.weight.copy_(2 * scale * prototypes)
        model.head.bias.copy_(-scale * prototypes.pow(2).sum(-1))
    return model.to(device).eval()
