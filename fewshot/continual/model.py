"""The model a continual strategy trains: an encoder and a classifier that grows a head per
group of new classes (an "incremental classifier").

Outputs always cover every class of the stream, in global class-id order: a class without a
head yet (not seen) scores `MISSING`, so softmax and argmax ignore it. Masks choose which
classes compete: every class seen so far (class-incremental), one experience's classes (the
task id known: task-incremental, multi-head training), or one head's classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MISSING = -1e9  # the logit of a class that has no head (or is masked out)


class ContinualModel(nn.Module):
    """``logits(x) = heads(normalize?(encoder(x)))`` over ``n_classes`` global classes.

    Args:
        encoder: an `Encoder` (``(n, ...)`` -> ``(n, embed_dim)``).
        n_classes: classes of the whole stream.
        normalize: L2-normalise the embedding before the heads (cosine classifiers, SimpleCIL).

    Shapes: ``(n, ...)`` -> ``(n, n_classes)``.
    """

    def __init__(self, encoder: nn.Module, n_classes: int, normalize: bool = False) -> None:
        super().__init__()
        self.encoder, self.n_classes, self.normalize = encoder, int(n_classes), normalize
        self.heads = nn.ModuleList()
        self.head_classes: list[list[int]] = []

    @property
    def seen(self) -> list[int]:
        """Global class ids that have a head, ascending."""
        return sorted(c for classes in self.head_classes for c in classes)

    def add_classes(self, classes: Sequence[int]) -> nn.Linear | None:
        """A new head for those of `classes` without one (None when every class has one)."""
        known = set(self.seen)
        new = [int(c) for c in classes if int(c) not in known]
        if not new:
            return None
        device = next(self.parameters(), torch.empty(0)).device
        head = nn.Linear(self.encoder.embed_dim, len(new)).to(device)
        self.heads.append(head)
        self.head_classes.append(new)
        return head

    def inference_copy(self) -> ContinualModel:
        """This model for eval-mode prediction, its encoder in `inference_form` (BatchNorm
        folded into the convolutions: the same predictions to float rounding, several times
        faster on CPU). The heads are shared, not copied; the model's weights are left as they
        are (its encoder is put in eval mode)."""
        from fewshot.encoders.inference import inference_form

        fast = ContinualModel(inference_form(self.encoder.eval()), self.n_classes, self.normalize)
        fast.heads, fast.head_classes = self.heads, self.head_classes
        return fast.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, ...)`` -> the heads' inputs ``(n, embed_dim)``."""
        z = self.encoder(x).float()
        return F.normalize(z, dim=-1) if self.normalize else z

    def head_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Features ``(n, d)`` -> logits ``(n, n_classes)``, `MISSING` for classes without a head."""
        out = z.new_full((z.shape[0], self.n_classes), MISSING)
        for head, classes in zip(self.heads, self.head_classes, strict=True):
            out[:, torch.as_tensor(classes, device=z.device)] = head(z).float()  # bf16 under autocast
        return out

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked(self.head_logits(self.features(x)), mask)

    def class_mask(self, classes: Sequence[int] | None = None) -> torch.Tensor:
        """Bool ``(n_classes,)``: `classes` (default: every class seen so far)."""
        mask = torch.zeros(self.n_classes, dtype=torch.bool)
        mask[list(self.seen if classes is None else classes)] = True
        return mask.to(next(self.parameters(), torch.empty(0)).device)

    def structure(self) -> list[list[int]]:
        """What rebuilds the heads before loading a state dict (`rebuild`)."""
        return [list(c) for c in self.head_classes]

    def rebuild(self, structure: list[list[int]]) -> None:
        """Recreate the heads of `structure` (weights come from ``load_state_dict`` next)."""
        self.heads = nn.ModuleList()
        self.head_classes = []
        for classes in structure:
            self.add_classes([int(c) for c in classes])

    @torch.no_grad()
    def merged_head(self) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The heads as one linear layer over the seen classes (ascending ids): ``(C, d)``
        weight, ``(C,)`` bias, and the class ids."""
        rows, biases, ids = [], [], []
        for head, classes in zip(self.heads, self.head_classes, strict=True):
            rows.append(head.weight)
            biases.append(head.bias)
            ids.extend(classes)
        order = torch.as_tensor(sorted(range(len(ids)), key=ids.__getitem__))
        return torch.cat(rows)[order], torch.cat(biases)[order], sorted(ids)


def masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``logits (n, C)`` with the classes outside the bool ``mask (C,)`` set to `MISSING`."""
    if mask is None:
        return logits
    return logits.masked_fill(~mask.to(logits.device), MISSING)


__all__ = ["MISSING", "ContinualModel", "masked"]
