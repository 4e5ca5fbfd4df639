"""`fewshot train` as a library call: settings -> a meta-trained checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class TrainRequest:
    """The settings of one meta-training run (the options of `fewshot train`)."""

    method: str = "protonet"
    encoder: str = "conv4"
    dataset: str = "omniglot"
    split: str | None = None
    ways: int | None = None  # None: the learner's default_train_ways
    shots: int = 1
    queries: int = 5
    steps: int = 10_000
    lr: float = 1e-3
    lr_step: int | None = None  # None: the learner's train_defaults, else 2,000
    meta_batch: int | None = None  # None: the learner's train_defaults, else 1
    inner_lr: float | None = None
    inner_steps: int | None = None
    test_inner_steps: int | None = None
    first_order: bool = False
    learn_inner_lr: bool = False
    strategy: str | None = None
    metric: str | None = None
    val_every: int = 500
    val_episodes: int = 200
    mixed_precision: bool = True
    patience: int = 0
    trainval: bool = False
    out: Path = Path("runs/model.safetensors")
    resume: bool = True
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    image_size: int | None = None
    progress: bool | None = None
    within_group: bool = False  # every episode's classes from one group (Omniglot: alphabet)
    skip_small_groups: bool = False
    variable_episodes: bool = False  # ways and shots are then the most
    rotations: bool | None = None  # None: the split's default
    nproc: int = 1  # processes (torch.distributed); each takes part of every meta-batch

    def episode_options(self) -> dict[str, bool]:
        """How the training episodes are drawn (`fewshot.episode_draws.episode_options`)."""
        return {
            "within_group": self.within_group,
            "skip_small_groups": self.skip_small_groups,
            "variable": self.variable_episodes,
        }

    def learner_options(self) -> dict[str, Any]:
        """The learner hyperparameters the user set (flags only when given)."""
        return {
            "metric": self.metric,
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
            "test_inner_steps": self.test_inner_steps,
            "first_order": True if self.first_order else None,
            "learn_inner_lr": True if self.learn_inner_lr else None,
            "strategy": self.strategy,
        }


def check_trainable(method: str) -> type:
    """The learner class of ``method``, refused unless it defines a meta-training loss."""
    from fewshot.learners import LEARNERS

    cls = LEARNERS.get(method)
    if not cls.meta_trainable:
        trainable = ", ".join(n for n in LEARNERS.names() if LEARNERS.get(n).meta_trainable)
        raise FewshotError(
            f"method {method!r} has no meta-training loss; `fewshot train` trains {trainable} "
            "(use `fewshot finetune` for fine-tuning strategies)"
        )
    return cls


def meta_train(request: TrainRequest):
    """Check the settings, load the data, build the model and run `fewshot.training.train`.
    Returns ``(TrainResult, validated)``; validated is False for a ``trainval`` run."""
    import torch

    from fewshot.build import build_encoder, build_learner, check_learner_options
    from fewshot.checkpoints import learner_metadata
    from fewshot.data.loading import load_train_val
    from fewshot.encoders import ENCODERS
    from fewshot.runs import check_output_file
    from fewshot.workflows.episodes import check_episodes, rotated_split

    r = request
    ENCODERS.get(r.encoder)
    options = check_learner_options(r.method, r.learner_options())
    cls = check_trainable(r.method)
    ways = r.ways or cls.default_train_ways
    check_output_file(r.out, "--out")
    if r.nproc > 1:
        from fewshot.scale.dist_training import check_launch, launch

        check_launch(r, cls)
        return launch(meta_train, r, r.nproc)
    split = rotated_split(r.dataset, r.split, r.rotations)
    train_data, val_data = load_train_val(r.dataset, split, r.trainval, r.data_dir, r.image_size, r.seed)
    check_episodes(train_data, ways, r.shots, r.queries, r.seed, **r.episode_options())
    torch.manual_seed(r.seed)  # one stream for every initial weight, encoder first
    source = build_encoder(r.encoder, "cpu", data_shape=tuple(train_data.data.shape), seed=None)
    learner = build_learner(r.method, source.encoder, options, context={"ways": ways}, seed=None)
    if r.variable_episodes and learner.get_params().get("ways"):
        raise FewshotError(
            f"--variable-episodes: {r.method} has a fixed {learner.get_params()['ways']}-way head; "
            "train it on fixed-way episodes (drop --variable-episodes)"
        )
    config = _config(r, learner, ways, val_data)
    learner.record_training(config)
    meta = learner_metadata(r.method, r.encoder, learner)
    result = _trainer()(
        learner,
        train_data,
        r.out,
        config,
        val_data=val_data,
        metadata=meta,
        resume=r.resume,
        progress=r.progress,
    )
    return result, val_data is not None


def _trainer():
    """`fewshot.training.train`, or its distributed form under a launcher (torchrun)."""
    from functools import partial

    from fewshot.scale.distributed import ranks_from_env
    from fewshot.training import train

    ranks = ranks_from_env()
    if ranks is None:
        return train
    from fewshot.scale.dist_training import train_distributed

    return partial(train_distributed, ranks)


def _config(r: TrainRequest, learner, ways: int, val_data):
    from fewshot.training import TrainConfig

    defaults = learner.train_defaults()
    head_ways = learner.get_params().get("ways") or 5  # a learner with a fixed-size head
    n_val_classes = val_data.n_classes if val_data is not None else 5
    return TrainConfig(
        ways=ways,
        shots=r.shots,
        queries=r.queries,
        steps=r.steps,
        lr=r.lr,
        lr_step=defaults.get("lr_step", 2_000) if r.lr_step is None else r.lr_step,
        meta_batch=defaults.get("meta_batch", 1) if r.meta_batch is None else r.meta_batch,
        val_episodes=r.val_episodes,
        val_every=r.val_every,
        patience=r.patience,
        seed=r.seed,
        device=r.device,
        mixed_precision=r.mixed_precision,
        val_ways=min(5, head_ways, n_val_classes),
        extra=_episode_extra(r),
    )


def _episode_extra(r: TrainRequest) -> dict:
    """`TrainConfig.extra` for the episode options set (none: {}, as before they existed), so
    that a run's settings (and resuming) include them. Validation episodes are never drawn
    within groups: held-out classes leave too few per group."""
    chosen = {k: v for k, v in r.episode_options().items() if v}
    return {"episodes": chosen} if chosen else {}
