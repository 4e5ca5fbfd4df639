"""SimpleShot, linear probe, per-episode fine-tuning, Tip-Adapter(-F), fixed-class classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import make_blobs

from fewshot.data.tensors import LabeledTensors
from fewshot.encoders.base import IdentityEncoder
from fewshot.encoders.conv4 import Conv4
from fewshot.errors import FewshotError, NotFittedError
from fewshot.evaluation import evaluate
from fewshot.learners import LEARNERS
from fewshot.learners.classifier import Classifier
from fewshot.learners.finetune import Finetune
from fewshot.learners.linear_probe import LinearProbe
from fewshot.learners.simpleshot import SimpleShot
from fewshot.learners.tip_adapter import TipAdapter, TipAdapterF
from fewshot.sampling import EpisodeSampler

pytestmark = pytest.mark.usefixtures("one_thread")


class FixedText(TipAdapter):
    """Tip-Adapter whose text prototypes are given (no CLIP needed): rows indexed by class name."""

    def __init__(self, encoder, table: dict[str, torch.Tensor], **kwargs):
        super().__init__(encoder, **kwargs)
        self.table = table

    def text_prototypes(self):
        return torch.stack([self.table[n] for n in self.class_names_])


class FakeClipEncoder(IdentityEncoder):
    logit_scale = 10.0


def _episode(data, shots, queries=5, ways=5, seed=0):
    sampler = EpisodeSampler(data.labels, ways, shots, queries, episodes=1, seed=seed)
    return sampler, next(iter(sampler.episodes(data.data)))


def _frozen_learners(dim: int, text: dict[str, torch.Tensor]):
    encoder = FakeClipEncoder(dim)
    return {
        "simpleshot": SimpleShot(encoder),
        "simpleshot-base": SimpleShot(encoder, centering="base", base_mean=[0.5] * dim),
        "linear-probe": LinearProbe(encoder),
        "finetune": Finetune(encoder, steps=20),
        "tip-adapter": FixedText(encoder, text),
        "tip-adapter-f": FixedText(encoder, text, train_steps=10),
    }


def _text_table(data: LabeledTensors, noise: float, seed: int = 123) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = torch.stack([data.data[data.labels == c].mean(0) for c in range(data.n_classes)])
    noisy = F.normalize(
        means + noise * means.norm(dim=-1, keepdim=True) * torch.randn(means.shape, generator=g)
    )
    return dict(zip(data.class_names, noisy, strict=True))


@pytest.mark.parametrize("shots", [1, 3])
def test_queries_never_influence_other_queries(shots):
    """Fit on the support set, then the logits of a query do not depend on the other queries."""
    data = make_blobs(dim=8, spread=1.0)
    for name, learner in _frozen_learners(8, _text_table(data, 0.5)).items():
        _, episode = _episode(data, shots)
        learner.set_class_names([data.class_names[c] for c in episode.class_ids]) if hasattr(
            learner, "set_class_names"
        ) else None
        learner.fit(episode.support_x, episode.support_y)
        logits = learner.logits(episode.query_x)
        changed = episode.query_x.clone()
        changed[1::2] = 100 * torch.randn_like(changed[1::2])
        torch.testing.assert_close(learner.logits(changed)[::2], logits[::2], msg=name)


def test_fit_sees_support_items_only():
    """Through `evaluate`, every learner is fitted on exactly the episodes' support items, in order."""
    data = make_blobs(n_classes=8, per_class=10, dim=6)
    ids = torch.arange(len(data), dtype=torch.float32).unsqueeze(1)
    tagged = LabeledTensors(torch.cat([data.data, ids], 1), data.labels, data.class_names)
    sampler = EpisodeSampler(tagged.labels, 4, 2, 3, episodes=5, seed=3)
    support_ids = sampler.sample_indices().support.reshape(-1).tolist()
    for name, learner in _frozen_learners(7, _text_table(tagged, 0.1)).items():
        seen: list[int] = []
        original = learner._fit_embeddings

        def spy(z, y, original=original, seen=seen):
            seen.extend(int(v) for v in z[:, -1])
            return original(z, y)

        learner._fit_embeddings = spy
        if hasattr(learner, "batch_logits_embeddings"):  # many episodes at once: support passed apart
            batch = learner.batch_logits_embeddings

            def batch_spy(support_z, query_z, batch=batch, seen=seen):
                seen.extend(int(v) for v in support_z[..., -1].reshape(-1))
                return batch(support_z, query_z)

            learner.batch_logits_embeddings = batch_spy
        evaluate(learner, tagged, ways=4, shots=2, queries=3, episodes=5, seed=3, progress=False)
        assert seen == support_ids, name


@pytest.mark.parametrize("name", ["simpleshot", "linear-probe", "finetune"])
def test_frozen_methods_solve_separated_classes(name):
    learner = LEARNERS.get(name)(IdentityEncoder(16))
    result = evaluate(learner, make_blobs(), ways=5, shots=1, queries=5, episodes=20, progress=False)
    assert result.mean > 0.95


def test_predict_before_fit_raises():
    for learner in (
        SimpleShot(IdentityEncoder(4)),
        LinearProbe(IdentityEncoder(4)),
        Finetune(IdentityEncoder(4)),
    ):
        with pytest.raises(NotFittedError):
            learner.predict(torch.randn(3, 4))


def test_simpleshot_centres_with_support_mean_and_matches_batched_path():
    z = torch.randn(10, 5) + 3
    y = torch.arange(5).repeat(2)
    learner = SimpleShot(IdentityEncoder(5)).fit(z, y)
    torch.testing.assert_close(learner.center_, z.mean(0))
    feats = F.normalize(z - z.mean(0), dim=-1)
    torch.testing.assert_close(learner.prototypes_[2], feats[y == 2].mean(0))
    queries = torch.randn(7, 5)
    batched = learner.batch_logits_embeddings(
        z.view(2, 5, 5).transpose(0, 1).unsqueeze(0), queries.unsqueeze(0)
    )
    torch.testing.assert_close(batched[0], learner.logits(queries), rtol=1e-4, atol=1e-4)
    base = SimpleShot(IdentityEncoder(5), centering="base", base_mean=[1.0] * 5).fit(z, y)
    torch.testing.assert_close(base.center_, torch.ones(5))
    with pytest.raises(FewshotError):
        SimpleShot(IdentityEncoder(5), centering="base")


def test_linear_probe_chooses_c_on_support_only():
    data = make_blobs(dim=8, spread=2.0)
    _, episode = _episode(data, shots=4)
    probe = LinearProbe(IdentityEncoder(8)).fit(episode.support_x, episode.support_y)
    assert probe.c_ in probe.cs
    one_shot = LinearProbe(IdentityEncoder(8), default_c=3.0)
    _, episode1 = _episode(data, shots=1)
    assert one_shot.fit(episode1.support_x, episode1.support_y).c_ == 3.0
    # Two classes: scikit-learn's single-row binary model becomes two logits.
    two = LinearProbe(IdentityEncoder(8)).fit(episode.support_x[:8], episode.support_y[:8] % 2)
    assert two.logits(episode.query_x).shape == (episode.query_x.shape[0], 2)


def test_finetune_last_block_leaves_the_shared_encoder_unchanged():
    torch.manual_seed(0)
    encoder = Conv4(in_channels=1, hidden=8, image_size=16)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    x = torch.rand(10, 1, 16, 16)
    y = torch.arange(5).repeat(2)
    learner = Finetune(encoder, steps=5, train_last_block=True, block_lr=0.05)
    assert learner.frozen_encoder is False
    learner.fit(x, y)
    for k, v in encoder.state_dict().items():
        torch.testing.assert_close(v, before[k])
    adapted = learner._work["encoder"].state_dict()
    assert not torch.equal(adapted["blocks.3.0.weight"], before["blocks.3.0.weight"])
    torch.testing.assert_close(adapted["blocks.0.0.weight"], before["blocks.0.0.weight"])
    assert learner.predict(x).shape == (10,)
    assert "_work" not in str(list(learner.state_dict()))


def test_tip_adapter_blend_is_chosen_on_support_and_uses_the_cache():
    data = make_blobs(dim=8, spread=1.0)
    text = _text_table(data, noise=2.0)  # poor zero-shot prototypes
    encoder = FakeClipEncoder(8)
    zero = FixedText(encoder, text, alphas=[0.0], betas=[1.0])
    tip = FixedText(encoder, text)
    sampler = EpisodeSampler(data.labels, 5, 4, 5, episodes=40, seed=1)
    acc = {}
    for name, learner in (("zero", zero), ("tip", tip)):
        result = evaluate(
            learner, data, episode_file=str(sampler.save(f"/tmp/tip_{name}.npz")), progress=False
        )
        acc[name] = result.mean
    assert acc["tip"] > acc["zero"] + 0.1
    _, episode = _episode(data, shots=4)
    tip.set_class_names([data.class_names[c] for c in episode.class_ids])
    tip.fit(episode.support_x, episode.support_y)
    assert tip.alpha_ > 0 and tip.alpha_ in tip.alphas and tip.beta_ in tip.betas
    # One shot: leave-one-out is uninformative, the paper's defaults are used.
    _, episode1 = _episode(data, shots=1)
    tip.fit(episode1.support_x, episode1.support_y)
    assert (tip.alpha_, tip.beta_) == (1.0, 5.5)


def test_tip_adapter_f_trains_keys_and_lowers_support_loss():
    data = make_blobs(dim=8, spread=2.0)
    text = _text_table(data, noise=1.0)
    encoder = FakeClipEncoder(8)
    _, episode = _episode(data, shots=3)
    names = [data.class_names[c] for c in episode.class_ids]
    plain = FixedText(encoder, text, alphas=[1.0], betas=[5.5])
    tuned = FixedText(encoder, text, alphas=[1.0], betas=[5.5], train_steps=50, lr=0.01)
    for learner in (plain, tuned):
        learner.set_class_names(names)
        learner.fit(episode.support_x, episode.support_y)
    assert not torch.allclose(plain.keys_, tuned.keys_)
    assert (plain.alpha_, plain.beta_) == (tuned.alpha_, tuned.beta_)
    loss = {
        n: float(F.cross_entropy(m.logits(episode.support_x), episode.support_y))
        for n, m in (("plain", plain), ("tuned", tuned))
    }
    assert loss["tuned"] < loss["plain"]
    assert TipAdapterF(encoder).train_steps == 100


def test_zero_shot_methods_need_a_text_encoder():
    learner = LEARNERS.get("zeroshot")(IdentityEncoder(4))
    learner.set_class_names(["a", "b"])
    with pytest.raises(FewshotError, match="CLIP"):
        learner.fit()


def test_classifier_is_fixed_class_and_round_trips(tmp_path):
    from fewshot.checkpoints import learner_metadata, load_learner, save_checkpoint

    model = Classifier(IdentityEncoder(4), ["cat", "dog", "owl"], normalize=True)
    assert model.fixed_classes
    with pytest.raises(FewshotError, match="fixed-class"):
        model.fit(torch.randn(3, 4), torch.arange(3))
    x = torch.randn(6, 4)
    path = save_checkpoint(
        tmp_path / "c.safetensors", model, learner_metadata("classifier", "identity", model)
    )
    loaded, meta = load_learner(path)
    assert meta["learner_config"]["class_names"] == ["cat", "dog", "owl"]
    torch.testing.assert_close(loaded.logits(x), model.logits(x))


def test_finetune_batched_heads_match_one_episode_at_a_time():
    torch.manual_seed(0)
    support = torch.randn(3, 4, 2, 6)
    queries = torch.randn(3, 5, 6)
    learner = Finetune(IdentityEncoder(6), steps=15)
    batched = learner.batch_logits_embeddings(support, queries)
    for i in range(3):
        learner.fit_embeddings(support[i].reshape(8, 6), torch.arange(4).repeat_interleave(2))
        torch.testing.assert_close(batched[i], learner.logits(queries[i]), rtol=1e-4, atol=1e-4)
