"""MAML (Finn et al., 2017), first-order MAML and ANIL (Raghu et al., 2020), written functionally.

The network is an encoder plus a linear head of ``ways`` outputs. Its parameters live in a
dict; the inner loop evaluates the network with `torch.func.functional_call` (or, for the
``grouped`` strategy, with a hand-written grouped-convolution forward) on adapted copies of
that dict, so the module itself is never cloned or patched and ``fit`` never changes the
stored meta-parameters.

Execution strategies (one set of semantics; the tests check that all give the same
meta-gradient as a plain `torch.autograd.grad(create_graph=True)` loop):

- ``loop``: one task after another, `functional_call` + `torch.autograd.grad`.
- ``vmap``: `torch.func.vmap` over the meta-batch with `torch.func.grad` in the inner loop.
- ``grouped``: the tasks of a meta-batch laid out as convolution groups (Conv-4 only): one
  convolution per layer for all tasks, per-task BatchNorm statistics for free.
- ``auto``: ``loop`` on a CPU (where it was measured fastest, see benchmarks/RESULTS.md);
  on other devices every strategy is timed once on the first meta-batch and the fastest kept.

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

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.learners.base import FewShotLearner
from fewshot.sampling import Episode

Strategy = Literal["auto", "loop", "vmap", "grouped"]
STRATEGIES = ("loop", "vmap", "grouped")
Params = dict[str, torch.Tensor]


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


def _task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per task; with a leading task axis ``(T, n, N)`` the task losses are summed.

    Summing keeps the tasks independent: the gradient of the sum with respect to task t's own
    parameters is the gradient of task t's loss.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if logits.dim() == 2:
        return F.cross_entropy(logits, labels)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum") / labels.shape[1]


class MAML(FewShotLearner):
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
        strategy: ``auto``, ``loop``, ``vmap`` or ``grouped`` (see the module docstring).

    Shapes: ``fit(support_x (N*K, C, H, W), support_y (N*K,))``; ``logits(query_x (M, C, H, W))``
    -> ``(M, N)``.
    """

    frozen_encoder = False
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
        self.first_order = bool(first_order)
        self.head_only = bool(head_only)
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
        self._chosen: dict[tuple, str] = {}
        self.adapted_: Params | None = None

    # -- parameters and forward passes ----------------------------------------------------

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

    def _grouped_layers(self) -> list[tuple[str, nn.Module]]:
        from fewshot.encoders.conv4 import Conv4

        if not isinstance(self.encoder, Conv4):
            raise FewshotError(
                f"the grouped strategy supports the Conv-4 encoder only, not {type(self.encoder).__name__}: "
                "use strategy 'loop' or 'vmap'"
            )
        return [
            (f"encoder.{n}", m)
            for n, m in self.encoder.named_modules()
            if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d))
        ]

    def _grouped_features(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """T tasks at once with per-task parameters ``(T, ...)``: ``(T, n, C, H, W)`` -> ``(T, n, d)``.

        The tasks become convolution groups: channels are laid out task-major, ``(n, T*C, H, W)``,
        so BatchNorm's per-channel statistics are per-task statistics.
        """
        tasks, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, tasks * x.shape[2], *x.shape[3:])
        for name, m in self._grouped_layers():
            if isinstance(m, nn.Conv2d):
                w, b = params[f"{name}.weight"], params.get(f"{name}.bias")
                h = F.conv2d(
                    h,
                    w.reshape(-1, *w.shape[2:]),
                    None if b is None else b.reshape(-1),
                    m.stride,
                    m.padding,
                    m.dilation,
                    tasks * m.groups,
                )
            elif isinstance(m, nn.BatchNorm2d):
                w, b = params.get(f"{name}.weight"), params.get(f"{name}.bias")
                h = F.batch_norm(
                    h,
                    None,
                    None,
                    None if w is None else w.reshape(-1),
                    None if b is None else b.reshape(-1),
                    training=True,
                    eps=m.eps,
                )
            elif isinstance(m, nn.ReLU):
                h = F.relu(h)
            else:
                h = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        return h.reshape(n, tasks, -1).transpose(0, 1)

    @staticmethod
    def _grouped_head(params: Params, z: torch.Tensor) -> torch.Tensor:
        """``(T, n, d)`` with per-task head ``(T, ways, d)`` -> ``(T, n, ways)``."""
        return torch.baddbmm(params["head.bias"].unsqueeze(1), z, params["head.weight"].transpose(1, 2))

    # -- the inner loop -------------------------------------------------------------------

    def _inner_loop(
        self,
        params: Params,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        ways: int,
        steps: int,
        create_graph: bool,
        grouped: bool = False,
        func_grad: bool = False,
        lrs: Params | None = None,
    ) -> Params:
        """Adapt `params` on a support set; returns the adapted parameter dict.

        One task (``support_x`` ``(n, ...)``), or T tasks at once when `grouped` (every tensor,
        parameters included, has a leading task axis). `func_grad` takes the inner gradient
        with `torch.func.grad` (needed under `vmap`) instead of `torch.autograd.grad`.
        `create_graph` keeps the graph for the meta-gradient (second order unless first_order).
        `lrs`: per-parameter step sizes (Meta-SGD; default: the learner's own).
        """
        lrs = self.step_sizes() if lrs is None else lrs
        features = self._grouped_features if grouped else self._features
        head = self._grouped_head if grouped else self._head
        zs = features(params, support_x) if self.head_only else None  # ANIL: the body is fixed

        def support_loss(fast: Params) -> torch.Tensor:
            p = {**params, **fast}
            z = zs if self.head_only else features(p, support_x)
            return _task_loss(head(p, z)[..., :ways], support_y)

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

    def _query_logits(self, adapted: Params, query_x: torch.Tensor, ways: int, grouped: bool = False):
        """Logits of the first `ways` classes: ``(n, ...)`` -> ``(n, ways)`` (grouped: ``(T, n, ways)``)."""
        if grouped:
            return self._grouped_head(adapted, self._grouped_features(adapted, query_x))[..., :ways]
        return self._head(adapted, self._features(adapted, query_x))[..., :ways]

    def _batch_query_logits(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        steps: int,
        create_graph: bool,
        strategy: str,
    ) -> torch.Tensor:
        """T tasks: support ``(T, n_s, ...)``, ``(T, n_s)``, queries ``(T, n_q, ...)`` -> ``(T, n_q, N)``.

        With `create_graph` the result carries the meta-gradient to the stored parameters;
        without it the stored parameters are detached (evaluation) and never changed.
        """
        ways = int(support_y.max()) + 1
        params = self.meta_parameters()
        if not create_graph:
            params = {n: p.detach().requires_grad_() for n, p in params.items()}
        with torch.enable_grad():
            if strategy == "loop":
                logits = torch.stack(
                    [
                        self._query_logits(
                            self._inner_loop(params, sx, sy, ways, steps, create_graph), qx, ways
                        )
                        for sx, sy, qx in zip(support_x, support_y, query_x, strict=True)
                    ]
                )
            elif strategy == "grouped":
                tasks = support_x.shape[0]
                expanded = {n: p.unsqueeze(0).expand(tasks, *p.shape) for n, p in params.items()}
                adapted = self._inner_loop(
                    expanded, support_x, support_y, ways, steps, create_graph, grouped=True
                )
                logits = self._query_logits(adapted, query_x, ways, grouped=True)
            elif strategy == "vmap" and create_graph:
                raise FewshotError("internal: the vmap meta-gradient goes through _vmap_meta_loss")
            elif strategy == "vmap":

                def one_task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
                    adapted = self._inner_loop(params, sx, sy, ways, steps, create_graph, func_grad=True)
                    return self._query_logits(adapted, qx, ways)

                logits = torch.func.vmap(one_task)(support_x, support_y, query_x)
            else:
                raise FewshotError(f"unknown MAML strategy {strategy!r}")
        return logits if create_graph else logits.detach()

    def _vmap_meta_loss(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        query_y: torch.Tensor,
        steps: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss of T tasks with `vmap`, and the query logits ``(T, n_q, N)``.

        Each task's meta-gradient is taken with `torch.func.grad` inside the `vmap` and averaged.
        (PyTorch 2.14 gives a wrong second-order gradient through stacked BatchNorm layers when
        the outer gradient is taken around a `vmap` that contains the inner `torch.func.grad`,
        with ordinary autograd or with `torch.func.grad`; the tests check this layout.) The
        gradient is then attached to the stored
        parameters so that ``loss.backward()`` delivers it.
        """
        ways = int(support_y.max()) + 1
        params = {n: p.detach() for n, p in self.meta_parameters().items()}
        lrs = {n: p.detach() for n, p in self.step_sizes().items()}

        def task_loss(p: Params, lr: Params, sx, sy, qx, qy) -> tuple[torch.Tensor, torch.Tensor]:
            adapted = self._inner_loop(p, sx, sy, ways, steps, True, func_grad=True, lrs=lr)
            logits = self._query_logits(adapted, qx, ways)
            return _task_loss(logits, qy), logits

        per_task = torch.func.vmap(
            torch.func.grad_and_value(task_loss, argnums=(0, 1), has_aux=True),
            in_dims=(None, None, 0, 0, 0, 0),
        )
        with torch.enable_grad():
            (g_params, g_lrs), (losses, logits) = per_task(
                params, lrs, support_x, support_y, query_x, query_y
            )
        loss = losses.mean()
        g_params = {n: g.mean(0) for n, g in g_params.items()}
        g_lrs = {n: g.mean(0) for n, g in g_lrs.items()}
        targets = [*self.meta_parameters().values(), *self.step_sizes().values()]
        grads = [*g_params.values(), *g_lrs.values()]
        return _WithGradients.apply(loss.detach(), grads, *targets), logits.detach()

    # -- strategy choice ------------------------------------------------------------------

    def _resolve_strategy(self, support_x, support_y, query_x, query_y, train: bool) -> str:
        if self.strategy != "auto":
            return self.strategy
        device = support_x.device
        if device.type == "cpu":
            return "loop"
        key = (device.type, tuple(support_x.shape), tuple(query_x.shape), train)
        if key not in self._chosen:
            self._chosen[key] = self._time_strategies(support_x, support_y, query_x, query_y, train)
        return self._chosen[key]

    def _time_strategies(self, support_x, support_y, query_x, query_y, train: bool) -> str:
        """Time one call (with the meta-backward when training) of every strategy; keep the fastest."""
        steps = self.inner_steps if train else self.test_inner_steps
        timings = {}
        for name in STRATEGIES:
            if name == "grouped" and not _is_conv4(self.encoder):
                continue
            seconds = []
            for _ in range(2):  # the first call warms up kernels
                _sync(support_x.device)
                start = time.perf_counter()
                if train and name == "vmap":
                    loss = self._vmap_meta_loss(support_x, support_y, query_x, query_y, steps)[0]
                elif train:
                    logits = self._batch_query_logits(support_x, support_y, query_x, steps, True, name)
                    loss = _task_loss(logits, query_y)
                else:
                    self._batch_query_logits(support_x, support_y, query_x, steps, False, name)
                if train:
                    torch.autograd.grad(loss, list(self.parameters()), allow_unused=True)
                _sync(support_x.device)
                seconds.append(time.perf_counter() - start)
            timings[name] = seconds[-1]
        return min(timings, key=timings.get)

    # -- the learner contract -------------------------------------------------------------

    def _check_ways(self, ways: int) -> None:
        if ways > self.ways:
            raise FewshotError(
                f"this {type(self).__name__} model has a {self.ways}-way head and cannot classify "
                f"{ways}-way tasks: evaluate with --ways {self.ways} or fewer, or train with --ways {ways}"
            )

    @staticmethod
    def _stack(episodes: list[Episode]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Same-shape episodes as ``(T, ...)`` support_x, support_y, query_x, query_y."""
        return tuple(  # type: ignore[return-value]
            torch.stack([getattr(e, f) for e in episodes])
            for f in ("support_x", "support_y", "query_x", "query_y")
        )

    def _stacked_meta_loss(self, support_x, support_y, query_x, query_y, strategy: str):
        """`meta_batch_loss` on stacked episodes with a resolved strategy."""
        if strategy == "vmap":
            loss, logits = self._vmap_meta_loss(support_x, support_y, query_x, query_y, self.inner_steps)
            return loss, (logits.argmax(-1) == query_y).float().mean()
        logits = self._batch_query_logits(support_x, support_y, query_x, self.inner_steps, True, strategy)
        loss = _task_loss(logits, query_y) / support_x.shape[0]
        accuracy = (logits.argmax(-1) == query_y).float().mean()
        return loss, accuracy

    def meta_batch_loss(self, episodes: list[Episode]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss and accuracy over a meta-batch of same-shape episodes (one meta-step)."""
        self._check_ways(episodes[0].ways)
        stacks = self._stack(episodes)
        return self._stacked_meta_loss(*stacks, self._resolve_strategy(*stacks, train=True))

    def meta_batch_backward(
        self,
        episodes: list[Episode],
        autocast: Callable[[], AbstractContextManager] = nullcontext,
        scale: Callable[[torch.Tensor], torch.Tensor] = lambda loss: loss,
    ) -> tuple[float, float]:
        """Accumulate one meta-step's gradient into ``.grad``; returns (mean query loss, accuracy).

        The gradient is that of `meta_batch_loss`. With the ``loop`` strategy each task's query
        loss is back-propagated as soon as it is computed, as learn2learn's recipe does, so only
        one task's graph is alive at a time (less memory, and faster on a CPU); the vectorised
        strategies back-propagate the whole meta-batch at once. Forward passes run under
        `autocast()`; `scale` wraps each loss before its backward (a GradScaler's ``scale``).
        """
        self._check_ways(episodes[0].ways)
        stacks = self._stack(episodes)
        strategy = self._resolve_strategy(*stacks, train=True)
        if strategy != "loop":
            with autocast():
                loss, accuracy = self._stacked_meta_loss(*stacks, strategy)
            scale(loss).backward()
            return loss.item(), accuracy.item()
        params = self.meta_parameters()
        ways = int(episodes[0].support_y.max()) + 1
        total_loss, correct, count = 0.0, 0, 0
        for e in episodes:
            with autocast(), torch.enable_grad():
                adapted = self._inner_loop(params, e.support_x, e.support_y, ways, self.inner_steps, True)
                logits = self._query_logits(adapted, e.query_x, ways)
                loss = _task_loss(logits, e.query_y) / len(episodes)
            scale(loss).backward()
            total_loss += loss.item()
            correct += int((logits.argmax(-1) == e.query_y).sum())
            count += e.query_y.numel()
        return total_loss, correct / count

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        return self.meta_batch_loss([episode])

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> MAML:
        """Adapt a copy of the meta-parameters to one task (``test_inner_steps`` steps).

        ``support_x`` ``(N*K, C, H, W)``, ``support_y`` ``(N*K,)`` in ``0..N-1`` (`fit` maps
        any labels there), N <= ``ways``.
        """
        ways = int(support_y.max()) + 1
        self._check_ways(ways)
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

    @torch.no_grad()
    def batch_episode_predictions(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Many test episodes at once (fit + predict): ``(B, n_s, ...)``, ``(B, n_s)``, ``(B, n_q, ...)``
        -> predicted labels ``(B, n_q)``. The stored meta-parameters are not changed."""
        self._check_ways(int(support_y.max()) + 1)
        query_y = torch.zeros(query_x.shape[:2], dtype=torch.long, device=query_x.device)
        strategy = self._resolve_strategy(support_x, support_y, query_x, query_y, train=False)
        logits = self._batch_query_logits(
            support_x, support_y, query_x, self.test_inner_steps, False, strategy
        )
        return logits.argmax(-1)

    def config(self) -> dict:
        return {
            "ways": self.ways,
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
            "test_inner_steps": self.test_inner_steps,
            "first_order": self.first_order,
            "head_only": self.head_only,
            "learn_inner_lr": self.learn_inner_lr,
            "strategy": self.strategy,
        }

    def train_defaults(self) -> dict:
        """Meta-training settings of the MAML paper for this head width (meta-batch, no lr decay)."""
        return {"meta_batch": paper_defaults(self.ways)["meta_batch"], "lr_step": 0}


class FirstOrderMAML(MAML):
    """MAML without the second-order term (``first_order=True`` by default)."""

    def __init__(self, encoder: Encoder, ways: int = 5, first_order: bool = True, **kwargs) -> None:
        super().__init__(encoder, ways, first_order=first_order, **kwargs)


class ANIL(MAML):
    """Almost No Inner Loop: MAML whose inner loop adapts only the head (``head_only=True``)."""

    def __init__(self, encoder: Encoder, ways: int = 5, head_only: bool = True, **kwargs) -> None:
        super().__init__(encoder, ways, head_only=head_only, **kwargs)


class _WithGradients(torch.autograd.Function):
    """``value`` whose gradient with respect to ``targets`` is the precomputed ``grads``."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, grads: list[torch.Tensor], *targets: torch.Tensor) -> torch.Tensor:
        ctx.grads = grads
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return None, None, *(grad_output * g for g in ctx.grads)


def _is_conv4(encoder: nn.Module) -> bool:
    from fewshot.encoders.conv4 import Conv4

    return isinstance(encoder, Conv4)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__: list[str] = ["ANIL", "MAML", "FirstOrderMAML", "STRATEGIES", "paper_defaults"]
