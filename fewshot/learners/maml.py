"""MAML (Finn et al., 2017), first-order MAML and ANIL (Raghu et al., 2020), written functionally.

The network is an encoder plus a linear head of ``ways`` outputs. Its parameters live in a
dict; the inner loop evaluates the network with `torch.func.functional_call` on adapted
copies of that dict, so the module itself is never cloned or patched and ``fit`` never
changes the stored meta-parameters. A meta-batch runs one task after another (``loop``) or
vectorised (``vmap``, ``grouped``; ``auto`` picks one): see `fewshot.learners.maml_strategies`.

BatchNorm: as in the MAML paper's code, BatchNorm always normalises with the statistics of
the batch it is given and keeps no running statistics (its layers are built with
``track_running_stats=False``). In the inner loop that is the task's support set; at query
time it is the task's whole query set (transductive). There are no per-step BatchNorm
weights. So `predict` should be given a task's queries together, not one at a time.

The head has ``ways`` outputs, the number of classes of the training tasks. An N-way task
with N < ``ways`` uses the first N outputs (label slots are arbitrary in MAML, so a 20-way
model can be evaluated on 5-way tasks); N > ``ways`` is refused with a clear error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS
from fewshot.learners.base import ADAPTIVE, FewShotLearner
from fewshot.learners.maml_batching import MetaBatching
from fewshot.learners.maml_strategies import STRATEGIES, Forward, Params, Strategy, task_loss
from fewshot.sampling import Episode


def paper_defaults(ways: int) -> dict:
    """The MAML paper's Omniglot settings: 5-way (lr 0.4, 1 step, 32 tasks), 20-way (0.1, 5, 16)."""
    if ways >= 20:
        return {"inner_lr": 0.1, "inner_steps": 5, "test_inner_steps": 5, "meta_batch": 16}
    return {"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3, "meta_batch": 32}


def _no_running_stats(module: nn.Module) -> None:
    """Make every BatchNorm layer normalise with batch statistics only (MAML's convention)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats:
            layer.track_running_stats = False
            layer.running_mean = None
            layer.running_var = None
            layer.num_batches_tracked = None


@LEARNERS.register("maml")
class MAML(MetaBatching, FewShotLearner):
    """Model-agnostic meta-learning over an encoder plus a ``ways``-output linear head.

    Args:
        encoder: maps ``(n, C, H, W)`` to ``(n, d)``; its BatchNorm layers are set to use
            batch statistics only.
        ways: classes per training task (outputs of the head).
        inner_lr: inner-loop step size (paper: 0.4 for 5-way, 0.1 for 20-way).
        inner_steps: inner gradient steps during meta-training (paper: 1 / 5).
        test_inner_steps: inner steps in ``fit`` (3 for 5-way, 5 for 20-way by default).
        first_order: drop the second-order term (first-order MAML).
        head_only: adapt only the head in the inner loop (ANIL).
        learn_inner_lr: learn one inner step size per parameter entry (Meta-SGD).
        strategy: ``auto``, ``loop``, ``vmap`` or ``grouped`` (see `fewshot.learners.maml_strategies`).

    Shapes: ``fit(support_x (N*K, C, H, W), support_y (N*K,))``; ``logits(query_x (M, C, H, W))``
    -> ``(M, N)``. A batch of tasks (``meta_batch_loss``, ``meta_batch_backward``,
    ``batch_episode_predictions``) runs through `fewshot.learners.maml_batching`.
    """

    kind = ADAPTIVE
    transductive = True  # query-batch BatchNorm statistics (see the module docstring)
    default_train_ways = 5

    def __init__(
        self,
        encoder: Encoder,
        ways: int = 5,
        inner_lr: float | None = None,
        inner_steps: int | None = None,
        test_inner_steps: int | None = None,
        first_order: bool = False,
        head_only: bool = False,
        learn_inner_lr: bool = False,
        strategy: Strategy = "auto",
    ) -> None:
        super().__init__()
        if ways < 2:
            raise FewshotError(f"ways must be at least 2, got {ways}")
        if strategy not in ("auto", *STRATEGIES):
            raise FewshotError(f"unknown MAML strategy {strategy!r}; choose auto, loop, vmap or grouped")
        defaults = paper_defaults(ways)
        self.ways = int(ways)
        self.inner_lr = float(defaults["inner_lr"] if inner_lr is None else inner_lr)
        self.inner_steps = int(defaults["inner_steps"] if inner_steps is None else inner_steps)
        self.test_inner_steps = int(
            defaults["test_inner_steps"] if test_inner_steps is None else test_inner_steps
        )
        if self.inner_lr <= 0 or self.inner_steps < 1 or self.test_inner_steps < 1:
            raise FewshotError("inner_lr must be positive and inner steps at least 1")
        self.first_order, self.head_only = bool(first_order), bool(head_only)
        self.learn_inner_lr = bool(learn_inner_lr)
        self.strategy = strategy
        self.encoder = encoder
        _no_running_stats(self.encoder)
        self.head = nn.Linear(encoder.embed_dim, self.ways)
        names = [n for n, _ in self.named_parameters()]
        self._inner_names = [n for n in names if n.startswith("head.")] if self.head_only else names
        if self.learn_inner_lr:
            self.inner_lrs = nn.ParameterDict(
                {
                    self._lr_key(n): nn.Parameter(torch.full_like(p.detach(), self.inner_lr))
                    for n, p in self.named_parameters()
                    if n in self._inner_names
                }
            )
        self._chosen: dict[tuple, str] = {}  # strategy chosen by `auto`, by device and shapes
        self.adapted_: Params | None = None

    # -- parameters and the functional network --------------------------------------------

    @staticmethod
    def _lr_key(name: str) -> str:
        return name.replace(".", "__")

    def meta_parameters(self) -> Params:
        """The network's parameters by name (encoder and head; not the Meta-SGD step sizes)."""
        return {n: p for n, p in self.named_parameters() if not n.startswith("inner_lrs.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The un-adapted network: ``(n, C, H, W)`` -> ``(n, ways)`` logits."""
        return self.head(self.encoder(x))

    def step_sizes(self) -> Params:
        """Meta-SGD's learned inner step sizes by parameter name (empty without ``learn_inner_lr``)."""
        if not self.learn_inner_lr:
            return {}
        return {n: self.inner_lrs[self._lr_key(n)] for n in self._inner_names}

    def _features(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """One task: ``(n, C, H, W)`` -> ``(n, d)``."""
        enc = {n[len("encoder.") :]: p for n, p in params.items() if n.startswith("encoder.")}
        return torch.func.functional_call(self.encoder, enc, (x,))

    @staticmethod
    def _head(params: Params, z: torch.Tensor) -> torch.Tensor:
        """One task: ``(n, d)`` -> ``(n, ways)``."""
        return F.linear(z, params["head.weight"], params["head.bias"])

    # -- the inner loop -------------------------------------------------------------------

    def _inner_loop(
        self,
        params: Params,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        ways: int,
        steps: int,
        create_graph: bool,
        forward: Forward | None = None,
        func_grad: bool = False,
        lrs: Params | None = None,
    ) -> Params:
        """Adapt `params` on a support set; returns the adapted parameter dict.

        One task (``support_x`` ``(n, ...)``), or T tasks at once with a grouped `forward`
        (every tensor, parameters included, has a leading task axis). `func_grad` takes the
        inner gradient with `torch.func.grad` (needed under `vmap`) instead of
        `torch.autograd.grad`. `create_graph` keeps the graph for the meta-gradient (second
        order unless first_order). `lrs`: per-parameter step sizes (Meta-SGD; default: the
        learner's own).
        """
        lrs = self.step_sizes() if lrs is None else lrs
        features, head = forward or (self._features, self._head)
        zs = features(params, support_x) if self.head_only else None  # ANIL: the body is fixed

        def support_loss(fast: Params) -> torch.Tensor:
            p = {**params, **fast}
            z = zs if self.head_only else features(p, support_x)
            return task_loss(head(p, z)[..., :ways], support_y)

        second_order = create_graph and not self.first_order
        fast = {n: params[n] for n in self._inner_names}
        for _ in range(steps):
            if func_grad:
                grads = torch.func.grad(support_loss)(fast)
            else:
                values = torch.autograd.grad(
                    support_loss(fast), list(fast.values()), create_graph=second_order
                )
                grads = dict(zip(fast, values, strict=True))
            if not second_order:
                grads = {n: g.detach() for n, g in grads.items()}
            fast = {n: fast[n] - lrs.get(n, self.inner_lr) * grads[n] for n in fast}
        return {**params, **fast}

    def _query_logits(
        self, adapted: Params, query_x: torch.Tensor, ways: int, forward: Forward | None = None
    ) -> torch.Tensor:
        """Logits of the first `ways` classes: ``(n, ...)`` -> ``(n, ways)`` (grouped: ``(T, n, ways)``)."""
        features, head = forward or (self._features, self._head)
        return head(adapted, features(adapted, query_x))[..., :ways]

    def _query_loss(
        self, adapted: Params, query_x: torch.Tensor, query_y: torch.Tensor, ways: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One task's query loss and its query logits ``(n_q, ways)``."""
        logits = self._query_logits(adapted, query_x, ways)
        return task_loss(logits, query_y), logits

    def _loop_query_logits(
        self,
        params: Params,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int,
        steps: int,
        create_graph: bool,
    ) -> torch.Tensor:
        """The ``loop`` strategy: T tasks one after another, ``(T, n_s, ...)`` ... -> ``(T, n_q, ways)``."""

        def one_task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
            return self._query_logits(self._inner_loop(params, sx, sy, ways, steps, create_graph), qx, ways)

        return torch.stack([one_task(*task) for task in zip(support_x, support_y, query_x, strict=True)])

    # -- the learner contract -------------------------------------------------------------

    def check_ways(self, ways: int) -> None:
        if ways > self.ways:
            raise FewshotError(
                f"this {type(self).__name__} model has a {self.ways}-way head and cannot classify "
                f"{ways}-way tasks: evaluate with --ways {self.ways} or fewer, or train with --ways {ways}"
            )

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        return self.meta_batch_loss([episode])

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> MAML:
        """Adapt a copy of the meta-parameters to one task (``test_inner_steps`` steps).

        ``support_x`` ``(N*K, C, H, W)``, ``support_y`` ``(N*K,)`` in ``0..N-1`` (`fit` maps
        any labels there), N <= ``ways``.
        """
        ways = int(support_y.max()) + 1
        self.check_ways(ways)
        params = {n: p.detach().requires_grad_() for n, p in self.meta_parameters().items()}
        with torch.enable_grad():
            adapted = self._inner_loop(params, support_x, support_y, ways, self.test_inner_steps, False)
        self.adapted_ = {n: p.detach() for n, p in adapted.items()}
        self.fitted_ways_ = ways
        return self

    def logits(self, query_x: torch.Tensor) -> torch.Tensor:
        """``(M, C, H, W)`` -> ``(M, N)`` with the adapted parameters (BatchNorm over these M)."""
        self._check_fitted("adapted_")
        return self._query_logits(self.adapted_, query_x, self.fitted_ways_)

    def train_defaults(self) -> dict:
        """Meta-training settings of the MAML paper for this head width (meta-batch, no lr decay)."""
        return {"meta_batch": paper_defaults(self.ways)["meta_batch"], "lr_step": 0}


@LEARNERS.register("fomaml")
class FirstOrderMAML(MAML):
    """MAML without the second-order term (``first_order=True`` by default)."""

    def __init__(self, encoder: Encoder, ways: int = 5, first_order: bool = True, **kwargs) -> None:
        super().__init__(encoder, ways, first_order=first_order, **kwargs)


@LEARNERS.register("anil")
class ANIL(MAML):
    """Almost No Inner Loop: MAML whose inner loop adapts only the head (``head_only=True``)."""

    def __init__(self, encoder: Encoder, ways: int = 5, head_only: bool = True, **kwargs) -> None:
        super().__init__(encoder, ways, head_only=head_only, **kwargs)


__all__: list[str] = ["ANIL", "MAML", "FirstOrderMAML", "STRATEGIES", "paper_defaults"]
