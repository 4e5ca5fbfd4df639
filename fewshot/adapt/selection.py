"""Unsupervised validators: how good a model probably is on target data, without its labels.

Each takes the target class probabilities ``(n, C)`` (softmax of the model's logits) and
returns a score where higher is better, so that hyperparameters and checkpoints are chosen by
the largest score:

- ``entropy``: minus the mean prediction entropy (confident predictions score high). Favours
  any confident model, collapsed ones included: use it to compare checkpoints of one method.
- ``im``: information maximisation (Shi and Sha 2012; SHOT): the entropy of the mean
  prediction minus the mean entropy, i.e. the mutual information between input and predicted
  class. Confident *and* diverse; a collapse onto few classes loses the first term.
- ``snd``: soft neighbourhood density (Saito et al. 2021): the mean entropy of each target
  item's softmax similarity to the other items (cosine of probability vectors, temperature
  0.05). High when predictions form dense, well-separated clusters; like ``entropy`` it also
  scores a collapse onto one class high (every item is every other's neighbour), so
  ``im``, the default, is the one to trust within one method.

Those three score one model at a time and are comparable between checkpoints and settings of
one method, not between methods: a frozen-feature method such as OT mapping moves every target
item onto source items, so its head is near-certain everywhere and wins ``im`` and ``entropy``
against network methods whatever its accuracy. ``agreement_scores`` (EnsV, Hu et al. 2024)
compares a set of candidates instead: each scores the fraction of target items on which its
prediction matches the candidates' ensemble. EnsV's ensemble averages probabilities; here it is
a majority vote of predicted classes (ties broken by the averaged probabilities), because
averaging lets one near-certain candidate outvote several hesitant ones, and near-certain is
exactly how OT mapping errs. It is what `fewshot rank-adapted` ranks by. It assumes the
candidates err independently; methods trained from one source model err together and outvote
the rest (on rendered -> handwritten digits they outvoted the more accurate AdaBN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fewshot.errors import FewshotError

SND_TEMPERATURE = 0.05


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Row entropies ``(n,)`` of probabilities ``(n, C)``, in nats."""
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def entropy_score(p: torch.Tensor) -> float:
    """``-mean_i H(p_i)``; 0 is fully confident, ``-log C`` uniform."""
    return -float(_entropy(p.double()).mean())


def im_score(p: torch.Tensor) -> float:
    """``H(mean_i p_i) - mean_i H(p_i)`` in ``[0, log C]``."""
    p = p.double()
    return float(_entropy(p.mean(0, keepdim=True))[0] - _entropy(p).mean())


def snd_score(p: torch.Tensor, temperature: float = SND_TEMPERATURE, chunk: int = 1024) -> float:
    """Mean entropy of each item's softmax over its cosine similarity to the others."""
    z = torch.nn.functional.normalize(p.double(), dim=-1)
    n = z.shape[0]
    if n < 2:
        return 0.0
    total = 0.0
    for start in range(0, n, chunk):
        sim = z[start : start + chunk] @ z.T / temperature
        rows = torch.arange(start, min(n, start + chunk))
        sim[rows - start, rows] = -math.inf  # not its own neighbour
        total += float(_entropy(torch.softmax(sim, dim=-1)).sum())
    return total / n


VALIDATORS = {"entropy": entropy_score, "im": im_score, "snd": snd_score}


def check_validator(name: str) -> str:
    if name not in VALIDATORS:
        raise FewshotError(f"--select {name!r} is not a validator: choose one of {', '.join(VALIDATORS)}")
    return name


def agreement_scores(probabilities: Sequence[torch.Tensor]) -> list[float]:
    """EnsV with a vote: for each candidate's target probabilities ``(n, C)``, the fraction of
    the ``n`` items whose predicted class is the ensemble's (the class most candidates predict;
    among tied classes, the one of largest mean probability)."""
    if len(probabilities) < 2:
        raise FewshotError("ranking by agreement needs at least two candidate models")
    shapes = {tuple(p.shape) for p in probabilities}
    if len(shapes) != 1:
        raise FewshotError(f"the candidates' target probabilities differ in shape: {sorted(shapes)}")
    stacked = torch.stack([p.double() for p in probabilities])  # (m, n, C)
    votes = torch.nn.functional.one_hot(stacked.argmax(-1), stacked.shape[-1]).sum(0).double()
    # the mean probability (< 1) times 0.5 cannot outweigh one vote; it only splits ties
    ensemble = (votes + 0.5 * stacked.mean(0)).argmax(-1)
    return [float((p.argmax(-1) == ensemble).double().mean()) for p in stacked]


def scores(p: torch.Tensor) -> dict[str, float]:
    """Every validator's score of probabilities ``(n, C)``."""
    return {name: fn(p) for name, fn in VALIDATORS.items()}


def score(name: str, p: torch.Tensor) -> float:
    return VALIDATORS[check_validator(name)](p)


__all__ = [
    "VALIDATORS",
    "agreement_scores",
    "check_validator",
    "entropy_score",
    "im_score",
    "score",
    "scores",
    "snd_score",
]
