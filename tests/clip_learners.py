"""Test models for the learners that need a CLIP's own towers (``needs_clip_towers``: CoOp,
CoCoOp, CLIP-LoRA): random-weight micro-CLIPs, and settings short enough for unit tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

#: Fewer training steps than the papers' settings (the contract tests fit many times).
FAST = {
    "coop": {"epochs": 5},
    "cocoop": {"epochs": 1},
    "clip-adapter": {"epochs": 20},
    "clip-lora": {"iterations_per_shot": 3},
}
CLASS_NAMES = ["ant", "bee", "cat"]

#: A second tiny open_clip architecture (other widths, heads and context length than
#: micro-clip), so nothing is fitted to one configuration.
TINY_CONFIG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 24, "layers": 1, "width": 48, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 20, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 1},
}


@functools.cache
def micro_clip(seed: int = 0):
    """The micro-CLIP architecture with random weights (seeded), on the CPU."""
    from fewshot.encoders.clip import ClipEncoder

    torch.manual_seed(seed)
    return ClipEncoder("micro-clip", pretrained=None, device="cpu", precision="fp32").eval()


@functools.cache
def tiny_clip(folder: str):
    """`TINY_CONFIG` with random weights, registered from ``folder/tiny-test-clip.json``."""
    from fewshot.encoders.clip import ClipEncoder

    path = Path(folder) / "tiny-test-clip.json"
    path.write_text(json.dumps(TINY_CONFIG))
    torch.manual_seed(1)
    return ClipEncoder(str(path), pretrained=None, device="cpu", precision="fp32").eval()


def clip_learner(name: str, encoder=None, **options):
    """Learner ``name`` on the random micro-CLIP, with `FAST` settings and three class names."""
    from fewshot.learners import create_learner

    learner = create_learner(name, encoder or micro_clip(), **{**FAST.get(name, {}), **options})
    if learner.uses_class_names:
        learner.set_class_names(CLASS_NAMES)
    return learner


def image_task(encoder, n_classes: int = 3, shots: int = 2, queries: int = 3, seed: int = 0):
    """``(support (n, 3, H, W), labels, query (m, 3, H, W), query labels)``: class pattern + noise."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, *encoder.input_size, generator=g)
    support = means.repeat_interleave(shots, 0) + 0.3 * torch.randn(
        n_classes * shots, *encoder.input_size, generator=g
    )
    query = means.repeat_interleave(queries, 0) + 0.3 * torch.randn(
        n_classes * queries, *encoder.input_size, generator=g
    )
    labels = torch.arange(n_classes)
    return support, labels.repeat_interleave(shots), query, labels.repeat_interleave(queries)
