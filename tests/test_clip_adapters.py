"""CoOp, CoCoOp, CLIP-Adapter, CLIP-LoRA, ZS-LP/CLAP and LP++ on random-weight open_clip models:
the loss goes down, only the intended parameters change (the encoders stay bit-identical),
CoOp untrained with a template's context is zero-shot, LoRA merged equals unmerged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from clip_learners import CLASS_NAMES, clip_learner, image_task, micro_clip, tiny_clip

from fewshot.errors import FewshotError
from fewshot.learners import create_learner
from fewshot.learners.zeroshot import ZeroShot

pytest.importorskip("open_clip")
pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ["coop", "cocoop", "clip-adapter", "clap", "zs-lp", "lp++", "clip-lora"]
TRAINED = {  # (the learner's own parameters that training must change)
    "coop": ["ctx_"],
    "cocoop": ["ctx_", "meta_net_"],
    "clip-adapter": ["image_adapter_"],
    "clap": ["weight_"],
    "zs-lp": ["weight_"],
    "lp++": ["head_", "alpha_"],
    "clip-lora": ["adapters_"],
}


def fitted(name: str, encoder=None, **options):
    encoder = encoder or micro_clip()
    learner = clip_learner(name, encoder, **options).eval()
    support, labels, _, _ = image_task(encoder)
    return learner.fit(support, labels)


@pytest.mark.parametrize("name", METHODS)
def test_training_lowers_the_support_loss(name):
    """The support set's cross-entropy after training is below the untrained model's (CoCoOp's
    batch-1 step losses are too noisy to compare first and last)."""
    more = {
        "coop": {"epochs": 40},
        "cocoop": {"epochs": 4, "lr": 0.05},
        "clip-adapter": {"epochs": 100, "lr": 1e-2},
        "clip-lora": {"iterations_per_shot": 40, "lr": 2e-3},
    }
    encoder = micro_clip()
    support, labels, _, _ = image_task(encoder)
    trained = fitted(name, encoder, **more.get(name, {}))
    untrained = fitted(name, encoder, **_untrained(name))
    assert len(trained.losses_) > 1 and untrained.losses_ == []
    with torch.no_grad():
        after = F.cross_entropy(trained.logits(support), labels)
        before = F.cross_entropy(untrained.logits(support), labels)
    assert after < 0.9 * before, (float(before), float(after))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", METHODS)
def test_only_the_methods_own_parameters_change(name):
    encoder = micro_clip()
    before = _snapshot(encoder)
    learner = fitted(name, encoder)
    after = encoder.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "the frozen encoder changed"
    assert all(p.grad is None for p in encoder.parameters()), "gradients reached the frozen encoder"
    assert all(p.requires_grad for p in encoder.parameters())  # the flags were restored
    untrained = clip_learner(name, encoder, **_untrained(name)).eval()
    untrained.fit(*image_task(encoder)[:2])
    for attribute in TRAINED[name]:
        new, old = getattr(learner, attribute), getattr(untrained, attribute)
        new_t = torch.cat([p.detach().reshape(-1) for p in _tensors(new)])
        old_t = torch.cat([p.detach().reshape(-1) for p in _tensors(old)])
        assert new_t.shape == old_t.shape and not torch.equal(new_t, old_t), attribute


def _untrained(name: str) -> dict:
    if name == "lp++":
        return {"steps": 0}
    if name == "clip-lora":
        return {"iterations_per_shot": 0}
    return {"epochs": 0}


def _tensors(value) -> list[torch.Tensor]:
    return list(value.parameters()) if isinstance(value, torch.nn.Module) else [value]


@pytest.mark.parametrize("context", ["unified", "class"])
def test_coop_untrained_from_a_template_is_zero_shot(context):
    encoder = micro_clip()
    support, labels, query, _ = image_task(encoder)
    coop = clip_learner("coop", encoder, epochs=0, context=context, init="a photo of a {}.").fit(
        support, labels
    )
    zero = ZeroShot(encoder, templates=["a photo of a {}."])
    zero.set_class_names(CLASS_NAMES)
    zero.fit(support, labels)
    torch.testing.assert_close(coop.predict_proba(query), zero.predict_proba(query))
    torch.testing.assert_close(coop.text_features_, zero.prototypes_, atol=1e-5, rtol=1e-5)


def test_coop_contexts_have_the_requested_shape():
    encoder = micro_clip()
    width = encoder.model.token_embedding.weight.shape[1]
    assert fitted("coop", init=None, n_ctx=6).ctx_.shape == (1, 6, width)
    assert fitted("coop", context="class").ctx_.shape == (3, 4, width)  # "a photo of a": 4 tokens
    assert fitted("coop", init="a blurry sketch of the {} shape").ctx_.shape == (1, 5, width)


def test_coop_refuses_an_encoder_without_a_text_transformer():
    from fewshot.encoders.base import IdentityEncoder

    with pytest.raises(FewshotError, match="needs --encoder clip"):
        create_learner("coop", IdentityEncoder(8))
    with pytest.raises(FewshotError, match="needs --encoder clip"):
        create_learner("clip-lora", IdentityEncoder(8))


@pytest.mark.parametrize("tiny", [False, True])
def test_lora_merged_equals_unmerged(tiny, tmp_path):
    encoder = tiny_clip(str(tmp_path)) if tiny else micro_clip()
    _, _, query, _ = image_task(encoder)
    learner = fitted("clip-lora", encoder, iterations_per_shot=10, lr=1e-2)
    assert any(float(b.detach().abs().max()) > 0 for a in learner.adapters_.values() for b in a.B.values())
    unmerged = learner.logits(query)
    learner.merged = True
    torch.testing.assert_close(learner.logits(query), unmerged, atol=1e-4, rtol=1e-4)
    plain = learner.merged_encoder()  # a plain open_clip model with the adapters written in
    torch.testing.assert_close(
        learner.logit_scale * plain(query) @ learner.text_features_.T, unmerged, atol=1e-4, rtol=1e-4
    )
    assert not torch.equal(plain(query), encoder(query))  # the adapters do change the features


def test_lora_adapts_every_attention_layer_of_both_towers():
    learner = fitted("clip-lora")
    names = {key.split("/")[0] for key in learner.adapters_}
    assert names == {"visual", "transformer"}
    layers = sum(isinstance(m, torch.nn.MultiheadAttention) for m in micro_clip().model.modules())
    assert len(learner.adapters_) == layers
    assert learner.adapters_[next(iter(learner.adapters_))].A["q"].shape[0] == 2  # CLIP-LoRA's rank
    assert len(fitted("clip-lora", encoders="vision").adapters_) < layers


def test_lora_keeps_clip_loras_settings_by_default():
    params = create_learner("clip-lora", micro_clip()).get_params()
    assert (params["rank"], params["alpha"], params["dropout"], params["lr"]) == (2, 1.0, 0.25, 2e-4)
    assert (params["iterations_per_shot"], params["batch_size"]) == (500, 32)


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_model(name):
    encoder = micro_clip()
    _, _, query, _ = image_task(encoder)
    first = fitted(name, encoder).predict_proba(query)
    torch.manual_seed(123)  # the caller's random stream does not matter
    assert torch.equal(fitted(name, encoder).predict_proba(query), first)


@pytest.mark.parametrize("name", ["coop", "clap", "lp++", "clip-lora"])
def test_classifier_weights_reproduce_the_logits(name):
    encoder = micro_clip()
    _, _, query, _ = image_task(encoder)
    learner = fitted(name, encoder)
    weight, bias = learner.classifier_weights()
    source = learner.merged_encoder() if name == "clip-lora" else encoder
    with torch.no_grad():
        logits = torch.nn.functional.normalize(source(query), dim=-1) @ weight.T + bias
    torch.testing.assert_close(logits, learner.logits(query), atol=1e-4, rtol=1e-4)


def test_clap_multipliers_follow_zero_shot_confidence():
    from fewshot.learners.clap import class_adaptive_multipliers

    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [4.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    multipliers = class_adaptive_multipliers(logits, labels)
    p = torch.tensor([4.0, 0.0]).softmax(0)
    torch.testing.assert_close(multipliers, torch.stack([(p[0] + p[1]) / 2, p[1]]))


def test_compare_runs_the_clip_methods_on_the_same_episodes(tmp_path):
    """`compare_methods` with an EMBEDDING learner (CoOp) and CLIP-LoRA (ADAPTIVE, named), one plot."""
    from fewshot.data.tensors import LabeledTensors
    from fewshot.transfer.compare import compare_methods, episode_files_for, format_table, plot_rows
    from fewshot.workflows.compare import check_methods, default_methods

    check_methods(["coop", "clip-lora"])  # clip-lora may be named ...
    assert "clip-lora" not in default_methods(True) and "coop" in default_methods(True)  # ... not by default
    encoder = micro_clip()
    support, labels, query, query_labels = image_task(encoder, shots=4, queries=4)
    data = LabeledTensors(torch.cat([support, query]), torch.cat([labels, query_labels]), list(CLASS_NAMES))
    files = episode_files_for(data.labels, [1, 2], 3, 3, 2, 0, tmp_path)
    learners = {name: create_learner(name, encoder, **FAST_COMPARE[name]) for name in FAST_COMPARE}
    rows = compare_methods(learners, data, files, "cpu", progress=False)
    assert [(r.method, r.shots) for r in rows] == [
        ("coop", 1),
        ("coop", 2),
        ("clip-lora", 1),
        ("clip-lora", 2),
    ]
    assert all(0 <= r.mean <= 1 and r.n_episodes == 2 for r in rows)
    assert "clip-lora" in format_table(rows)
    assert plot_rows(rows, tmp_path / "p.png").stat().st_size > 0


FAST_COMPARE = {"coop": {"epochs": 2}, "clip-lora": {"iterations_per_shot": 2}}
