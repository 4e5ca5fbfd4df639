"""The transductive learners on frozen embeddings (BD-CSPN, TIM, PT-MAP, LaplacianShot,
transductive fine-tuning): accuracy on well-separated clusters, robustness to a shift of the
query set where the paper claims it, shapes, determinism, batched == one episode at a time,
and what each paper's equations say."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from fewshot.encoders.base import IdentityEncoder
from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS, create_learner
from fewshot.learners.laplacianshot import knn_neighbours, neighbour_sum
from fewshot.learners.pt_map import centre_episode, power_transform

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ["bd-cspn", "tim", "pt-map", "laplacianshot", "transductive-finetune"]
# the papers' claim: the unlabelled queries correct a support set that is off-centre
SHIFT_ROBUST = ["bd-cspn", "tim", "pt-map", "laplacianshot"]
WAYS, SHOTS, QUERIES, DIM = 5, 1, 6, 16
FAST = {"tim": {"steps": 100}}  # the paper's 1000 steps where defaults matter, fewer elsewhere


def clusters(episodes: int, shift: float = 0.0, seed: int = 0, shots: int = SHOTS):
    """Support ``(B, N, K, d)`` and queries ``(B, N*Q, d)`` of Gaussian classes; the queries of an
    episode are moved together by ``shift`` times a random direction. Positive features (PT-MAP
    expects ReLU outputs)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(episodes, WAYS, 1, DIM, generator=g)
    support = means + 0.5 * torch.randn(episodes, WAYS, shots, DIM, generator=g)
    moved = shift * F.normalize(torch.randn(episodes, 1, 1, DIM, generator=g), dim=-1) * DIM**0.5
    query = means + 0.5 * torch.randn(episodes, WAYS, QUERIES, DIM, generator=g) + moved
    return support + 6.0, (query + 6.0).reshape(episodes, WAYS * QUERIES, DIM)


QUERY_Y = torch.arange(WAYS).repeat_interleave(QUERIES)


def learner(name: str, **kwargs):
    return create_learner(name, IdentityEncoder(DIM), **kwargs)


def accuracy(name: str, support, query, **kwargs) -> float:
    with torch.no_grad():
        logits = learner(name, **kwargs).batch_logits_embeddings(support, query)
    return float((logits.argmax(-1) == QUERY_Y).float().mean())


@pytest.mark.parametrize("name", METHODS)
def test_declared_transductive_embedding_learners(name):
    cls = LEARNERS.get(name)
    assert cls.kind == "embedding" and cls.transductive and cls.batches_embeddings
    assert "transductive" in cls.__doc__.lower()  # the docstring says so, and which paper
    module = importlib.import_module(cls.__module__).__doc__
    assert "TRANSDUCTIVE" in module and "et al." in module or " and " in module.split("(")[1]


@pytest.mark.parametrize("name", METHODS)
def test_beats_chance_clearly_on_separated_clusters(name):
    support, query = clusters(8)
    assert accuracy(name, support, query, **FAST.get(name, {})) > 0.8  # chance: 0.2


@pytest.mark.parametrize("name", SHIFT_ROBUST)
def test_improves_over_protonet_when_the_queries_are_shifted(name):
    support, query = clusters(8, shift=2.0, seed=1)
    protonet = accuracy("protonet", support, query)
    assert protonet < 0.9  # the shift hurts the inductive baseline
    assert accuracy(name, support, query) > protonet + 0.05


@pytest.mark.parametrize("name", METHODS)
def test_batched_equals_one_episode_at_a_time_and_is_deterministic(name):
    support, query = clusters(3, shift=0.5, seed=2, shots=2)
    model = learner(name, **FAST.get(name, {}))
    with torch.no_grad():
        batched = model.batch_logits_embeddings(support, query)
    assert batched.shape == (3, WAYS * QUERIES, WAYS) and torch.isfinite(batched).all()
    labels = torch.arange(WAYS).repeat_interleave(2)
    for i in range(3):
        one = model.fit_embeddings(support[i].reshape(-1, DIM), labels).logits_embeddings(query[i])
        torch.testing.assert_close(one, batched[i], rtol=1e-4, atol=1e-4)
    again = learner(name, **FAST.get(name, {})).batch_logits_embeddings(support, query)
    assert torch.equal(again, batched)


@pytest.mark.parametrize("name", METHODS)
def test_public_api_any_labels_and_probabilities(name):
    support, query = clusters(1)
    model = learner(name, **FAST.get(name, {})).fit(
        support[0].reshape(-1, DIM), torch.tensor([3, 8, 9, 11, 20])
    )
    proba = model.predict_proba(query[0])
    assert proba.shape == (WAYS * QUERIES, WAYS)
    torch.testing.assert_close(proba.sum(1), torch.ones(WAYS * QUERIES))
    assert model.predict(query[0]).tolist() == [[3, 8, 9, 11, 20][int(c)] for c in proba.argmax(1)]


def test_bd_cspn_is_unmoved_by_a_shift_of_every_query():
    """The cross-class shift ``xi = mean(S) - mean(Q)`` undoes any common move of the queries."""
    support, query = clusters(2, seed=3)
    model = learner("bd-cspn")
    moved = query + torch.linspace(-3, 3, DIM)
    torch.testing.assert_close(
        model.batch_logits_embeddings(support, moved), model.batch_logits_embeddings(support, query)
    )


def test_bd_cspn_top_z_zero_leaves_the_support_only():
    """With no pseudo-labelled query, the prototypes are the support's weighted means: one shot ->
    the support items themselves, scored by scaled cosine after the shift."""
    support, query = clusters(1, seed=4)
    logits = learner("bd-cspn", top_z=0).batch_logits_embeddings(support, query)
    shifted = query + support.mean((1, 2), keepdim=True)[:, 0] - query.mean(1, keepdim=True)
    expected = 10.0 * F.normalize(shifted, dim=-1) @ F.normalize(support[:, :, 0], dim=-1).transpose(1, 2)
    torch.testing.assert_close(logits, expected)


def test_tim_without_steps_is_the_normalised_class_mean_classifier_and_steps_lower_the_loss():
    support, query = clusters(2, shift=1.0, seed=5)
    logits = learner("tim", steps=0).batch_logits_embeddings(support, query)
    s, q = F.normalize(support, dim=-1).mean(2), F.normalize(query, dim=-1)
    torch.testing.assert_close(logits, -7.5 * torch.cdist(q, s).pow(2), rtol=1e-4, atol=1e-4)
    # the marginal entropy term spreads the predictions over the classes
    trained = learner("tim").batch_logits_embeddings(support, query).softmax(-1).mean(1)
    before = logits.softmax(-1).mean(1)
    entropy = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    assert (entropy(trained) >= entropy(before) - 1e-4).all()


def test_pt_map_plan_has_unit_rows_and_balanced_columns():
    support, query = clusters(2, seed=6)
    plan = learner("pt-map").batch_logits_embeddings(support, query).exp()
    torch.testing.assert_close(plan.sum(-1), torch.ones(2, WAYS * QUERIES), atol=1e-4, rtol=0)
    torch.testing.assert_close(plan.sum(1), torch.full((2, WAYS), float(QUERIES)), atol=1e-3, rtol=0)
    transformed = power_transform(torch.tensor([[4.0, 0.0, -1.0]]), 0.5)
    torch.testing.assert_close(transformed.norm(dim=-1), torch.ones(1))
    assert transformed[0, 0] > 0.99 and transformed[0, 2] == transformed[0, 1]  # negatives clipped
    raw = power_transform(torch.tensor([[4.0, 0.0]]), 0.5, normalize=False)
    torch.testing.assert_close(raw, torch.tensor([[2.0, 1e-3]]), atol=1e-6, rtol=1e-5)
    support, query = clusters(4, shift=2.0, seed=1)
    assert accuracy("pt-map", support, query, normalize=False) > accuracy("protonet", support, query)


def test_laplacianshot_affinity_and_its_limit_without_the_laplacian():
    x = torch.tensor([[[0.0], [0.1], [0.3], [5.0], [5.2]]])
    neighbours = knn_neighbours(x, 1)
    assert neighbours[0, :, 0].tolist() == [1, 0, 1, 4, 3]
    w = torch.zeros(1, 5, 5).scatter_(-1, neighbours, 1.0)
    y = torch.rand(1, 5, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(neighbour_sum(y, neighbours), w @ y)  # the sparse W @ y
    assert w[0].tolist() == [
        [0, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
    ]
    # lambda = 0 and no rectification: nearest prototype on centred, normalised features
    support, query = clusters(2, seed=7)
    logits = learner("laplacianshot", lam=0.0, rectify=False).batch_logits_embeddings(support, query)
    centre = support.reshape(2, -1, DIM).mean(1, keepdim=True)
    s = F.normalize(support[:, :, 0] - centre, dim=-1)
    q = F.normalize(query - centre, dim=-1)
    torch.testing.assert_close(logits, (-torch.cdist(q, s).pow(2)).log_softmax(-1), rtol=1e-4, atol=1e-4)


def test_transductive_finetune_starts_from_the_cosine_head_and_query_entropy_falls():
    support, query = clusters(2, shift=0.5, seed=8)
    start = learner("transductive-finetune", steps=0).batch_logits_embeddings(support, query)
    expected = F.normalize(query, dim=-1) @ F.normalize(
        F.normalize(support, dim=-1).mean(2), dim=-1
    ).transpose(1, 2)
    torch.testing.assert_close(start, expected)
    tuned = learner("transductive-finetune", steps=50, lr=0.05, scale=10.0).batch_logits_embeddings(
        support, query
    )
    untuned = learner("transductive-finetune", steps=0, scale=10.0).batch_logits_embeddings(support, query)
    entropy = lambda logits: -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()  # noqa: E731
    assert entropy(tuned) < entropy(untuned)


def test_pt_map_centres_support_and_queries_as_the_authors_code():
    items = torch.rand(3, 7, 5) + 4.0  # positive features far from the origin, close together
    centred = centre_episode(items)
    torch.testing.assert_close(centred.norm(dim=-1), torch.ones(3, 7))
    # the common offset is gone: unit-norm alone keeps these within a small cone
    cosine = lambda z: (z @ z.transpose(1, 2)).mean()  # noqa: E731
    assert cosine(centred) < 0.2 < 0.9 < cosine(F.normalize(items, dim=-1))
    # on such features the centred PT-MAP separates the classes; without centring, lambda = 10
    # acts on tiny distances and the plan stays close to uniform
    support, query = clusters(4, seed=2)
    support, query = support + 30.0, query + 30.0
    with torch.no_grad():
        plan = learner("pt-map").batch_logits_embeddings(support, query).exp()
    assert accuracy("pt-map", support, query) >= accuracy("protonet", support, query)
    assert plan.amax(-1).mean() > 0.5


def test_easyfsl_formulations_start_where_easyfsl_starts():
    """The options that reproduce easyfsl's choices: TIM's cosine logits on raw class means,
    LaplacianShot without CL2N, transductive fine-tuning's negative-distance head."""
    support, query = clusters(2, shift=0.5, seed=9)
    means = support.mean(2)  # (B, N, d) of the embeddings as given
    tim = learner("tim", steps=0, metric="cosine").batch_logits_embeddings(support, query)
    cosine = F.normalize(query, dim=-1) @ F.normalize(means, dim=-1).transpose(1, 2)
    torch.testing.assert_close(tim, 15.0 * cosine, rtol=1e-4, atol=1e-4)
    raw = learner("laplacianshot", lam=0.0, rectify=False, normalize=False)
    expected = (-torch.cdist(query, means).pow(2)).log_softmax(-1)
    torch.testing.assert_close(raw.batch_logits_embeddings(support, query), expected, rtol=1e-4, atol=1e-4)
    head = learner("transductive-finetune", steps=0, head="l2").batch_logits_embeddings(support, query)
    torch.testing.assert_close(head, -torch.cdist(query, means), rtol=1e-4, atol=1e-4)
    tuned = learner("transductive-finetune", steps=30, lr=0.05, head="l2").batch_logits_embeddings(
        support, query
    )
    entropy = lambda logits: -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()  # noqa: E731
    assert entropy(tuned) < entropy(head)
    for name, option in (("tim", {"metric": "manhattan"}), ("transductive-finetune", {"head": "dot"})):
        with pytest.raises(FewshotError, match="unknown"):
            learner(name, steps=1, **option).batch_logits_embeddings(support, query)
