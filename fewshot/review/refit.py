"""The labelling loop: fit a few-shot learner on the images a person accepted, re-rank the rest.

`Refitter` embeds every readable image once with an encoder (`fewshot.build.build_encoder`:
the one given to ``fewshot review --encoder``, by default the shipped Omniglot ProtoNet's,
the default of ``fewshot predict``), keeps the embeddings, and on each `refit` fits
SimpleShot or a linear probe (the toolkit's learners, built by `fewshot.build.build_learner`)
on the accepted and corrected images with their reviewed labels. Every image then gets the
probe's label and probability (`ReviewState.probe_label`, ``probe_p``); the ``probe`` sort
puts the undecided images where the probe disagrees with the results first, least confident
first, and the "uncertain" queue includes them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fewshot.errors import FewshotError
from fewshot.review.state import ACCEPTED, CORRECTED, ReviewState

METHODS = ("simpleshot", "linear-probe")


class Refitter:
    """Embeddings of a review's images and the probes fitted on them."""

    def __init__(self, encoder: str | None = None, device: str = "cpu", batch_size: int = 64) -> None:
        self.spec, self.device, self.batch_size = encoder, device, batch_size
        self._encoder = None
        self.z: np.ndarray | None = None  # (n, d) float32; NaN rows: not embedded
        self.embedded = 0  # images embedded so far (each once)

    @property
    def encoder(self):
        if self._encoder is None:
            from fewshot.build import build_encoder
            from fewshot.device import resolve_device

            self._encoder = build_encoder(self.spec, resolve_device(self.device)).encoder.eval()
        return self._encoder

    def embed(self, state: ReviewState, resolve: Callable[[int], Path | None]) -> np.ndarray:
        """``(n, d)`` embeddings of every row (NaN for rows without a readable image), made once."""
        if self.z is not None:
            return self.z
        from fewshot.index.images import embed_image_files

        rows = [i for i in range(len(state.results)) if state.ok[i]]
        files = {i: resolve(i) for i in rows}
        wanted = [i for i in rows if files[i] is not None]
        position = {files[i]: i for i in wanted}
        z = None
        stream = embed_image_files(self.encoder, [files[i] for i in wanted], self.batch_size, 0, True)
        for paths, vectors, _failures in stream:
            if z is None:
                z = np.full((len(state.results), vectors.shape[1]), np.nan, np.float32)
            for path, vector in zip(paths, vectors, strict=True):
                z[position[Path(path)]] = vector
                self.embedded += 1
        if z is None:
            raise FewshotError("no image of the results could be read to refit on")
        self.z = z
        return z

    def refit(self, state: ReviewState, resolve: Callable[[int], Path | None], method: str) -> dict:
        """Fit `method` on the reviewed images, score every image, update the state's probe."""
        import torch

        from fewshot.build import build_learner

        if method not in METHODS:
            raise FewshotError(f"unknown refit method {method!r}: choose one of {', '.join(METHODS)}")
        reviewed = np.isin(state.decision, (ACCEPTED, CORRECTED))
        if len({int(v) for v in state.final[reviewed]}) < 2:
            raise FewshotError("refit needs accepted or corrected images of at least two labels")
        z = self.embed(state, resolve)
        have = ~np.isnan(z).any(axis=1)
        support = reviewed & have
        labels = state.final[support]
        if len(set(labels.tolist())) < 2:
            raise FewshotError("refit needs readable reviewed images of at least two labels")
        learner = build_learner(method, self.encoder, {}, None, 0)
        learner.fit_embeddings(torch.from_numpy(z[support]), torch.from_numpy(labels.astype(np.int64)))
        scored = np.flatnonzero(have)
        with torch.no_grad():
            proba = learner.logits_embeddings(torch.from_numpy(z[scored])).float().softmax(-1).numpy()
        classes = learner.classes_.cpu().numpy()
        state.probe_label[:] = -1
        state.probe_p[:] = np.nan
        state.probe_label[scored] = classes[proba.argmax(1)]
        state.probe_p[scored] = proba.max(1)
        state.orders["probe"] = probe_order(state)
        disagree = state.disagree() & (state.decision == 0)
        return {
            "method": method,
            "support": int(support.sum()),
            "classes": len(classes),
            "scored": len(scored),
            "disagree": int(disagree.sum()),
        }


def probe_order(state: ReviewState) -> np.ndarray:
    """Undecided disagreements first, then the rest; least confident probe first in each."""
    p = np.where(np.isnan(state.probe_p), 2.0, state.probe_p)
    first = ~(state.disagree() & (state.decision == 0))
    unscored = state.probe_label < 0
    return np.lexsort((np.arange(len(p)), p, first, unscored | ~state.ok))
