"""`fewshot compare` as a library call: several learners on the same episodes, shot by shot."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError
from fewshot.workflows.compare_checkpoints import parse_checkpoints
from fewshot.workflows.compare_options import check_method_options


@dataclass
class CompareRequest:
    """The settings of one comparison (the options of `fewshot compare`)."""

    methods: list[str] | None = None  # None: every learner that can run on the encoder
    method_options: dict[str, dict[str, Any]] | None = None  # {method: {hyperparameter: value}}
    shots: list[int] | None = None  # None: 1, 2, 4, 8, 16, or with episode_file the files' shots
    ways: int = 5
    queries: int | None = None  # None: up to 15, as many as every class allows
    episodes: int = 200
    encoder: str | None = None
    clip_model: str | None = None
    pretrained: str | None = None
    dataset: str = "omniglot"
    split: str | None = None
    subset: str | None = None  # None: the named set's default part (Omniglot test), else all
    episode_file: list[Path] | None = None
    save_episodes: Path | None = None
    plot: Path | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    progress: bool | None = None
    within_group: bool = False  # every episode's classes from one group (Omniglot: alphabet)
    skip_small_groups: bool = False
    variable_episodes: bool = False  # ways and each column's shots are then the most
    rotations: bool | None = None  # None: the split's default
    checkpoints: list[str] | None = None  # "[LABEL=]PATH": meta-trained models, a row each


def comparable(cls: type) -> bool:
    """Learners compare can run: fitted on frozen embeddings, without classes of their own."""
    from fewshot.learners.base import EMBEDDING

    return cls.kind == EMBEDDING and not cls.fixed_classes


def default_methods(has_text: bool, trained: str | None = None) -> list[str]:
    """Every comparable learner (those that need class names only with a text encoder; those
    with a ``trained_head`` only when ``trained``, the checkpoint's learner, is one), in the
    order their classes declare (``compare_rank``), then by name."""
    from fewshot.learners import LEARNERS

    chosen = [n for n in LEARNERS.names() if comparable(LEARNERS.get(n))]
    chosen = [n for n in chosen if has_text or not LEARNERS.get(n).uses_class_names]
    chosen = [n for n in chosen if n == trained or not LEARNERS.get(n).trained_head]
    return sorted(chosen, key=lambda n: (LEARNERS.get(n).compare_rank, n))


def check_methods(names: list[str]) -> None:
    """Known methods that run on a frozen encoder (compare embeds the data once per encoder)."""
    from fewshot.learners import LEARNERS

    runs = [n for n in LEARNERS.names() if comparable(LEARNERS.get(n))]
    for name in names:
        cls = LEARNERS.get(name)  # unknown names fail here, with the list of choices
        if not (comparable(cls) or cls.compare_adaptive):  # CLIP-LoRA: only when named
            kind = "is a fixed-class model" if cls.fixed_classes else "adapts its encoder"
            raise FewshotError(
                f"--methods {name}: {name} {kind}, and compare runs frozen-encoder methods only "
                f"({', '.join(runs)}); evaluate it with `fewshot eval --method {name}`"
            )


def check_request(r: CompareRequest) -> None:
    """Refuse bad settings before any loading (one line naming the option)."""
    if r.plot is not None and r.plot.suffix.lower() != ".png":
        raise FewshotError(f"--plot must be a .png file, got {r.plot}")
    if r.plot is not None:  # fail before any work when matplotlib is missing
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise FewshotError("--plot needs matplotlib: pip install 'fewshot[plot]'") from None
    if r.save_episodes is not None and r.save_episodes.exists() and not r.save_episodes.is_dir():
        raise FewshotError(
            f"--save-episodes {r.save_episodes} is a file: give a folder for the episode files"
        )
    parse_checkpoints(r.checkpoints)  # every file exists
    # a checkpoint's learner, which its options may name, is known once it is read (run_compare)
    if r.methods is not None:
        check_methods(r.methods)
        if not r.checkpoints:
            check_method_options(r.method_options or {}, r.methods)
    elif not r.checkpoints:
        check_methods(list(r.method_options or {}))  # methods compare can run (defaults follow)
    from fewshot.workflows.episodes import rotated_split

    rotated_split(r.dataset, r.split, r.rotations)  # refuses --rotations on a data set without


def run_compare(request: CompareRequest) -> tuple[list[Any], str]:
    """Embed the data once, run every method on the same episode files; write the plot.
    Returns ``(rows, title)``."""
    from fewshot.device import resolve_device
    from fewshot.transfer.compare import compare_methods, default_queries, episode_files_for, plot_rows
    from fewshot.workflows.compare_checkpoints import checkpoint_data, checkpoint_learners

    r = request
    check_request(r)
    device = resolve_device(r.device)
    source, data, subset = _source_and_data(r, device)
    own = source.meta.get("learner") if source.learner is not None else None
    names = r.methods or default_methods(hasattr(source.encoder, "encode_text"), own)
    check_methods(names)
    extra = checkpoint_learners(
        parse_checkpoints(r.checkpoints), names, r.ways, r.method_options or {}, device, r.seed
    )
    check_method_options(r.method_options or {}, names + [s.meta["learner"] for _, s in extra.values()])
    shots = r.shots or ([] if r.episode_file else [1, 2, 4, 8, 16])  # [] : the files' shots only
    queries = r.queries or default_queries(data.labels, shots or [1])
    options = _episode_options(r, data, shots, queries)
    learners = _learners(names, source, r.seed, r.method_options or {})
    learners.update({name: learner for name, (learner, _) in extra.items()})
    load = partial(_load, r, subset)
    own_data = checkpoint_data({n: s for n, (_, s) in extra.items()}, source, data, load)
    with _episode_folder(r.save_episodes) as folder:
        files = episode_files_for(
            data.labels, shots, r.ways, queries, r.episodes, r.seed, folder, r.episode_file, options
        )
        rows = compare_methods(learners, data, files, device, progress=r.progress, data_for=own_data)
    where = r.dataset if named(r.dataset) else Path(r.dataset).name
    title = f"{source.description} on {where} {subset}: {rows[0].ways}-way, {rows[0].queries} queries/class"
    if r.plot is not None:
        plot_rows(rows, r.plot, title)
    return rows, title


def _episode_options(r: CompareRequest, data, shots: list[int], queries: int) -> dict[str, Any]:
    """The sampler options of ``--within-group`` / ``--variable-episodes``, checked on `data`
    at the largest shots before any embedding."""
    from fewshot.episode_draws import episode_options
    from fewshot.workflows.episodes import check_episodes

    chosen = {"within_group": r.within_group, "skip_small_groups": r.skip_small_groups}
    if r.episode_file:  # given files impose their own settings; new draws check when made
        return episode_options(data, variable=r.variable_episodes, **chosen)
    return check_episodes(data, r.ways, max(shots), queries, r.seed, variable=r.variable_episodes, **chosen)


def named(dataset: str) -> bool:
    from fewshot.data.catalog import DATASETS

    return dataset in DATASETS


def _load(r: CompareRequest, subset: str, source):
    """The data set as ``source``'s encoder reads it."""
    from fewshot.build import load_for_encoder
    from fewshot.workflows.episodes import rotated_split

    split = rotated_split(r.dataset, r.split, r.rotations)
    return load_for_encoder(source, r.dataset, subset, split, r.data_dir, r.seed)


def _source_and_data(r: CompareRequest, device):
    from fewshot.build import build_encoder, embedding_source
    from fewshot.data.loading import default_subset, is_embedding_file
    from fewshot.workflows.episodes import rotated_split

    subset = r.subset or default_subset(r.dataset)
    if r.encoder in (None, "identity") and is_embedding_file(r.dataset):
        split = rotated_split(r.dataset, r.split, r.rotations)
        source, data = embedding_source(r.dataset, subset, split, r.seed)
        return source, data, subset
    options = {"model": r.clip_model, "pretrained": r.pretrained}
    source = build_encoder(r.encoder, device, options, seed=r.seed)
    return source, _load(r, subset, source), subset


def _learners(names: list[str], source, seed: int, options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each method around the one encoder, with its ``options`` (a checkpoint's own learner for
    its own method, the options set on it)."""
    from fewshot.build import build_learner
    from fewshot.build.learners import rewrap

    learners = {}
    for name in names:
        if source.learner is not None and name == source.meta.get("learner"):
            learners[name] = rewrap(source, name, options.get(name), seed)
        else:
            learners[name] = build_learner(name, source.encoder, options.get(name), seed=seed)
    return learners


def _episode_folder(save_episodes: Path | None):
    """The folder the episode files go to: ``save_episodes`` (kept), else a temporary one."""
    from contextlib import contextmanager

    from fewshot.transfer.compare import temporary_folder

    @contextmanager
    def folder():
        with temporary_folder() as scratch:
            path = Path(save_episodes) if save_episodes else Path(scratch)
            path.mkdir(parents=True, exist_ok=True)
            yield path

    return folder()
