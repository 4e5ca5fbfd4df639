"""How MAML runs a meta-batch of T tasks: the vectorised strategies and the auto-tuner.

One set of semantics, several executions (the tests check that all give the same
meta-gradient as a plain `torch.autograd.grad(create_graph=True)` loop):

- ``loop``: one task after another, `functional_call` + `torch.autograd.grad`. It is part of
  the algorithm itself, in `fewshot.learners.maml`; here is only its memory-saving meta-step
  (`loop_meta_backward`, one task's graph alive at a time).
- ``vmap``: `torch.func.vmap` over the meta-batch with `torch.func.grad` in the inner loop.
- ``grouped``: the tasks of a meta-batch laid out as convolution groups (Conv-4 only, see
  `Conv4.grouped_forward`): one convolution per layer for all tasks, per-task BatchNorm
  statistics for free.
- ``auto``: ``loop`` on a CPU (where it was measured fastest, see benchmarks/RESULTS.md);
  on other devices every strategy is timed once on the first meta-batch and the fastest kept
  (`fewshot.learners.maml_batching`).

Also here: the functional pieces the strategies share with the learner (`Params`, `Forward`,
`task_loss`). The functions drive the learner's functional inner loop (``_inner_loop``,
``_query_logits``, ...) through the `MetaLearner` protocol, so this module never imports the
learner's module: `fewshot.learners.maml` imports this one, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.conv4 import Conv4
from fewshot.errors import FewshotError

if TYPE_CHECKING:
    from fewshot.episodes import Episode

Strategy = Literal["auto", "loop", "vmap", "grouped"]
STRATEGIES = ("loop", "vmap", "grouped")
Params = dict[str, torch.Tensor]
#: ``(features, head)``: parameters + inputs -> embeddings, parameters + embeddings -> logits.
Forward = tuple[
    Callable[[Params, torch.Tensor], torch.Tensor], Callable[[Params, torch.Tensor], torch.Tensor]
]


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per task; with a leading task axis ``(T, n, N)`` the task losses are summed.

    Summing keeps the tasks independent: the gradient of the sum with respect to task t's own
    parameters is the gradient of task t's loss.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if logits.dim() == 2:
        return F.cross_entropy(logits, labels)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum") / labels.shape[1]


class MetaLearner(Protocol):
    """What the strategies use of a MAML learner (`fewshot.learners.maml.MAML`)."""

    encoder: nn.Module
    strategy: str
    inner_steps: int
    test_inner_steps: int
    _chosen: dict[tuple, str]

    def parameters(self) -> Iterator[nn.Parameter]: ...
    def meta_parameters(self) -> Params: ...
    def step_sizes(self) -> Params: ...
    def _inner_loop(self, params: Params, support_x, support_y, ways: int, steps: int, create_graph: bool,
                    forward: Forward | None = None, func_grad: bool = False,
                    lrs: Params | None = None) -> Params: ...  # fmt: skip
    def _query_logits(self, adapted: Params, query_x, ways: int, forward: Forward | None = None): ...
    def _query_loss(self, adapted: Params, query_x, query_y, ways: int): ...
    def _loop_query_logits(self, params: Params, support_x, support_y, query_x, ways: int, steps: int,
                           create_graph: bool) -> torch.Tensor: ...  # fmt: skip


# -- a meta-batch with a resolved strategy ------------------------------------------------


def stack_episodes(episodes: list[Episode]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same-shape episodes as ``(T, ...)`` support_x, support_y, query_x, query_y."""
    return tuple(  # type: ignore[return-value]
        torch.stack([getattr(e, f) for e in episodes])
        for f in ("support_x", "support_y", "query_x", "query_y")
    )


def loop_meta_backward(
    learner: MetaLearner,
    episodes: list[Episode],
    autocast: Callable[[], AbstractContextManager],
    scale: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[float, float]:
    """The ``loop`` meta-step: each task's query loss back-propagated as soon as it is computed
    (learn2learn's recipe); returns (mean query loss, accuracy)."""
    params = learner.meta_parameters()
    ways = int(episodes[0].support_y.max()) + 1
    total_loss, correct, count = 0.0, 0, 0
    for e in episodes:
        with autocast(), torch.enable_grad():
            adapted = learner._inner_loop(params, e.support_x, e.support_y, ways, learner.inner_steps, True)
            loss, logits = learner._query_loss(adapted, e.query_x, e.query_y, ways)
            loss = loss / len(episodes)
        scale(loss).backward()
        total_loss += loss.item()
        correct += int((logits.argmax(-1) == e.query_y).sum())
        count += e.query_y.numel()
    return total_loss, correct / count


def stacked_meta_loss(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    strategy: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean query loss and accuracy of T stacked tasks (``(T, ...)`` tensors), one meta-step."""
    if strategy == "vmap":
        loss, logits = vmap_meta_loss(learner, support_x, support_y, query_x, query_y, learner.inner_steps)
        return loss, (logits.argmax(-1) == query_y).float().mean()
    logits = batch_query_logits(learner, strategy, support_x, support_y, query_x, learner.inner_steps, True)
    loss = task_loss(logits, query_y) / support_x.shape[0]
    accuracy = (logits.argmax(-1) == query_y).float().mean()
    return loss, accuracy


def batch_query_logits(
    learner: MetaLearner,
    strategy: str,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    steps: int,
    create_graph: bool,
) -> torch.Tensor:
    """T tasks: support ``(T, n_s, ...)``, ``(T, n_s)``, queries ``(T, n_q, ...)`` -> ``(T, n_q, N)``.

    With `create_graph` the result carries the meta-gradient to the stored parameters;
    without it the stored parameters are detached (evaluation) and never changed.
    """
    ways = int(support_y.max()) + 1
    params = learner.meta_parameters()
    if not create_graph:
        params = {n: p.detach().requires_grad_() for n, p in params.items()}
    with torch.enable_grad():
        if strategy == "loop":
            logits = learner._loop_query_logits(
                params, support_x, support_y, query_x, ways, steps, create_graph
            )
        else:
            logits = _vectorised_query_logits(
                learner, strategy, params, support_x, support_y, query_x, ways, steps, create_graph
            )
    return logits if create_graph else logits.detach()


# -- the vectorised strategies ------------------------------------------------------------


def _vectorised_query_logits(
    learner: MetaLearner,
    strategy: str,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    ways: int,
    steps: int,
    create_graph: bool,
) -> torch.Tensor:
    """`batch_query_logits` with ``grouped`` or ``vmap`` (without the vmap meta-gradient)."""
    if strategy == "grouped":
        forward = grouped_forward(learner.encoder)
        tasks = support_x.shape[0]
        expanded = {n: p.unsqueeze(0).expand(tasks, *p.shape) for n, p in params.items()}
        adapted = learner._inner_loop(expanded, support_x, support_y, ways, steps, create_graph, forward)
        return learner._query_logits(adapted, query_x, ways, forward)
    if strategy == "vmap" and create_graph:
        raise FewshotError("internal: the vmap meta-gradient goes through vmap_meta_loss")
    if strategy == "vmap":

        def one_task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
            adapted = learner._inner_loop(params, sx, sy, ways, steps, create_graph, func_grad=True)
            return learner._query_logits(adapted, qx, ways)

        return torch.func.vmap(one_task)(support_x, support_y, query_x)
    raise FewshotError(f"unknown MAML strategy {strategy!r}")


def grouped_forward(encoder: nn.Module) -> Forward:
    """The ``grouped`` strategy's network: T tasks at once, every parameter with a task axis."""
    if not isinstance(encoder, Conv4):
        raise FewshotError(
            f"the grouped strategy supports the Conv-4 encoder only, not {type(encoder).__name__}: "
            "use strategy 'loop' or 'vmap'"
        )

    def features(params: Params, x: torch.Tensor) -> torch.Tensor:
        local = {n[len("encoder.") :]: p for n, p in params.items() if n.startswith("encoder.")}
        return encoder.grouped_forward(local, x)

    return features, grouped_head


def grouped_head(params: Params, z: torch.Tensor) -> torch.Tensor:
    """``(T, n, d)`` with per-task head ``(T, ways, d)`` -> ``(T, n, ways)``."""
    return torch.baddbmm(params["head.bias"].unsqueeze(1), z, params["head.weight"].transpose(1, 2))


def vmap_meta_loss(
    learner: MetaLearner,
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
    gradient is then attached to the stored parameters so that ``loss.backward()`` delivers it.
    """
    ways = int(support_y.max()) + 1
    params = {n: p.detach() for n, p in learner.meta_parameters().items()}
    lrs = {n: p.detach() for n, p in learner.step_sizes().items()}

    def task_loss(p: Params, lr: Params, sx, sy, qx, qy) -> tuple[torch.Tensor, torch.Tensor]:
        adapted = learner._inner_loop(p, sx, sy, ways, steps, True, func_grad=True, lrs=lr)
        return learner._query_loss(adapted, qx, qy, ways)

    per_task = torch.func.vmap(
        torch.func.grad_and_value(task_loss, argnums=(0, 1), has_aux=True),
        in_dims=(None, None, 0, 0, 0, 0),
    )
    with torch.enable_grad():
        (g_params, g_lrs), (losses, logits) = per_task(params, lrs, support_x, support_y, query_x, query_y)
    loss = losses.mean()
    targets = [*learner.meta_parameters().values(), *learner.step_sizes().values()]
    grads = [*(g.mean(0) for g in g_params.values()), *(g.mean(0) for g in g_lrs.values())]
    return _WithGradients.apply(loss.detach(), grads, *targets), logits.detach()


class _WithGradients(torch.autograd.Function):
    """``value`` whose gradient with respect to ``targets`` is the precomputed ``grads``."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, grads: list[torch.Tensor], *targets: torch.Tensor) -> torch.Tensor:
        ctx.grads = grads
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return None, None, *(grad_output * g for g in ctx.grads)


__all__ = [
    "STRATEGIES",
    "Forward",
    "MetaLearner",
    "Params",
    "Strategy",
    "batch_query_logits",
    "grouped_forward",
    "grouped_head",
    "loop_meta_backward",
    "stack_episodes",
    "stacked_meta_loss",
    "task_loss",
    "vmap_meta_loss",
]
