"""The learner contract (`fewshot.learners.base`), checked for every registered learner (the
cases are generated from the `LEARNERS` registry), plus ProtoNet specifics."""

from __future__ import annotations

import json

import pytest
import torch

from fewshot.encoders import create_encoder
from fewshot.encoders.base import IdentityEncoder
from fewshot.errors import FewshotError, NotFittedError
from fewshot.learners import LEARNERS, create_learner
from fewshot.learners.base import ADAPTIVE, EMBEDDING, FIXED, KINDS, FewShotLearner, check_contract
from fewshot.learners.protonet import ProtoNet
from fewshot.sampling import EpisodeSampler

WAYS, SHOTS, QUERIES = 3, 2, 4


def small_encoder():
    torch.manual_seed(0)
    return create_encoder("conv4", in_channels=1, hidden=8, image_size=28)


def episode(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(WAYS * 10, 1, 28, 28, generator=g)
    labels = torch.arange(WAYS).repeat_interleave(10)
    sampler = EpisodeSampler(labels, WAYS, SHOTS, QUERIES, episodes=1, seed=seed)
    return next(sampler.episodes(images))


@pytest.fixture(params=LEARNERS.names())
def learner(request):
    cls = LEARNERS.get(request.param)
    if cls.kind == FIXED or cls.uses_class_names:
        # Fixed-class classifiers and text-prompted learners (need class names and a CLIP
        # encoder) have their own tests: tests/test_transfer_learners.py.
        pytest.skip(f"{request.param} is not an image-only episodic learner")
    return create_learner(request.param, small_encoder())


def test_fit_returns_self(learner):
    ep = episode()
    assert learner.fit(ep.support_x, ep.support_y) is learner


def test_predict_before_fit_raises_not_fitted(learner):
    ep = episode()
    with pytest.raises(NotFittedError, match="fit"):
        learner.predict(ep.query_x)
    with pytest.raises(NotFittedError):
        learner.predict_proba(ep.query_x)


def test_predict_proba_rows_sum_to_one(learner):
    ep = episode()
    proba = learner.fit(ep.support_x, ep.support_y).predict_proba(ep.query_x)
    assert proba.shape == (WAYS * QUERIES, WAYS)
    assert (proba >= 0).all()
    torch.testing.assert_close(proba.sum(1), torch.ones(WAYS * QUERIES))
    predictions = learner.predict(ep.query_x)
    assert predictions.shape == (WAYS * QUERIES,)
    torch.testing.assert_close(predictions, proba.argmax(1))


def test_config_is_json_and_rebuilds(learner):
    config = json.loads(json.dumps(learner.config()))
    rebuilt = type(learner)(small_encoder(), **config)
    assert rebuilt.config() == config


def test_episode_loss_exists_exactly_when_meta_trainable(learner):
    ep = episode()
    if not learner.meta_trainable:
        with pytest.raises(NotImplementedError):
            learner.episode_loss(ep)
        return
    loss, _ = learner.episode_loss(ep)
    assert loss.ndim == 0


def test_episode_loss_gradients_reach_the_encoder(learner):
    ep = episode()
    learner.train()
    try:
        loss, accuracy = learner.episode_loss(ep)
    except NotImplementedError:
        pytest.skip(f"{type(learner).__name__} is not meta-trainable")
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert 0.0 <= float(accuracy) <= 1.0
    loss.backward()
    grads = [p.grad for p in learner.encoder.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


# -- ProtoNet specifics ---------------------------------------------------------------------


def test_cosine_metric_scores_scaled_cosine_similarity():
    torch.manual_seed(1)
    from fewshot.encoders.base import IdentityEncoder

    support = torch.randn(6, 5)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    queries = torch.randn(4, 5)
    learner = ProtoNet(IdentityEncoder(5), metric="cosine", scale=10.0).fit(support, labels)
    prototypes = torch.stack([support[labels == c].mean(0) for c in range(3)])
    expected = 10.0 * torch.nn.functional.cosine_similarity(
        queries[:, None, :], prototypes[None, :, :], dim=-1
    )
    torch.testing.assert_close(learner.logits(queries), expected)
    # scaling a query does not change its cosine prediction
    torch.testing.assert_close(learner.predict(queries * 7.5), learner.predict(queries))


def test_euclidean_metric_is_negative_squared_distance():
    from fewshot.encoders.base import IdentityEncoder

    support = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    learner = ProtoNet(IdentityEncoder(2)).fit(support, torch.tensor([0, 1]))
    logits = learner.logits(torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(logits, torch.tensor([[-2.0, -10.0]]))


def test_cached_path_matches_raw_path():
    ep = episode(3)
    learner = ProtoNet(small_encoder()).eval()
    raw = learner.fit(ep.support_x, ep.support_y).logits(ep.query_x)
    z_support, z_query = learner.encoder.encode(ep.support_x), learner.encoder.encode(ep.query_x)
    cached = learner.fit_embeddings(z_support, ep.support_y).logits_embeddings(z_query)
    torch.testing.assert_close(cached, raw)
    batched = learner.batch_logits_embeddings(
        z_support.view(1, WAYS, SHOTS, -1), z_query.view(1, WAYS * QUERIES, -1)
    )
    torch.testing.assert_close(batched[0], raw, rtol=1e-4, atol=1e-4)


def test_fit_does_not_track_gradients():
    ep = episode()
    learner = ProtoNet(small_encoder()).fit(ep.support_x, ep.support_y)
    assert not learner.prototypes_.requires_grad


# -- labels: any integers in, the same values out (scikit-learn's classes_) ------------------


class TextIdentity(IdentityEncoder):
    """Feature inputs plus a deterministic text tower: each prompt gets its own random vector."""

    logit_scale = 10.0

    def encode_text(self, texts):
        rows = [
            torch.randn(self.embed_dim, generator=torch.Generator().manual_seed(len(t) * 7919 + ord(t[-1])))
            for t in texts
        ]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def any_learner(name: str):
    """Every registered learner that can be fitted on a support set, with an encoder it accepts."""
    cls = LEARNERS.get(name)
    if cls.kind == FIXED:
        pytest.skip(f"{name} predicts its own fixed classes and is never fitted on a support set")
    if cls.needs_clip_towers:  # prompt tuning, LoRA: a (random-weight) micro-CLIP
        from clip_learners import clip_learner

        return clip_learner(name)
    if cls.uses_class_names:
        learner = create_learner(name, TextIdentity(16))
        learner.set_class_names(["ant", "bee", "cat"])
        return learner
    return create_learner(name, small_encoder())


def three_class_task(learner):
    """6 support and 6 query items of 3 classes, shaped for the learner's encoder."""
    g = torch.Generator().manual_seed(5)
    shape = tuple(learner.encoder.input_size) if learner.encoder.input_size is not None else (16,)
    means = torch.rand(3, *shape, generator=g)
    support = means.repeat_interleave(2, 0) + 0.05 * torch.rand(6, *shape, generator=g)
    query = means.repeat_interleave(2, 0) + 0.05 * torch.rand(6, *shape, generator=g)
    return support, query


@pytest.mark.parametrize("name", LEARNERS.names())
def test_non_contiguous_labels_map_to_classes_and_back(name):
    """Labels [0, 0, 7, 7, 9, 9]: classes_ = [0, 7, 9], 3 probability columns, predictions among
    those values, and exactly the model fitted on [0, 0, 1, 1, 2, 2] (relabelled)."""
    learner = any_learner(name).eval()
    support, query = three_class_task(learner)
    labels = torch.tensor([0, 0, 7, 7, 9, 9])
    proba = learner.fit(support, labels).predict_proba(query)
    assert learner.classes_.tolist() == [0, 7, 9]
    assert proba.shape == (6, 3)
    predictions = learner.predict(query)
    assert set(predictions.tolist()) <= {0, 7, 9}
    torch.testing.assert_close(predictions, learner.classes_[proba.argmax(1)])
    contiguous = any_learner(name).eval().fit(support, torch.tensor([0, 0, 1, 1, 2, 2]))
    torch.testing.assert_close(proba, contiguous.predict_proba(query))
    # labels as a numpy array or a list are accepted too, and give the same model
    torch.testing.assert_close(
        any_learner(name).eval().fit(support, [0, 0, 7, 7, 9, 9]).predict_proba(query), proba
    )


def test_protonet_never_predicts_a_class_without_support():
    """The issue's case: ProtoNet fitted on [0, 0, 7, 7, 9] predicted class 1 (no support image)."""
    support = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [-5.0, 5.0]])
    learner = ProtoNet(IdentityEncoder(2)).fit(support, torch.tensor([0, 0, 7, 7, 9]))
    queries = torch.tensor([[0.05, 0.0], [5.0, 5.1], [-5.0, 5.1], [1.0, 1.0]])
    assert learner.predict(queries).tolist() == [0, 7, 9, 0]
    assert learner.predict_proba(queries).shape == (4, 3)


def test_single_class_support_is_refused():
    with pytest.raises(FewshotError, match="at least 2 classes"):
        ProtoNet(IdentityEncoder(2)).fit(torch.rand(3, 2), torch.tensor([4, 4, 4]))


def test_zeroshot_needs_one_name_per_support_class():
    learner = create_learner("zeroshot", TextIdentity(16))
    learner.set_class_names(["ant", "bee"])
    with pytest.raises(FewshotError, match="3 classes but 2 class names"):
        learner.fit(torch.rand(3, 16), torch.tensor([0, 1, 2]))


# -- the declared contract: kind, capabilities, hyperparameters, classes_ --------------------


def built(name: str) -> FewShotLearner:
    """Every registered learner, fixed-class ones included, built with an encoder it accepts."""
    cls = LEARNERS.get(name)
    if cls.kind == FIXED:
        if cls.needs_clip_towers:  # a fitted CoCoOp: its prompts need a CLIP text tower
            from clip_learners import micro_clip

            return create_learner(name, micro_clip(), class_names=["ant", "bee", "cat"])
        return create_learner(name, small_encoder(), class_names=["ant", "bee", "cat"])
    return any_learner(name)


@pytest.mark.parametrize("name", LEARNERS.names())
def test_declares_a_valid_kind_and_capabilities(name):
    learner = built(name)
    check_contract(learner)
    assert learner.kind in KINDS
    for flag in ("uses_class_names", "meta_trainable", "batches_embeddings", "batches_episodes"):
        assert isinstance(getattr(learner, flag), bool), flag
    assert isinstance(learner.runs_meta_batch, bool)
    assert learner.frozen_encoder == (learner.kind == EMBEDDING)
    assert learner.fixed_classes == (learner.kind == FIXED)
    cls = type(learner)  # the class-level spellings read by the CLI agree with the instance's
    assert cls.uses_class_names == learner.uses_class_names and cls.meta_trainable == learner.meta_trainable


@pytest.mark.parametrize("name", LEARNERS.names())
def test_get_params_round_trips_through_the_constructor(name):
    learner = built(name)
    params = learner.get_params()
    assert learner.config() == params
    json.dumps(params)  # JSON-able: checkpoints store it as learner_config
    rebuilt = type(learner)(learner.encoder, **json.loads(json.dumps(params)))
    assert rebuilt.get_params() == params
    assert rebuilt.kind == learner.kind


@pytest.mark.parametrize("name", LEARNERS.names())
def test_fit_returns_self_and_sets_classes(name):
    learner = built(name).eval()
    support, _ = three_class_task(learner)
    if learner.kind == FIXED:
        with pytest.raises(FewshotError, match="fixed-class"):
            learner.fit(support, torch.tensor([0, 0, 1, 1, 2, 2]))
        return
    assert learner.classes_ is None
    assert learner.fit(support, torch.tensor([3, 3, 5, 5, 8, 8])) is learner
    assert learner.classes_.tolist() == [3, 5, 8]


def test_adaptive_finetune_declares_its_kind_per_instance():
    learner = create_learner("finetune", small_encoder(), train_last_block=True)
    assert learner.kind == ADAPTIVE and not learner.frozen_encoder
    check_contract(learner)
    assert LEARNERS.get("finetune").kind == EMBEDDING  # the default


def test_get_params_follows_kwargs_to_the_parent_constructor():
    params = create_learner("tip-adapter-f", TextIdentity(16)).get_params()
    assert params["train_steps"] == 100 and "alphas" in params and "templates" in params
    assert "encoder" not in params


def test_contract_violations_are_named():
    class NoLogits(FewShotLearner):
        kind = ADAPTIVE
        uses_class_names = True

        def _fit(self, x, y):
            return self

    with pytest.raises(FewshotError, match="NoLogits breaks the learner contract") as caught:
        check_contract(NoLogits())
    assert "needs logits" in str(caught.value) and "needs set_class_names" in str(caught.value)


def test_older_flags_still_declare_the_kind():
    class Legacy(FewShotLearner):
        frozen_encoder = False

        def episode_loss(self, episode):
            raise AssertionError

    assert Legacy.kind == ADAPTIVE and Legacy.meta_trainable
