"""The learner contract shared by every few-shot method.

Modelled on scikit-learn: the constructor only stores hyperparameters (and the encoder, its
first argument); ``fit(support_x, support_y)`` learns from one task's support set and
returns ``self``; state learned by ``fit`` ends in ``_``; ``predict``/``predict_proba``
before ``fit`` raise `NotFittedError`. Hyperparameters are the constructor's parameters
after the encoder, each stored under its own name: `FewShotLearner.get_params` reads them
from the signature (checkpoints store them as ``learner_config``), so no learner writes a
``config()`` of its own.

**Kinds.** Every learner declares ``kind``, which tells evaluation and training how to run it:

- ``EMBEDDING`` (``"embedding"``, the default): works on frozen embeddings. It implements
  ``_fit_embeddings(z, y)`` and ``logits_embeddings(z)`` on ``(n, d)`` embeddings; the base
  class supplies ``fit``/``logits`` around the encoder, and evaluation embeds every test item
  once, then fits episode after episode on the cached embeddings. Optional:
  ``batch_logits_embeddings(support_z (B, N, K, d), query_z (B, M, d)) -> (B, M, N)``, a block
  of episodes in one tensor operation (ProtoNet, SimpleShot, Finetune).
- ``ADAPTIVE`` (``"adaptive"``): adapts its network per task (MAML, fine-tuning with the last
  block). It implements ``_fit(x, y)`` and ``logits(x)`` on raw items; evaluation fits it
  episode by episode. Optional: ``batch_episode_predictions(support_x, support_y, query_x)``
  -> ``(B, n_q)`` labels, a block of episodes fitted and predicted in one call.
- ``FIXED`` (``"fixed"``): a classifier of its own classes (``class_names``), never fitted on
  a support set; it implements ``logits(x)`` and ``fit`` refuses (`fewshot predict` needs no
  support set for it). ``fixed_classes`` is True exactly for this kind.

A hyperparameter may decide the kind: such a learner sets ``self.kind`` in ``__init__``
(Finetune: ``ADAPTIVE`` when ``train_last_block``).

**Capabilities**, documented class attributes with defaults below: ``uses_class_names``
(evaluation calls ``set_class_names(names)`` before each ``fit``), ``meta_trainable``
(defines ``episode_loss(episode) -> (loss, accuracy)`` for `fewshot.training.train`; implied
by defining ``episode_loss``), ``default_train_ways`` and ``fit_signature``. Optional hooks a
class defines are recorded once, when the class is created (``batches_embeddings``,
``batches_episodes``, ``runs_meta_batch``), so that callers read flags instead of probing
objects with ``hasattr``. `check_contract` verifies a class against all this.

Labels: ``fit`` accepts any integer labels (``[0, 0, 7, 7, 9]``); ``classes_`` holds the
sorted distinct labels, ``predict`` returns values of ``classes_`` and ``predict_proba``
has ``len(classes_)`` columns in that order. Subclasses never see the original labels:
they implement ``_fit(x, y)`` or ``_fit_embeddings(z, y)`` with ``y`` in ``0..C-1``
(``fit`` maps the labels once; episodes from the sampler are already ``0..N-1``, which
evaluation passes straight to ``_fit_embeddings``).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import torch
from torch import nn

from fewshot.errors import FewshotError, NotFittedError
from fewshot.inputs import check_batch, check_labels, model_dtype
from fewshot.sampling import Episode

EMBEDDING = "embedding"
ADAPTIVE = "adaptive"
FIXED = "fixed"
KINDS = (EMBEDDING, ADAPTIVE, FIXED)
# optional hook -> the flag that records it
HOOKS = {
    "batch_logits_embeddings": "batches_embeddings",
    "batch_episode_predictions": "batches_episodes",
    "meta_batch_backward": "runs_meta_batch",
}


def caches_embeddings(learner: Any) -> bool:
    """True when evaluation may embed every item once (a learner of kind ``EMBEDDING``)."""
    return isinstance(learner, FewShotLearner) and learner.kind == EMBEDDING


class _FromKind:
    """A flag read from ``kind`` on the class or the instance (``frozen_encoder``, ``fixed_classes``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __get__(self, obj: Any, owner: type) -> bool:
        return (owner if obj is None else obj).kind == self.kind


def _legacy_kind(cls: type) -> str:
    """The kind of a class that declares the older ``frozen_encoder``/``fixed_classes`` flags."""
    if vars(cls).get("fixed_classes", False):
        return FIXED
    if cls.frozen_encoder and cls._fit_embeddings is not FewShotLearner._fit_embeddings:
        return EMBEDDING
    return ADAPTIVE


class FewShotLearner(nn.Module):
    """Base class: see the module docstring for the kinds and what each implements.

    ``support_x`` ``(n, ...)``, ``support_y`` ``(n,)`` any integer labels;
    ``query_x`` ``(M, ...)`` -> logits ``(M, len(classes_))``.
    """

    #: How evaluation and training run this learner: ``EMBEDDING``, ``ADAPTIVE`` or ``FIXED``.
    kind: str = EMBEDDING
    #: Evaluation calls ``set_class_names(names)`` with the episode's class names before ``fit``
    #: (zero-shot, Tip-Adapter): the data set must have class names.
    uses_class_names: bool = False
    #: Scores the episode's queries jointly, using them unlabelled (BD-CSPN, TIM, ...): a query's
    #: prediction may depend on the other queries. False: each query is scored on its own.
    transductive: bool = False
    #: Defines ``episode_loss`` for `fewshot.training.train` (`fewshot train --method NAME`).
    meta_trainable: bool = False
    #: Classes per training episode when `fewshot train` is not given ``--ways``.
    default_train_ways: int = 60
    #: Has weights of its own that only meta-training sets (a relation module, an attention
    #: block): untrained they score near chance, so `fewshot compare` leaves it out of its
    #: default methods unless the checkpoint given was trained as this learner.
    trained_head: bool = False
    #: Where `fewshot compare` lists this learner among its default methods (lower first).
    compare_rank: int = 100
    #: Needs a CLIP encoder's own towers (open_clip's text transformer, its attention layers),
    #: not just ``encode_text``: prompt tuning (CoOp), LoRA. Tests build such learners on a CLIP.
    needs_clip_towers: bool = False
    #: An ``ADAPTIVE`` learner that `fewshot compare` runs when named in ``--methods`` (fitted
    #: episode by episode on the raw items; CLIP-LoRA). Never among compare's default methods.
    compare_adaptive: bool = False
    #: Defines ``classifier_weights()``: its fitted model is a linear head on L2-normalised
    #: features, so `fewshot finetune --strategy NAME` saves it as a `Classifier` (CoOp, LP++).
    exports_classifier: bool = False
    #: How this learner is fitted, for the not-fitted message.
    fit_signature: str = "fit(support_x, support_y)"
    #: The optional hooks this class defines (set by ``__init_subclass__``, never by hand).
    batches_embeddings: bool = False
    batches_episodes: bool = False
    runs_meta_batch: bool = False
    #: The sorted distinct labels seen by the last ``fit`` (None: outputs are ``0..C-1``).
    classes_: torch.Tensor | None = None

    #: Older spellings of the kind, kept for callers written before ``kind``.
    frozen_encoder = _FromKind(EMBEDDING)
    fixed_classes = _FromKind(FIXED)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "kind" not in own and ("frozen_encoder" in own or "fixed_classes" in own):
            cls.kind = _legacy_kind(cls)
        if "meta_trainable" not in own and "episode_loss" in own:
            cls.meta_trainable = True
        for hook, flag in HOOKS.items():
            setattr(cls, flag, hasattr(cls, hook))

    # -- hyperparameters ------------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        """Constructor parameters after the encoder; a ``**kwargs`` forwards to the parent's."""
        chain: list[list[str]] = []
        for klass in cls.__mro__:
            if klass is FewShotLearner:
                break
            if "__init__" not in vars(klass):
                continue
            params = list(inspect.signature(klass.__init__).parameters.values())[2:]  # self, encoder
            named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            chain.append([p.name for p in params if p.kind in named])
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                break
        # the parent's order first (the order of its documented arguments), then what subclasses add
        return list(dict.fromkeys(name for names in reversed(chain) for name in names))

    @classmethod
    def param_names(cls) -> list[str]:
        """The hyperparameters a user may set (`fewshot.build.build_learner` refuses others)."""
        return cls._param_names()

    @classmethod
    def param_choices(cls) -> dict[str, tuple]:
        """Hyperparameters typed as a ``Literal``: name -> the values it accepts."""
        choices: dict[str, tuple] = {}
        for klass in reversed(cls.__mro__[: cls.__mro__.index(FewShotLearner)]):
            if "__init__" in vars(klass):
                hints = typing.get_type_hints(klass.__init__)
                for name, hint in hints.items():
                    if typing.get_origin(hint) is typing.Literal:
                        choices[name] = typing.get_args(hint)
        return choices

    @classmethod
    def defaults_for(cls, encoder: Any) -> dict[str, Any]:
        """Hyperparameters that suit ``encoder`` when the user sets none (e.g. ProtoNet on CLIP:
        scaled cosine, CLIP's own zero-shot head); `fewshot.build.build_learner` applies them."""
        return {}

    def record_training(self, config: Any) -> None:
        """Keep what inference needs to know of the training episodes (``config``, a
        `fewshot.training.TrainConfig`); `fewshot train` calls it before the checkpoint's
        metadata is taken. Most learners need nothing (Relation Networks: the shots)."""

    def check_ways(self, ways: int) -> None:
        """Refuse ``ways``-way tasks this model cannot classify (MAML's fixed-size head), in one
        line, before any episode runs; most learners take any number of classes."""

    def train_defaults(self) -> dict[str, Any]:
        """`fewshot.training.TrainConfig` values this learner's paper uses (MAML: ``meta_batch``,
        ``lr_step``), applied where the user set none."""
        return {}

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters (constructor arguments after the encoder), as scikit-learn's ``get_params``:
        ``type(learner)(learner.encoder, **learner.get_params())`` builds the same learner."""
        return {name: getattr(self, name) for name in self._param_names()}

    def config(self) -> dict[str, Any]:
        """JSON-able hyperparameters, stored in checkpoints as ``learner_config`` (= `get_params`)."""
        return self.get_params()

    # -- fitting --------------------------------------------------------------------------

    def _check_batch(self, x: Any, what: str) -> torch.Tensor:
        encoder = getattr(self, "encoder", None)
        return check_batch(x, what, getattr(encoder, "input_size", None), model_dtype(self))

    def _learn_classes(self, support_y: Any, n_items: int) -> torch.Tensor:
        """Set ``classes_`` from the labels; return the labels as ``0..C-1`` indices."""
        labels = check_labels(support_y, n_items)
        classes, encoded = torch.unique(labels, sorted=True, return_inverse=True)
        if classes.numel() < 2:
            raise FewshotError(
                f"support_y has a single class ({int(classes[0])}): a few-shot task needs at least 2 classes"
            )
        self.classes_ = classes
        return encoded

    def fit(self, support_x: Any, support_y: Any) -> FewShotLearner:
        """Learn one task from ``support_x`` ``(n, ...)`` and integer labels ``support_y`` ``(n,)``."""
        x = self._check_batch(support_x, "support_x")
        y = self._learn_classes(support_y, x.shape[0]).to(x.device)
        return self._fit(x, y)

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> FewShotLearner:
        """``fit`` on checked inputs with labels ``0..C-1`` (``EMBEDDING``: embed, then `_fit_embeddings`)."""
        if self.kind != EMBEDDING:
            raise NotImplementedError(f"{type(self).__name__} (kind {self.kind!r}) must implement _fit")
        with torch.no_grad():
            return self._fit_embeddings(self.encoder(support_x), support_y)

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> FewShotLearner:
        """``EMBEDDING`` kind: fit on embeddings ``(n, d)`` with labels ``0..C-1``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _fit_embeddings")

    def fit_embeddings(self, support_z: Any, support_y: Any) -> FewShotLearner:
        """Fit on already-embedded support items ``(n, d)`` with integer labels ``(n,)``."""
        if self.kind != EMBEDDING:
            raise FewshotError(f"{type(self).__name__} fits on inputs, not embeddings: call fit")
        z = check_batch(support_z, "support_z", None, model_dtype(self))
        return self._fit_embeddings(z, self._learn_classes(support_y, z.shape[0]).to(z.device))

    # -- prediction -----------------------------------------------------------------------

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """``EMBEDDING`` kind: logits ``(M, C)`` of embedded queries ``(M, d)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement logits_embeddings")

    def logits(self, query_x: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of checked queries ``(M, ...)`` (``EMBEDDING``: embed, then score)."""
        if self.kind != EMBEDDING:
            raise NotImplementedError(f"{type(self).__name__} (kind {self.kind!r}) must implement logits")
        return self.logits_embeddings(self.encoder.encode(query_x))

    def _check_fitted(self, *attributes: str) -> None:
        if any(getattr(self, name, None) is None for name in attributes):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call {self.fit_signature} first")

    def _classes_of(self, indices: torch.Tensor) -> torch.Tensor:
        if self.classes_ is None:
            return indices
        return self.classes_.to(indices.device)[indices]

    @torch.no_grad()
    def predict_proba(self, query_x: Any) -> torch.Tensor:
        """``(M, ...)`` -> ``(M, len(classes_))`` class probabilities, columns in ``classes_`` order."""
        return self.logits(self._check_batch(query_x, "query_x")).float().softmax(-1)

    @torch.no_grad()
    def predict(self, query_x: Any) -> torch.Tensor:
        """``(M, ...)`` -> ``(M,)`` predicted labels (values of ``classes_``)."""
        logits = self.logits(self._check_batch(query_x, "query_x"))
        return self._classes_of(logits.argmax(-1))

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Meta-training loss on one episode: ``(loss, accuracy)`` scalars (``meta_trainable``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be meta-trained")


def check_contract(learner: FewShotLearner) -> None:
    """Raise `FewshotError` naming what `learner` (an instance) breaks in the contract."""
    cls, problems = type(learner), []
    if learner.kind not in KINDS:
        problems.append(f"kind {learner.kind!r} is not one of {', '.join(KINDS)}")
    required = {EMBEDDING: ("_fit_embeddings", "logits_embeddings"), ADAPTIVE: ("_fit", "logits")}
    needs = [(name, name) for name in required.get(learner.kind, ("logits",))]
    if learner.uses_class_names and not callable(getattr(learner, "set_class_names", None)):
        problems.append("uses_class_names needs set_class_names(names)")
    if learner.meta_trainable:
        needs.append(("meta_trainable", "episode_loss"))
    for why, name in needs:
        if vars(FewShotLearner)[name] is inspect.getattr_static(cls, name):
            problems.append(f"{why} needs {name}" if why != name else f"kind {learner.kind!r} needs {name}")
    if not (isinstance(learner.default_train_ways, int) and learner.default_train_ways >= 2):
        problems.append(f"default_train_ways must be an integer >= 2, got {learner.default_train_ways!r}")
    if problems:
        raise FewshotError(f"{cls.__name__} breaks the learner contract: " + "; ".join(problems))
