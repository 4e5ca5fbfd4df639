"""Episodic evaluation: mean accuracy with a 95% confidence interval.

The path follows the learner's declared kind (`fewshot.learners.base`): an ``EMBEDDING``
learner is evaluated on cached embeddings (every test item is embedded once, then episodes
are drawn over the embeddings), a block of episodes per tensor operation when it has
``batch_logits_embeddings`` (``batches_embeddings``); an ``ADAPTIVE`` learner (MAML) is
fitted episode by episode on the raw items, or a block at a time when it has
``batch_episode_predictions`` (``batches_episodes``). A ``FIXED`` classifier has no episodes
to be fitted on and is refused. Learners with ``uses_class_names = True`` (zero-shot,
Tip-Adapter) get the names of each episode's classes through ``set_class_names(names)``
before ``fit``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.device import resolve_device
from fewshot.episode_draws import episode_options
from fewshot.errors import FewshotError
from fewshot.learners.base import EMBEDDING, FIXED
from fewshot.sampling import EpisodeFile, EpisodeIndices, EpisodeSampler


@dataclass
class EvalResult:
    """Result of an episodic evaluation.

    ``mean`` and ``ci95`` are fractions in [0, 1]; ``ci95 = 1.96 * std / sqrt(n_episodes)``
    with the population standard deviation of the per-episode accuracies.
    """

    mean: float
    ci95: float
    n_episodes: int
    per_episode: list[float] = field(repr=False)
    ways: int = 0
    shots: int = 0
    queries: int = 0
    seconds: float = 0.0
    within_group: bool = False
    variable: bool = False  # ways and shots are then the most an episode had
    #: per-class and worst-class accuracy over every query (`fewshot.class_accuracy`)
    classes: dict = field(default_factory=dict, repr=False)

    def as_dict(self, per_episode: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not per_episode:
            out.pop("per_episode")
        return out


def confidence_interval_95(accuracies: np.ndarray | list[float]) -> float:
    """Half-width of the normal-approximation 95% interval: ``1.96 * std / sqrt(n)``."""
    values = np.asarray(accuracies, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(1.96 * values.std() / math.sqrt(values.size))


def _result(per_episode: np.ndarray, sampler, seconds: float, classes: dict | None = None) -> EvalResult:
    return EvalResult(
        mean=float(per_episode.mean()),
        ci95=confidence_interval_95(per_episode),
        n_episodes=int(per_episode.size),
        per_episode=per_episode.tolist(),
        ways=sampler.ways,
        shots=sampler.shots,
        queries=sampler.queries,
        seconds=round(seconds, 3),
        within_group=bool(sampler.within_group),
        variable=bool(sampler.variable),
        classes=classes or {},
    )


def _episode_blocks(sampler, block: int):
    for start in range(0, len(sampler), block):
        yield sampler.sample_indices(start, min(block, len(sampler) - start))


def _set_episode_classes(learner, class_names: list[str] | None, class_ids) -> None:
    """Tell a learner that needs them (zero-shot, Tip-Adapter) the names of the episode's classes."""
    if learner.uses_class_names:
        if class_names is None:
            raise FewshotError(f"{type(learner).__name__} needs class names but the data set has none")
        learner.set_class_names([class_names[int(c)] for c in np.asarray(class_ids).reshape(-1)])


def _embed_used_items(
    encoder, items: torch.Tensor, sampler, batch_size: int | None, progress: bool = False
) -> torch.Tensor:
    """Embeddings ``(n_items, d)`` of the items the episodes use (rows of unused items are 0).

    A short evaluation on a large test set touches only part of it; embedding only those
    items is what makes a few hundred validation episodes cheap.
    """
    every = sampler.sample_indices(0, len(sampler))
    used = np.unique(np.concatenate([every.support.reshape(-1), every.query.reshape(-1)]))
    used = used[used >= 0]  # variable episodes' padding
    if used.size == items.shape[0]:
        return encoder.encode_batched(items, batch_size=batch_size, progress=progress)
    used_t = torch.from_numpy(used)
    embedded = encoder.encode_batched(items[used_t], batch_size=batch_size, progress=progress)
    out = torch.zeros(items.shape[0], embedded.shape[1], dtype=embedded.dtype)
    out[used_t] = embedded
    return out


def _shaped_blocks(sampler, block: int):
    """``(positions, indices)`` of blocks of episodes of one size each (variable episodes are
    grouped by ``(ways, shots)`` within each block), and the block's episode count."""
    for indices in _episode_blocks(sampler, block):
        groups = (
            indices.shape_groups() if sampler.variable else [(np.arange(len(indices.class_ids)), indices)]
        )
        yield groups, len(indices.class_ids)


def _labels(n: int, per_class: int, device) -> torch.Tensor:
    return torch.arange(n, device=device).repeat_interleave(per_class)


@torch.no_grad()
def _evaluate_cached(
    learner, embeddings: torch.Tensor, sampler, bar, class_names=None, tally=None
) -> np.ndarray:
    """Per-episode accuracy over cached embeddings ``(n_items, d)``."""
    device = embeddings.device
    accuracies = np.zeros(len(sampler))
    batched = learner.batches_embeddings and not learner.uses_class_names
    done = 0
    for groups, count in _shaped_blocks(sampler, 256 if batched else 1):
        for positions, block in groups:
            (b, n, k), q = block.support.shape, block.query.shape[2]
            support = torch.as_tensor(block.support, device=device)
            query = torch.as_tensor(block.query, device=device)
            if batched:
                logits = learner.batch_logits_embeddings(
                    embeddings[support], embeddings[query.reshape(b, -1)]
                )  # (B, N*Q, N)
                hits = logits.argmax(-1) == _labels(n, q, device)
                accuracy = hits.float().mean(-1)
            else:
                _set_episode_classes(learner, class_names, block.class_ids)
                # episode labels are 0..N-1 already: no per-episode label mapping or input check
                learner._fit_embeddings(embeddings[support.reshape(-1)], _labels(n, k, device))
                logits = learner.logits_embeddings(embeddings[query.reshape(-1)])
                hits = (logits.argmax(-1) == _labels(n, q, device)).reshape(1, -1)
                accuracy = hits.float().mean().reshape(1)
            accuracies[done + positions] = accuracy.cpu().numpy()
            _tally(tally, block.class_ids, hits, q)
        done += count
        bar.update(count)
    return accuracies


def _evaluate_per_episode(
    learner, data: torch.Tensor, sampler, device, bar, class_names=None, tally=None
) -> np.ndarray:
    if learner.batches_episodes:
        return _evaluate_episode_blocks(learner, data, sampler, device, bar, tally=tally)
    accuracies = []
    for indices in sampler.iter_indices():
        episode = sampler.gather(data, indices).to(device)
        _set_episode_classes(learner, class_names, indices.class_ids)
        # inputs were checked once by `evaluate`; episode labels are 0..N-1 already
        learner._fit(episode.support_x, episode.support_y)
        with torch.no_grad():
            predictions = learner.logits(episode.query_x).argmax(-1)
        accuracies.append(float((predictions == episode.query_y).float().mean()))
        if tally is not None:
            tally.add(
                np.asarray(indices.class_ids).reshape(-1)[episode.query_y.cpu().numpy()],
                predictions == episode.query_y,
            )
        bar.update(1)
    return np.asarray(accuracies)


def _evaluate_episode_blocks(
    learner, data: torch.Tensor, sampler, device, bar, block: int = 32, tally=None
) -> np.ndarray:
    """Learners that adapt (MAML) fit and predict a block of episodes in one call."""
    accuracies = np.zeros(len(sampler))
    done = 0
    for groups, count in _shaped_blocks(sampler, block):
        for positions, indices in groups:
            (b, n, k), q = indices.support.shape, indices.query.shape[2]
            support_x = data[torch.as_tensor(indices.support.reshape(-1))].to(device)
            query_x = data[torch.as_tensor(indices.query.reshape(-1))].to(device)
            predictions = learner.batch_episode_predictions(
                support_x.reshape(b, n * k, *data.shape[1:]),
                _labels(n, k, device).expand(b, -1),
                query_x.reshape(b, n * q, *data.shape[1:]),
            )
            hits = predictions == _labels(n, q, device)
            accuracies[done + positions] = hits.float().mean(-1).cpu().numpy()
            _tally(tally, indices.class_ids, hits, q)
        done += count
        bar.update(count)
    return accuracies


def _tally(tally, class_ids, hits: torch.Tensor, q: int) -> None:
    """Add a block's query hits ``(B, N*Q)`` under the data set's class ids ``(B, N)``."""
    if tally is not None:
        tally.add(np.repeat(np.asarray(class_ids).reshape(hits.shape[0], -1), q, axis=1), hits)


def _new_sampler(
    data: LabeledTensors, episode_file: str | None, *settings: Any, **options: Any
) -> EpisodeSampler | EpisodeFile:
    """The episodes saved in `episode_file`, or new ones drawn with these settings (``ways``,
    ``shots``, ``queries``, ``episodes``, ``seed``, ``skip_small_classes``) and `options`
    (see `episode_options`)."""
    if episode_file:
        return EpisodeFile(episode_file, data.labels)
    return EpisodeSampler(data.labels, *settings, class_names=getattr(data, "class_names", None), **options)


def _save_episodes(sampler: EpisodeSampler | EpisodeFile, path: str) -> None:
    if not isinstance(sampler, EpisodeSampler):
        raise FewshotError("episodes read from a file cannot be saved again: copy the file instead")
    try:
        sampler.save(path)
    except OSError as err:
        raise FewshotError(f"cannot write episodes to {path}: {err.strerror or err}") from err


def _evaluable_items(learner, data: LabeledTensors, use_cache: bool) -> tuple[torch.Tensor, bool]:
    """``(data.data, cached)``: the items, refused when they do not match the labels or the
    learner cannot be evaluated, and whether the learner runs on cached embeddings."""
    if len(data.labels) != data.data.shape[0]:
        raise FewshotError(f"data has {data.data.shape[0]} items but {len(data.labels)} labels")
    if learner.kind == FIXED:
        raise FewshotError(
            f"{type(learner).__name__} is a fixed-class classifier: it is not fitted on episodes, "
            "so it cannot be evaluated on them; pair its encoder with a few-shot method"
        )
    if use_cache and learner.kind == EMBEDDING:  # `encode_batched` checks what it embeds
        return data.data, True
    return learner._check_batch(data.data, "data.data"), False  # checked once per call


def _run_episodes(
    learner,
    data: LabeledTensors,
    items: torch.Tensor,
    sampler,
    device,
    cached: bool,
    embeddings: torch.Tensor | None,
    batch_size: int | None,
    progress: bool,
    tally=None,
) -> np.ndarray:
    """Per-episode accuracies, on cached embeddings (computed here unless given) or on the items."""
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    names = getattr(data, "class_names", None)
    with tqdm(total=len(sampler), desc="eval", unit="ep", disable=not show_progress(progress)) as bar:
        if not cached:
            return _evaluate_per_episode(learner, items, sampler, device, bar, names, tally)
        if embeddings is None:
            embeddings = _embed_used_items(learner.encoder, data.data, sampler, batch_size, progress)
        return _evaluate_cached(learner, embeddings.to(device), sampler, bar, names, tally)


def evaluate(
    learner,
    data: LabeledTensors,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    episodes: int = 1000,
    seed: int = 0,
    device: str | torch.device = "auto",
    episode_file: str | None = None,
    use_cache: bool = True,
    progress: bool = True,
    batch_size: int | None = None,
    skip_small_classes: bool = False,
    save_episodes: str | None = None,
    sampler: EpisodeSampler | EpisodeFile | None = None,
    embeddings: torch.Tensor | None = None,
    within_group: bool = False,
    skip_small_groups: bool = False,
    variable: bool = False,
    group_level: int | None = None,
) -> EvalResult:
    """Evaluate `learner` on N-way K-shot episodes of `data`: an `EvalResult` (mean accuracy,
    ``ci95 = 1.96 * std / sqrt(n)``, per-episode accuracies).

    Args:
        learner: any `FewShotLearner` of kind ``EMBEDDING`` or ``ADAPTIVE``.
        data: labelled test items (``data.data`` ``(n, ...)``, ``data.labels`` ``(n,)``).
        ways, shots, queries, episodes, seed: the episode settings (`episode_file` fixes them).
        episode_file: evaluate on the episodes saved in this file instead.
        use_cache: embed every item once when the learner allows it.
        embeddings: ``(n_items, d)`` embeddings of ``data.data`` by ``learner.encoder``, already
            computed (several methods compared on one encoder embed the data once).
        skip_small_classes: leave out classes with fewer than ``shots + queries`` items.
        save_episodes: also write the episodes drawn to this file (see `EpisodeSampler.save`),
            so that another method or tool can be evaluated on exactly the same episodes.
        sampler: an `EpisodeSampler` or `EpisodeFile` over ``data.labels`` to use as is.
        within_group: draw every episode's classes from one of ``data.class_groups``
            (Omniglot: one alphabet); ``skip_small_groups`` leaves out groups with fewer than
            ``ways`` classes instead of refusing them.
        variable: variable-way, variable-shot episodes, ``ways`` and ``shots`` the most (see
            `EpisodeSampler`); they are evaluated grouped by size.
        group_level: also report accuracy per group of classes, a group being the first
            ``group_level`` folders of the class path (`fewshot.class_accuracy`).
    """
    from fewshot.class_accuracy import ClassTally

    device = resolve_device(device)
    items, cached = _evaluable_items(learner, data, use_cache)
    if sampler is None:
        options = episode_options(data, within_group, skip_small_groups, variable) if not episode_file else {}
        sampler = _new_sampler(
            data, episode_file, ways, shots, queries, episodes, seed, skip_small_classes, **options
        )
    if save_episodes:
        _save_episodes(sampler, save_episodes)
    learner = learner.to(device).eval()
    started = time.perf_counter()
    names = list(getattr(data, "class_names", None) or range(int(data.labels.max()) + 1))
    tally = ClassTally(len(names))
    per_episode = _run_episodes(
        learner, data, items, sampler, device, cached, embeddings, batch_size, progress, tally
    )
    return _result(per_episode, sampler, time.perf_counter() - started, tally.report(names, group_level))


__all__ = ["EvalResult", "EpisodeIndices", "confidence_interval_95", "episode_options", "evaluate"]
