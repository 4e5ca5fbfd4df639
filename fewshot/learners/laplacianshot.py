"""LaplacianShot: Laplacian-regularised transductive inference (Ziko, Dolz, Granger and Ben
Ayed, "Laplacian Regularized Few-Shot Learning", ICML 2020). TRANSDUCTIVE: it uses the
episode's unlabelled queries.

The query assignments ``Y`` (rows on the simplex) minimise

    sum_q a_q . y_q  -  lambda * sum_{p,q} w_pq y_p . y_q

where ``a_qn = ||x_q - m_n||^2`` is the distance of query ``q`` to prototype ``n`` and ``W``
the kNN affinity of the queries (``w_pq = 1`` when ``p`` is among the ``knn`` nearest
neighbours of ``q``, itself excluded), which makes neighbouring queries agree. The paper's
bound optimisation (its Algorithm 1) iterates ``y_q <- softmax(-a_q + lambda * sum_p w_qp y_p)``
from ``softmax(-a_q)`` until the bound's relative change falls under 1e-6 (at most
``iterations`` times).

Features are centred (on the support mean: the paper uses the base-class mean, which frozen
embeddings of an episode do not have) and L2-normalised, as in the paper (SimpleShot's CL2N);
with ``rectify`` the prototypes are BD-CSPN's rectified ones, as the paper's reported results
use. Defaults: ``knn = 3``, ``lambda = 0.7``, 20 iterations (the paper tunes ``lambda`` per
data set on validation episodes).

easyfsl's version differs in three ways that ``normalize=False``, ``epsilon=1`` and ``knn`` one
lower reproduce: no CL2N, BD-CSPN weights ``exp(cos)`` and ``knn - 1`` neighbours (its kNN
drops the first of the ``knn`` nearest, the item itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.bd_cspn import rectified_prototypes
from fewshot.learners.transductive import TransductiveLearner, squared_distances, weighted_means


def knn_neighbours(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(B, M, k)`` of the ``k`` nearest neighbours of every row of ``x`` ``(B, M, d)``,
    itself excluded: the non-zeros of the kNN affinity ``W`` (``W[b, q, p] = 1``)."""
    distances = squared_distances(x, x)
    distances.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    k = min(k, x.shape[1] - 1)
    return distances.topk(k, dim=-1, largest=False).indices


def neighbour_sum(y: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """``W @ y`` ``(B, M, N)`` for the sparse ``W`` given by ``neighbours`` ``(B, M, k)``: a gather
    of ``k`` rows per query instead of a dense ``(M, M)`` product (M * k * N work, not M^2 * N)."""
    b, m, n = y.shape
    offsets = torch.arange(b, device=y.device).view(b, 1, 1) * m
    return y.reshape(b * m, n)[neighbours + offsets].sum(2)


def bound_updates(unary: torch.Tensor, neighbours: torch.Tensor, lam: float, iterations: int) -> torch.Tensor:
    """Log-assignments ``(B, M, N)`` from distances ``unary`` ``(B, M, N)`` and the kNN graph
    ``neighbours`` ``(B, M, k)``; each episode of the block stops on its own convergence."""
    log_y = (-unary).log_softmax(-1)
    pull = neighbour_sum(log_y.exp(), neighbours)  # W @ y of the current assignments
    energy = torch.full(unary.shape[:1], float("inf"), device=unary.device)
    active = torch.ones(unary.shape[0], dtype=torch.bool, device=unary.device)
    for i in range(iterations):
        step = (-unary + lam * pull).log_softmax(-1)
        y_new = step.exp()
        pull_new = neighbour_sum(y_new, neighbours)
        new_energy = (y_new * (step + unary - lam * pull_new)).sum((1, 2))
        log_y = torch.where(active[:, None, None], step, log_y)
        pull = torch.where(active[:, None, None], pull_new, pull)
        converged = (new_energy - energy).abs() <= 1e-6 * energy.abs()
        energy = torch.where(active, new_energy, energy)
        if i > 1:
            active = active & ~converged
        if not active.any():
            break
    return log_y


@LEARNERS.register("laplacianshot")
class LaplacianShot(TransductiveLearner):
    """Laplacian-regularised query assignment over a kNN graph, by bound optimisation (transductive).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        knn: neighbours per query in the affinity graph (3).
        lam: ``lambda``, the weight of the Laplacian term (0.7).
        iterations: the most bound updates (20).
        rectify: start from BD-CSPN's rectified prototypes instead of the support means.
        normalize: centre on the support mean and L2-normalise first (CL2N, the paper's).
        epsilon: the rectification weights' sharpness, BD-CSPN's ``eps`` (10).
    """

    def __init__(
        self,
        encoder: Encoder,
        knn: int = 3,
        lam: float = 0.7,
        iterations: int = 20,
        rectify: bool = True,
        normalize: bool = True,
        epsilon: float = 10.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.knn = knn
        self.lam = lam
        self.iterations = iterations
        self.rectify = rectify
        self.normalize = normalize
        self.epsilon = epsilon

    def transduce(self, support: torch.Tensor, onehot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            centre = support.mean(1, keepdim=True)
            support, query = F.normalize(support - centre, dim=-1), F.normalize(query - centre, dim=-1)
        if self.rectify:
            prototypes, query = rectified_prototypes(support, onehot, query, self.epsilon, None)
        else:
            prototypes = weighted_means(onehot, support)
        unary = squared_distances(query, prototypes)
        return bound_updates(unary, knn_neighbours(query, self.knn), self.lam, self.iterations)
