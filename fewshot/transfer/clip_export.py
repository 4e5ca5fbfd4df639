"""CLIP adaptation methods fitted on a whole labelled folder, exported as a fixed-class `Classifier`.

`fewshot finetune --strategy coop` (and ``clap``, ``zs-lp``, ``lp++``, ``clip-lora``,
``clip-adapter``, ``cocoop``): the learner is fitted on the training items with the folder's
class names, exactly as on an episode's support set. Most fitted models are a linear head on
L2-normalised CLIP features
(``classifier_weights()``: CoOp's learned text features, ZS-LP/CLAP's class weights, LP++'s
blended weights; CLIP-LoRA's adapted text features over the encoder with the adapters merged
into its weights). CLIP-Adapter and CoCoOp are more than a linear head: their
``export_model`` gives a `Classifier` with the adapter before its head, and a
`CoCoOpClassifier` (prompts per image, the text tower at prediction time). Learners declare
it: ``exports_classifier = True``.
"""

from __future__ import annotations

import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.learners.base import EMBEDDING
from fewshot.learners.classifier import Classifier


def exporting_methods() -> tuple[str, ...]:
    """Registered learners whose fitted model is a linear head (``exports_classifier``)."""
    from fewshot.learners import LEARNERS

    return tuple(n for n in LEARNERS.names() if LEARNERS.get(n).exports_classifier)


def fit_exported_classifier(
    encoder: torch.nn.Module,
    data: LabeledTensors,
    method: str,
    batch_size: int | None = None,
    options: dict | None = None,
) -> Classifier:
    """Fit ``method`` (hyperparameters ``options``; default: the paper's) on every item of
    ``data`` (its class names as prompts) and return the equivalent `Classifier` (the encoder's
    weights are not changed; CLIP-LoRA's is a merged copy)."""
    from fewshot.build import build_learner

    learner = build_learner(method, encoder, options)
    learner.set_class_names(list(data.class_names))
    labels = data.labels.cpu()
    if learner.kind == EMBEDDING:
        with torch.no_grad():
            z = encoder.encode_batched(data.data, batch_size).float()
        learner.fit_embeddings(z, labels.to(z.device))
        source = encoder
    else:
        learner.fit(data.data, labels)
        source = learner.merged_encoder()
    if hasattr(learner, "export_model"):  # CLIP-Adapter, CoCoOp: more than a linear head
        model = learner.export_model(source, data.class_names)
    else:
        weight, bias = learner.classifier_weights()
        model = Classifier(source, data.class_names, normalize=True)
        with torch.no_grad():
            model.head.weight.copy_(weight)
            model.head.bias.copy_(bias)
    device = next(source.parameters()).device
    return model.to(device).eval()
