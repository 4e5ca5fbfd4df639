"""`fewshot eval` as a library call: a model and a data set -> accuracy with a 95% CI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError

DEFAULTS = {"ways": 5, "shots": 1, "queries": 15, "episodes": 1000}


@dataclass
class EvalRequest:
    """The settings of one evaluation (the options of `fewshot eval`).

    ways/shots/queries/episodes None: the defaults (`DEFAULTS`), or an episode file's own.
    """

    ways: int | None = None
    shots: int | None = None
    queries: int | None = None
    episodes: int | None = None
    method: str | None = None
    checkpoint: Path | None = None
    encoder: str | None = None
    model: str | None = None  # encoder options (CLIP: architecture, weights, precision)
    pretrained: str | None = None
    precision: str | None = None
    metric: str | None = None
    dataset: str = "omniglot"
    split: str | None = None
    subset: str = "test"
    episode_file: Path | None = None
    save_episodes: Path | None = None
    skip_small_classes: bool = False
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    image_size: int | None = None
    progress: bool | None = None
    within_group: bool = False  # every episode's classes from one group (Omniglot: alphabet)
    skip_small_groups: bool = False
    variable_episodes: bool = False  # ways and shots are then the most
    rotations: bool | None = None  # None: the split's default
    group_level: int | None = None  # also accuracy per group: the first N folders of the class path


@dataclass
class EvalOutcome:
    """An `EvalResult` and what was evaluated: the model's metadata, the learner, the data."""

    result: Any
    meta: dict
    learner: Any
    split: str | None
    extra: dict = field(default_factory=dict)


def episode_settings(
    episode_file: Path | None,
    within_group: bool = False,
    variable: bool = False,
    **given: int | None,
) -> dict[str, int]:
    """ways/shots/queries/episodes: the defaults, or with an episode file its own settings, after
    checking that no option given contradicts them (one line naming the options); the file is
    read once, for both checks."""
    if episode_file is None:
        return {k: DEFAULTS[k] if v is None else v for k, v in given.items()}
    from fewshot.sampling import read_episode_settings

    imposed = read_episode_settings(episode_file)
    clash = [f"--{k} {v}" for k, v in given.items() if v is not None and v != imposed[k]]
    if clash:
        verb = "contradicts" if len(clash) == 1 else "contradict"
        raise FewshotError(
            f"{' and '.join(clash)} {verb} {episode_file}, which holds {imposed['episodes']} "
            f"{imposed['ways']}-way {imposed['shots']}-shot episodes with {imposed['queries']} "
            "queries per class: leave the option out or draw new episodes (without --episode-file)"
        )
    check_file_flags(episode_file, imposed, within_group, variable)
    return {k: imposed[k] for k in given}


def check_file_flags(episode_file: Path, imposed: dict, within_group: bool, variable: bool) -> None:
    """Refuse ``--within-group`` / ``--variable-episodes`` with an episode file drawn otherwise
    (a file replays its own episodes, drawn as it records)."""
    for flag, given, key in (
        ("--within-group", within_group, "within_group"),
        ("--variable-episodes", variable, "variable"),
    ):
        if given and not imposed[key]:
            raise FewshotError(
                f"{flag} contradicts {episode_file}, whose episodes were not drawn so: leave it out"
            )


def run_eval(request: EvalRequest) -> EvalOutcome:
    """Build the model, load the data as the model expects and evaluate on episodes."""
    from fewshot.device import resolve_device
    from fewshot.evaluation import evaluate

    r = request
    task = episode_settings(
        r.episode_file,
        r.within_group,
        r.variable_episodes,
        ways=r.ways,
        shots=r.shots,
        queries=r.queries,
        episodes=r.episodes,
    )
    device = resolve_device(r.device)
    learner, meta, data, split = model_and_data(r, device)
    result = evaluate(
        learner,
        data,
        **task,
        seed=r.seed,
        device=device,
        episode_file=str(r.episode_file) if r.episode_file else None,
        progress=r.progress,
        skip_small_classes=r.skip_small_classes,
        save_episodes=str(r.save_episodes) if r.save_episodes else None,
        within_group=r.within_group and not r.episode_file,
        skip_small_groups=r.skip_small_groups,
        variable=r.variable_episodes and not r.episode_file,
        group_level=r.group_level,
    )
    return EvalOutcome(result, meta, learner, split)


def model_and_data(r: EvalRequest, device) -> tuple[Any, dict, Any, str | None]:
    """The learner, its metadata, the test data prepared for it, and the split used.

    An encoder built to the data's shape (Conv-4, identity) needs the data first; any other
    model decides how the data is prepared (a checkpoint's preprocessing, CLIP's own).
    """
    from fewshot.build import (
        build_model,
        check_learner_options,
        data_transform,
        load_data,
        sized_by_data,
    )
    from fewshot.build.data import load_through_preprocess, reads_pil
    from fewshot.data.catalog import named_dataset
    from fewshot.data.loading import is_embedding_file
    from fewshot.workflows.episodes import rotated_split

    encoder = r.encoder
    if encoder is None and r.checkpoint is None and is_embedding_file(r.dataset):
        encoder = "identity"  # an embedding file holds features: nothing to embed
    named = named_dataset(r.dataset)
    options = {"model": r.model, "pretrained": r.pretrained, "precision": r.precision}
    learner_options = {"metric": r.metric}
    build = dict(encoder_options=options, learner_options=learner_options, device=device, seed=r.seed)
    split = r.split
    rotated_split(r.dataset, split, r.rotations)  # refuses --rotations before any work
    if r.checkpoint is None and encoder is not None and sized_by_data(encoder):
        split = rotated_split(r.dataset, split, r.rotations)
        check_learner_options(r.method or "protonet", learner_options)  # before loading the data
        data = load_data(r.dataset, r.subset, split, r.data_dir, r.image_size, r.seed)
        learner, meta = build_model(r.method, None, encoder, data_shape=tuple(data.data.shape), **build)
    else:
        learner, meta = build_model(r.method, r.checkpoint, encoder, **build)
        trained_on = meta.get("dataset") or {}
        image_size = r.image_size or trained_on.get("image_size")
        if split is None and named is not None and trained_on.get("dataset") == r.dataset:
            # the protocol trained on, with the split's own rotations default (Lake's trains
            # with rotations, tests without) unless --rotations says otherwise
            split = _base_split(named, trained_on.get("split"))
        split = rotated_split(r.dataset, split, r.rotations)
        transform = data_transform(meta, learner)
        if named is not None and not named.takes_transform and reads_pil(learner.encoder):
            data = load_through_preprocess(learner.encoder, r.dataset, r.subset, split, r.data_dir, r.seed)
        else:
            data = load_data(r.dataset, r.subset, split, r.data_dir, image_size, r.seed, transform=transform)
    if split is None and named is not None:
        split = named.default_split
    from fewshot.transfer.sources import weights_provenance

    meta.update(weights_provenance(learner.encoder))  # source and licence of pretrained weights
    return learner, meta, data, split


def _base_split(named, split: str | None) -> str | None:
    """A trained-on split without its rotations suffix (data sets that have rotations)."""
    if split is None or not hasattr(named, "with_rotations"):
        return split
    return named.with_rotations(split, None)
