"""Learners from a method name: hyperparameters checked against the constructor."""

from __future__ import annotations

from typing import Any

from fewshot.build.encoders import EncoderSource, _given, _seeded, option_flag
from fewshot.errors import FewshotError


def build_learner(
    method: str,
    encoder: Any,
    options: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    seed: int | None = 0,
):
    """The learner registered as ``method`` around ``encoder``.

    ``options`` are hyperparameters the user set (None values dropped): one the learner does
    not take, or a value outside its ``Literal`` choices, is refused naming the option.
    ``context`` holds facts of the task (``ways``) passed only to learners that take them.
    The learner's ``defaults_for(encoder)`` fills what the user left out. New weights (heads)
    are drawn from ``seed``.
    """
    from fewshot.learners import LEARNERS

    cls = LEARNERS.get(method)
    given = check_learner_options(method, options)
    accepted = cls.param_names()
    kwargs = {**cls.defaults_for(encoder), **given}
    kwargs.update({k: v for k, v in _given(context).items() if k in accepted and k not in kwargs})
    with _seeded(seed):
        return cls(encoder, **{k: v for k, v in kwargs.items() if k in accepted})


def check_learner_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options that are set, after refusing one ``method`` does not take or a bad choice."""
    from fewshot.learners import LEARNERS

    cls = LEARNERS.get(method)
    given = _given(options)
    accepted, choices = cls.param_names(), cls.param_choices()
    for key, value in given.items():
        if key not in accepted:
            raise FewshotError(f"{option_flag(key)} does not apply to {method}")
        if key in choices and value not in choices[key]:
            raise FewshotError(f"unknown {key} {value!r}; choose one of: {', '.join(choices[key])}")
    return given


def rewrap(source: EncoderSource, method: str, options: dict[str, Any] | None, seed: int = 0):
    """A checkpoint's model as ``method``: its own learner (``options`` set on it), or its
    encoder inside ``method`` when that learner works on frozen embeddings."""
    from fewshot.learners import LEARNERS
    from fewshot.learners.base import EMBEDDING

    own = source.meta["learner"]
    if method == own:
        learner, given = source.learner, check_learner_options(method, options)
        for key, value in given.items():
            setattr(learner, key, value)  # scikit-learn's set_params
        return learner
    cls = LEARNERS.get(method)
    if cls.fixed_classes:
        raise FewshotError(
            f"--method {method} is a fixed-class model that `fewshot finetune` saves, not a "
            "few-shot method: give its file to `fewshot predict --checkpoint`"
        )
    if cls.kind != EMBEDDING:
        raise FewshotError(
            f"--method {method} adapts its encoder and cannot reuse a {own} checkpoint: "
            f"train one with `fewshot train --method {method}`"
        )
    return build_learner(method, source.encoder, options, seed=seed)
