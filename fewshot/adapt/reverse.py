"""Reverse validation in a shared representation: compare adapted models of any family.

Each candidate labels the unlabelled target items. A fresh classifier is then fitted on the
target items with those labels and scored on the *labelled source* items (Zhong et al. 2010's
reverse validation; Ganin et al. 2016 chose DANN's settings with it): target labels that follow
the classes transfer back to the source, wrong or collapsed ones do not.

The reverse classifier works in a representation that no candidate learned: the images' own
pixels (resized to one side, unit length, cosine k-nearest neighbours), or features of a
reference encoder that the caller computes. This is what makes the score comparable across
method families, where ``im``/``entropy`` are not (`fewshot.adapt.selection`): only the
predicted classes are read, so a near-certain head (OT mapping) earns nothing, and no
candidate's own feature space is used, where the labels of the model that built that space
(source-only, in the source-only network's features) are linear and transfer back best.

Its limit: the reverse classifier crosses the domain gap in that representation, so scores
are low in absolute terms (about 0.2-0.45 on rendered -> handwritten digits in pixels) and
only their order means something; in pixels it suits small, centred images (digits,
characters), and photos want a reference encoder's features.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from fewshot.errors import FewshotError

REVERSE_K = 10  # neighbours of the reverse classifier; fixed before the benchmark was run
PIXEL_SIDE = 28


def pixel_representation(images: torch.Tensor, side: int = PIXEL_SIDE) -> torch.Tensor:
    """``(n, C, H, W)`` images -> ``(n, side * side)`` unit-length grey pixels: both domains in
    one space whatever their sizes and channels."""
    if images.ndim != 4:
        shape = tuple(images.shape)
        raise FewshotError(f"reverse validation in pixels needs images (n, C, H, W), got {shape}")
    grey = images.float().mean(1, keepdim=True)
    if grey.shape[-2:] != (side, side):
        grey = F.interpolate(grey, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return F.normalize(grey.flatten(1), dim=1)


def knn_predict(
    train_z: torch.Tensor, train_y: torch.Tensor, query_z: torch.Tensor, classes: int, k: int = REVERSE_K
) -> torch.Tensor:
    """Cosine k-nearest-neighbour vote ``(m,)`` for ``query_z`` ``(m, d)`` from ``train_z``
    ``(n, d)`` labelled ``train_y`` ``(n,)``; a tie goes to the class of the nearest neighbour."""
    train_z, query_z = F.normalize(train_z.float(), dim=1), F.normalize(query_z.float(), dim=1)
    k = min(k, len(train_z))
    out = []
    for start in range(0, len(query_z), 1024):
        nearest = (query_z[start : start + 1024] @ train_z.T).topk(k, dim=1).indices  # (b, k)
        votes = F.one_hot(train_y[nearest], classes).sum(1).double()
        votes[torch.arange(len(nearest)), train_y[nearest[:, 0]]] += 0.5
        out.append(votes.argmax(1))
    return torch.cat(out)


def reverse_scores(
    target_labels: Mapping[str, torch.Tensor],
    target_z: torch.Tensor,
    source_z: torch.Tensor,
    source_y: torch.Tensor,
    k: int = REVERSE_K,
) -> dict[str, float]:
    """Each candidate's reverse accuracy: a k-NN fitted on ``target_z`` ``(n, d)`` with the
    candidate's predicted classes ``(n,)``, scored on ``source_z`` ``(m, d)`` against the
    source labels ``source_y`` ``(m,)``. Higher is better; source labels are the only labels read."""
    if target_z.shape[1] != source_z.shape[1]:
        raise FewshotError(
            f"source and target representations differ in size: {source_z.shape[1]} vs {target_z.shape[1]}"
        )
    classes = int(max([int(source_y.max())] + [int(y.max()) for y in target_labels.values()])) + 1
    scores = {}
    for name, labels in target_labels.items():
        if labels.shape != (len(target_z),):
            raise FewshotError(f"{name}: {tuple(labels.shape)} labels for {len(target_z)} target items")
        predicted = knn_predict(target_z, labels.long(), source_z, classes, k)
        scores[name] = float((predicted == source_y).double().mean())
    return scores


__all__ = ["REVERSE_K", "knn_predict", "pixel_representation", "reverse_scores"]
