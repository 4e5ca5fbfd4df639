"""The adaptation methods one by one: what each paper says they do, on tiny synthetic data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fewshot.adapt import ADAPTERS
from fewshot.adapt.adabn import recompute_batchnorm
from fewshot.adapt.cdan import CDAN, entropy_weights
from fewshot.adapt.dann import grl_schedule, reverse_gradient
from fewshot.adapt.heads import fit_linear_head, fold, head_logits
from fewshot.adapt.mcc import class_confusion
from fewshot.adapt.selection import entropy_score, im_score, scores, snd_score
from fewshot.adapt.self_training import SelfTraining, masked_cross_entropy, pseudo_labels, strong_augment


def test_registry_lists_every_method_without_importing_it():
    assert ADAPTERS.names() == [
        "adabn", "cdan", "cdan-e", "coral", "dann", "fixmatch", "mcc", "ot", "self-training", "subspace"
    ]  # fmt: skip


def test_gradient_reversal_flips_and_scales_the_gradient_and_leaves_the_forward():
    x = torch.randn(5, 3, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.5 * torch.arange(3.0).expand(5, 3))


def test_the_papers_lambda_schedule_goes_from_0_to_almost_1():
    assert grl_schedule(0.0) == 0.0
    assert 0.99 < grl_schedule(1.0) < 1.0
    values = [grl_schedule(p / 10) for p in range(11)]
    assert values == sorted(values)


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())


def test_adabn_changes_only_the_batchnorm_statistics_to_the_targets():
    net = _bn_net()
    net.train()
    net(torch.rand(32, 1, 8, 8))  # source statistics
    before = {k: v.clone() for k, v in net.state_dict().items()}
    target = 3.0 + 2.0 * torch.rand(50, 1, 8, 8)
    recompute_batchnorm(net, target, torch.device("cpu"), batch_size=7)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    conv_out = net[0](target).detach()
    assert torch.allclose(after["1.running_mean"], conv_out.mean(dim=(0, 2, 3)), atol=1e-5)
    assert net[1].momentum == 0.1 and net.training  # left as it was found


def test_pseudo_labels_respect_the_threshold():
    p = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    labels, keep = pseudo_labels(p, 0.9)
    assert labels.tolist()[:3] == [0, 0, 1] and keep.tolist() == [True, False, True, False]
    logits = torch.randn(4, 2)
    loss = masked_cross_entropy(logits, labels, keep)
    expected = nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]], reduction="sum") / 4
    assert torch.allclose(loss, expected)
    st = SelfTraining(threshold=0.9)
    st.begin_round(lambda: p, 0)
    assert st.confident_.tolist() == [True, False, True, False]
    assert masked_cross_entropy(logits, labels, torch.zeros(4, dtype=torch.bool)) == 0


def test_strong_augmentation_is_seeded_and_stays_in_range():
    x = torch.rand(4, 1, 16, 16)
    a = strong_augment(x, torch.Generator().manual_seed(1))
    b = strong_augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, x)


def _good_and_broken(n: int = 200, c: int = 5):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % c
    good = torch.softmax(6 * nn.functional.one_hot(labels, c).float() + torch.randn(n, c, generator=g), -1)
    collapsed = torch.softmax(6 * nn.functional.one_hot(torch.zeros(n, dtype=torch.long), c).float(), -1)
    scattered = torch.softmax(3 * torch.randn(n, c, generator=g), -1)  # confident, no clusters
    return good, collapsed, scattered


def test_validators_rank_a_good_adaptation_above_broken_ones():
    good, collapsed, scattered = _good_and_broken()
    for name, value in scores(good).items():
        assert value > scores(scattered)[name], name
    assert im_score(good) > im_score(collapsed)  # IM alone sees a collapse onto one class
    assert entropy_score(collapsed) > entropy_score(good) and snd_score(collapsed) > snd_score(good)


def test_mcc_is_zero_without_confusion_and_grows_with_it():
    sharp = 50 * torch.eye(4)
    assert float(class_confusion(sharp, 1.0)) < 1e-6
    assert float(class_confusion(torch.zeros(4, 4), 1.0)) == pytest.approx(0.75)


def test_cdan_switches_to_the_randomised_map_past_max_dim_and_weights_by_entropy():
    small, large = CDAN().modules(8, 3), CDAN(max_dim=16, random_dim=32).modules(8, 3)
    f, g = torch.randn(4, 8), torch.softmax(torch.randn(4, 3), -1)
    assert small.multilinear(f, g).shape == (4, 24) and not small.randomized
    assert large.multilinear(f, g).shape == (4, 32) and large.randomized
    w = entropy_weights(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
    assert w[0] > w[1] and torch.isclose(w.sum(), torch.tensor(2.0))


def _blobs(seed: int, n_per: int = 60, d: int = 6, c: int = 3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=g) * 2
    y = torch.arange(c).repeat_interleave(n_per)
    return centres[y] + 0.5 * torch.randn(len(y), d, generator=g), y


def _shifted(kind: str, z: torch.Tensor) -> torch.Tensor:
    if kind == "scale":  # per-feature rescaling and offset: first- and second-order statistics
        return z * torch.linspace(0.3, 3.0, z.shape[1]) + 2.0
    g = torch.Generator().manual_seed(5)
    a = torch.randn(z.shape[1], z.shape[1], generator=g)
    return z @ torch.linalg.matrix_exp(0.3 * (a - a.T)) + 1.0  # a tilted subspace and an offset


@pytest.mark.parametrize(
    ("method", "kind", "params"),
    [("coral", "scale", {}), ("subspace", "tilt", {"dim": 2}), ("ot", "scale", {})],
)
def test_frozen_feature_methods_fix_the_shift_they_are_meant_for(method, kind, params):
    if method == "ot":
        pytest.importorskip("ot", reason="POT is the adapt extra")
    zs, ys = _blobs(0)
    zt_clean, yt = _blobs(0)
    zt = _shifted(kind, zt_clean)
    cls = ADAPTERS.get(method)
    source_only = fit_linear_head(zs, ys, 3)
    before = float((head_logits(source_only, zt).argmax(-1) == yt).float().mean())
    adapter = cls(**params).fit(zs, ys, zt)
    head = fold(fit_linear_head(adapter.source_features(zs), ys, 3), adapter.target_map())
    after = float((head_logits(head, zt).argmax(-1) == yt).float().mean())
    assert after > before + 0.2 and after > 0.9, (before, after)


def test_domain_adapter_follows_the_learner_conventions(tmp_path):
    from fewshot.adapt.estimator import DomainAdapter
    from fewshot.encoders.base import IdentityEncoder
    from fewshot.errors import NotFittedError
    from fewshot.model_loading import load_learner

    zs, ys = _blobs(0)
    zt = _shifted("scale", _blobs(0)[0])
    adapter = DomainAdapter(IdentityEncoder(6), "coral", params={"eps": 1.0}, device="cpu")
    with pytest.raises(NotFittedError):
        adapter.predict(zt)
    labels = ys * 7 + 3  # any integer labels
    assert adapter.fit(zs, labels, zt, target_y=labels) is adapter
    assert adapter.classes_.tolist() == [3, 10, 17]
    assert float((adapter.predict(zt) == labels).float().mean()) > 0.9
    assert adapter.result_.adapted.accuracy > adapter.result_.source_only.accuracy
    assert adapter.predict_proba(zt).shape == (180, 3)
    model, meta = load_learner(adapter.save(tmp_path / "a.safetensors", "identity"))
    assert meta["adapt"]["method"] == "coral" and torch.equal(model.logits(zt), adapter.logits(zt))
