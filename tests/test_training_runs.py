"""A run at --out resumes only with its own settings; options are checked; same seed, same bytes."""

from __future__ import annotations

import json

import pytest
import torch
from test_training import config, images, protonet

from fewshot.encoders import create_encoder
from fewshot.errors import FewshotError
from fewshot.learners.protonet import ProtoNet
from fewshot.locking import exclusive_lock
from fewshot.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return images(12, 8, seed=0), images(5, 8, seed=1)


def files_of(out):
    return {p.name: p.read_bytes() for p in sorted(out.parent.iterdir()) if p.is_file()}


def run(out, data, learner=None, **overrides):
    train_data, val_data = data
    learner = learner or protonet()
    return train(learner, train_data, out, config(**overrides), val_data=val_data, progress=False)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"ways": 3}, "ways 4 -> 3"), ({"shots": 2}, "shots 1 -> 2"), ({"steps": 8}, "steps 4 -> 8")],
)
def test_a_run_with_other_settings_is_refused_in_one_line(tmp_path, data, overrides, named):
    out = tmp_path / "m.safetensors"
    run(out, data, steps=4)
    before = files_of(out)
    with pytest.raises(FewshotError) as err:
        run(out, data, **{"steps": 4, **overrides})
    message = str(err.value)
    assert named in message and "--restart" in message and "\n" not in message
    assert files_of(out) == before  # nothing resumed, nothing overwritten


def test_another_encoder_is_refused_in_one_short_line(tmp_path, data):
    out = tmp_path / "m.safetensors"
    run(out, data, steps=4)
    torch.manual_seed(0)
    other = ProtoNet(create_encoder("conv4", hidden=4))
    with pytest.raises(FewshotError, match=r"encoder_config.hidden 8 -> 4.*--restart") as err:
        run(out, data, learner=other, steps=4)
    assert len(str(err.value)) < 300


def test_other_data_is_refused(tmp_path, data):
    out = tmp_path / "m.safetensors"
    run(out, data, steps=4)
    with pytest.raises(FewshotError, match="data"):
        run(out, (images(12, 8, seed=5), data[1]), steps=4)


def test_restart_deletes_the_old_run_and_equals_a_fresh_one(tmp_path, data):
    run(tmp_path / "a" / "m.safetensors", data, steps=8, ways=3)
    out = tmp_path / "b" / "m.safetensors"
    run(out, data, steps=4)
    train_data, val_data = data
    cfg = config(steps=8, ways=3)
    train(protonet(), train_data, out, cfg, val_data=val_data, progress=False, resume=False)
    a = (tmp_path / "a" / "m.safetensors").read_bytes()
    assert out.read_bytes() == a  # the restarted run kept nothing of the old one


def test_files_of_another_program_or_version_are_not_resumed(tmp_path, data):
    out = tmp_path / "m.safetensors"
    run(out, data, steps=4)
    out.with_name("m.safetensors.run.json").unlink()  # as an older fewshot left it
    with pytest.raises(FewshotError, match="not from a resumable.*--restart"):
        run(out, data, steps=4)
    legacy = {"best_val_accuracy": 0.5, "config": {"ways": 4}}
    out.with_name("m.safetensors.run.json").write_text(json.dumps(legacy))
    with pytest.raises(FewshotError, match="does not record the run's settings"):
        run(out, data, steps=4)


def test_a_finished_run_run_again_changes_nothing(tmp_path, data):
    out = tmp_path / "m.safetensors"
    first = run(out, data, steps=8)
    before = files_of(out)
    again = run(out, data, steps=8)
    after = files_of(out)
    assert again.resumed_from == 8 and again.best_step == first.best_step
    assert after["m.safetensors"] == before["m.safetensors"]
    assert after["m.safetensors.state.pt"] == before["m.safetensors.state.pt"]
    assert after["m.safetensors.log.csv"] == before["m.safetensors.log.csv"]


def test_an_early_stopped_run_stays_stopped(tmp_path, data, monkeypatch):
    import fewshot.training as training

    monkeypatch.setattr(training, "_episode_accuracy", lambda *a, **k: 0.5)  # never improves
    out = tmp_path / "m.safetensors"
    first = run(out, data, steps=40, val_every=2, patience=2)
    assert first.stopped_early and first.steps_done == 6
    again = run(out, data, steps=40, val_every=2, patience=2)
    assert again.stopped_early and again.steps_done == 6  # not trained on to step 40


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, data):
    def fresh(seed):
        torch.manual_seed(seed)  # the caller seeds the construction (the CLI does it with --seed)
        return ProtoNet(create_encoder("conv4", hidden=8))

    outs = [tmp_path / f"{i}" / "m.safetensors" for i in range(3)]
    for out, seed in zip(outs, (3, 3, 4), strict=True):
        run(out, data, learner=fresh(seed), steps=4, seed=seed)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    rows = [o.with_name("m.safetensors.log.csv").read_text().splitlines() for o in outs]
    assert [r.rsplit(",", 1)[0] for r in rows[0]] == [r.rsplit(",", 1)[0] for r in rows[1]]  # but seconds
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_a_second_run_at_the_same_out_is_refused(tmp_path, data):
    out = tmp_path / "m.safetensors"
    with exclusive_lock(out, "this training run"), pytest.raises(FewshotError, match="another fewshot run"):
        run(out, data, steps=4)
    assert not out.exists()


def test_litter_of_a_killed_atomic_write_is_removed(tmp_path, data):
    out = tmp_path / "m.safetensors"
    litter = tmp_path / ".m.safetensors.state.pt.abc123.tmp"
    litter.write_bytes(b"half a state")
    run(out, data, steps=4)
    assert not litter.exists()


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"steps": 0}, "--steps"),
        ({"queries": 0}, "--queries"),
        ({"shots": 0}, "--shots"),
        ({"ways": 1}, "--ways"),
        ({"lr": -1.0}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"val_every": 0}, "--val-every"),
        ({"val_episodes": 0}, "--val-episodes"),
        ({"meta_batch": 0}, "--meta-batch"),
        ({"patience": -1}, "--patience"),
        ({"seed": -1}, "--seed"),
        ({"lr_step": -1}, "--lr-step"),
    ],
)
def test_impossible_settings_are_refused_naming_the_option(tmp_path, data, overrides, option):
    with pytest.raises(FewshotError, match=f"^{option} must be"):
        run(tmp_path / "m.safetensors", data, **overrides)
    assert list(tmp_path.iterdir()) == []


def test_check_accepts_the_defaults():
    TrainConfig().check()


@pytest.mark.parametrize("bad", ["dir", "/proc/version", "file-parent"])
def test_unwritable_out_is_refused_before_training(tmp_path, data, bad, monkeypatch):
    import fewshot.training as training

    target = {"dir": tmp_path, "/proc/version": "/proc/version", "file-parent": None}[bad]
    if target is None:
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "m.safetensors"
    monkeypatch.setattr(training, "_train_locked", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FewshotError, match="--out"):
        run(target, data)


@pytest.mark.parametrize("name", ["conv4", "resnet12"])
def test_encoders_refuse_images_their_pools_would_shrink_to_nothing(name):
    with pytest.raises(FewshotError, match="at least 16x16"):
        create_encoder(name, image_size=8)
    create_encoder(name, image_size=16, **({"channels": [2, 2, 2, 2]} if name == "resnet12" else {}))


def test_a_second_finetune_at_the_same_out_is_refused(tmp_path):
    from fewshot.encoders.conv4 import Conv4
    from fewshot.transfer.finetune import FinetuneConfig, finetune

    out = tmp_path / "ft.safetensors"
    data = images(3, 6, seed=0)
    with exclusive_lock(out, "this run"), pytest.raises(FewshotError, match="another fewshot run"):
        finetune(Conv4(hidden=4, image_size=28), data, FinetuneConfig(device="cpu"), out=out, progress=False)
    assert not out.exists()
