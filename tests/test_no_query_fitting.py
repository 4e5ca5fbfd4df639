"""No method tunes on query or test data: for every registered learner that is fitted on a
support set, (1) what `evaluate` leaves fitted after an episode is the same whatever the
items outside the support sets are, and (2) for inductive learners (``transductive = False``),
of any kind, a query's scores do not move when the other queries change."""

from __future__ import annotations

import pytest
import torch
from clip_learners import CLASS_NAMES, clip_learner, micro_clip

from fewshot.data.tensors import LabeledTensors
from fewshot.encoders import create_encoder
from fewshot.encoders.base import IdentityEncoder
from fewshot.evaluation import evaluate
from fewshot.learners import LEARNERS, create_learner
from fewshot.learners.base import FIXED, FewShotLearner
from fewshot.sampling import EpisodeSampler

pytestmark = pytest.mark.usefixtures("one_thread")

FITTED = [n for n in LEARNERS.names() if LEARNERS.get(n).kind != FIXED]
FAST = {"tim": {"steps": 20}, "transductive-finetune": {"steps": 10}, "finetune": {"steps": 10}}
WAYS, SHOTS, QUERIES, PER_CLASS = 3, 2, 3, 8


class TextIdentity(IdentityEncoder):
    """Features in, and a deterministic text tower for the learners that read class names."""

    logit_scale = 10.0

    def encode_text(self, texts):
        seeds = [len(t) * 7919 + ord(t[-1]) for t in texts]
        rows = [torch.randn(self.embed_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def build(name: str) -> FewShotLearner:
    cls = LEARNERS.get(name)
    if cls.needs_clip_towers:
        return clip_learner(name).eval()
    if cls.uses_class_names:
        learner = create_learner(name, TextIdentity(16), **FAST.get(name, {}))
        learner.set_class_names(CLASS_NAMES)
        return learner.eval()
    torch.manual_seed(0)
    encoder = create_encoder("conv4", in_channels=1, hidden=8, image_size=28)
    return create_learner(name, encoder, **FAST.get(name, {})).eval()


def item_shape(learner) -> tuple[int, ...]:
    size = learner.encoder.input_size
    return (16,) if size is None else tuple(size)


def data_for(learner, seed: int = 0) -> LabeledTensors:
    g = torch.Generator().manual_seed(seed)
    shape = item_shape(learner)
    means = torch.rand(WAYS, *shape, generator=g)
    items = means.repeat_interleave(PER_CLASS, 0) + 0.3 * torch.rand(WAYS * PER_CLASS, *shape, generator=g)
    return LabeledTensors(items, torch.arange(WAYS).repeat_interleave(PER_CLASS), list(CLASS_NAMES))


def fitted_state(learner) -> dict:
    """Everything `fit` may have learned: the state dict and every ``*_`` attribute."""
    state = {f"state:{k}": v.detach().clone() for k, v in learner.state_dict().items()}
    for key, value in vars(learner).items():
        if key.endswith("_") and not key.startswith("_"):
            state[key] = value.detach().clone() if isinstance(value, torch.Tensor) else value
    return state


def assert_same_state(a: dict, b: dict, name: str) -> None:
    assert a.keys() == b.keys(), name
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{name}: {key} depends on the queries"
        elif isinstance(a[key], (list, float, int, str, type(None))):
            assert a[key] == b[key], f"{name}: {key} depends on the queries"


@pytest.mark.parametrize("name", FITTED)
def test_what_is_fitted_never_depends_on_items_outside_the_support_sets(name):
    learner = build(name)
    data = data_for(learner)
    sampler = EpisodeSampler(data.labels, WAYS, SHOTS, QUERIES, episodes=2, seed=0)
    support = torch.as_tensor(sampler.sample_indices(0, 2).support.reshape(-1))
    others = torch.ones(len(data.labels), dtype=torch.bool)
    others[support] = False
    changed = data.data.clone()
    changed[others] = torch.rand(changed[others].shape, generator=torch.Generator().manual_seed(9))
    altered = LabeledTensors(changed, data.labels, data.class_names)

    first = evaluate(learner, data, sampler=sampler, device="cpu", progress=False)
    state = fitted_state(learner)
    again = build(name)
    second = evaluate(again, altered, sampler=sampler, device="cpu", progress=False)
    if learner.transductive:
        return  # declared: it scores queries jointly (test_transduction checks the flag is true)
    assert_same_state(state, fitted_state(again), name)
    assert first.n_episodes == second.n_episodes == 2


INDUCTIVE = [n for n in FITTED if not LEARNERS.get(n).transductive]


@pytest.mark.parametrize("name", INDUCTIVE)
def test_an_inductive_learners_query_scores_ignore_the_other_queries(name):
    """For every kind (test_transduction checks the EMBEDDING ones on their own)."""
    learner = build(name)
    data = data_for(learner, seed=3)
    support = data.data[:: PER_CLASS // SHOTS][: WAYS * SHOTS]
    labels = data.labels[:: PER_CLASS // SHOTS][: WAYS * SHOTS]
    query = data.data[1::2]
    learner.fit(support, labels)
    with torch.no_grad():
        full = learner.logits(query)
        moved = query.clone()
        moved[1::2] = torch.rand(moved[1::2].shape, generator=torch.Generator().manual_seed(4)) * 5
        torch.testing.assert_close(learner.logits(moved)[::2], full[::2], msg=name)
        torch.testing.assert_close(learner.logits(query[:3]), full[:3], msg=name)


def test_the_state_check_catches_a_learner_that_fits_on_queries():
    """A learner whose fit peeks at the evaluation's items (all embeddings) is caught."""

    class Peeks(FewShotLearner):
        def __init__(self, encoder) -> None:
            super().__init__()
            self.encoder = encoder
            self.mean_ = None

        def _fit_embeddings(self, z, y):
            self.mean_ = z.mean(0) + PEEKED["all"].mean()
            return self

        def logits_embeddings(self, z):
            return z[:, :WAYS] - self.mean_[:WAYS]

    PEEKED = {}
    encoder = IdentityEncoder(16)
    learner = Peeks(encoder)
    data = data_for(learner)
    sampler = EpisodeSampler(data.labels, WAYS, SHOTS, QUERIES, episodes=1, seed=0)
    PEEKED["all"] = data.data
    evaluate(learner, data, sampler=sampler, device="cpu", progress=False)
    state = fitted_state(learner)
    PEEKED["all"] = data.data + 1
    evaluate(learner, data, sampler=sampler, device="cpu", progress=False)
    with pytest.raises(AssertionError, match="depends on the queries"):
        assert_same_state(state, fitted_state(learner), "peeks")


def test_clip_learners_are_covered():
    names = set(FITTED)
    assert {"coop", "cocoop", "clip-adapter", "clip-lora", "clap", "zs-lp", "lp++", "tip-adapter-f"} <= names
    assert micro_clip().input_size == (3, 32, 32)
