"""Checkpoints: round trip, and truncated, foreign, tampered or pickled files refused clearly."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

from fewshot.checkpoints import load_learner, read_checkpoint, save_checkpoint, weights_digest
from fewshot.errors import CheckpointError
from fewshot.learners.protonet import ProtoNet
from fewshot.preprocessing import Preprocessing, preprocessing_from_metadata


def rewrite_metadata(src, dst, edit):
    """Copy a safetensors file with its JSON header edited by `edit(header) -> header`."""
    payload = src.read_bytes()
    (length,) = struct.unpack("<Q", payload[:8])
    header = edit(json.loads(payload[8 : 8 + length]))
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + payload[8 + length :])
    return dst


def edit_fewshot_meta(change):
    def edit(header):
        meta = json.loads(header["__metadata__"]["fewshot"])
        change(meta)
        header["__metadata__"]["fewshot"] = json.dumps(meta)
        return header

    return edit


def test_round_trip(tiny_checkpoint):
    learner, meta = load_learner(tiny_checkpoint)
    assert isinstance(learner, ProtoNet) and meta["encoder"] == "conv4"
    assert not learner.training
    tensors, _ = read_checkpoint(tiny_checkpoint)
    for key, value in learner.state_dict().items():
        torch.testing.assert_close(value, tensors[key], rtol=0, atol=0)
    assert meta["weights_sha256"] == weights_digest(tensors)
    assert preprocessing_from_metadata(meta) == Preprocessing(28, 1, True)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_learner(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 100, 0.5, 0.99])
def test_truncated_file(tmp_path, tiny_checkpoint, keep):
    payload = tiny_checkpoint.read_bytes()
    size = int(len(payload) * keep) if isinstance(keep, float) else keep
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(payload[:size])
    with pytest.raises(CheckpointError, match="not a readable fewshot checkpoint"):
        load_learner(bad)


def test_random_bytes(tmp_path):
    bad = tmp_path / "noise.safetensors"
    bad.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).byte().numpy())
    with pytest.raises(CheckpointError):
        load_learner(bad)


def test_torch_save_file_is_refused(tmp_path):
    bad = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(CheckpointError, match="pickle or torch.save"):
        load_learner(bad)


class _Payload:
    """Unpickling this object would create the marker file: the attack a checkpoint must not run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_malicious_pickle_is_never_unpickled(tmp_path, how):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.safetensors"
    if how == "pickle":
        bad.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    else:
        torch.save({"state": _Payload(marker)}, bad)
    # sanity: the payload does run when unpickled, so the test below can fail
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()
    with pytest.raises(CheckpointError):
        load_learner(bad)
    assert not marker.exists()


def test_foreign_safetensors_without_our_metadata(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(bad), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a fewshot checkpoint"):
        load_learner(bad)


def test_metadata_not_json(tmp_path, tiny_checkpoint):
    def edit(header):
        header["__metadata__"]["fewshot"] = "{not json"
        return header

    bad = rewrite_metadata(tiny_checkpoint, tmp_path / "x.safetensors", edit)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_learner(bad)


def test_tampered_architecture_does_not_match_weights(tmp_path, tiny_checkpoint):
    bad = rewrite_metadata(
        tiny_checkpoint,
        tmp_path / "x.safetensors",
        edit_fewshot_meta(lambda m: m["encoder_config"].update(hidden=16)),
    )
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_learner(bad)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(encoder="no-such-encoder"),
        lambda m: m.update(learner="no-such-learner"),
        lambda m: m["encoder_config"].update(bogus=1),
        lambda m: m.pop("learner"),
        lambda m: m.update(version=99),
    ],
)
def test_tampered_metadata(tmp_path, tiny_checkpoint, change):
    bad = rewrite_metadata(tiny_checkpoint, tmp_path / "x.safetensors", edit_fewshot_meta(change))
    with pytest.raises(CheckpointError):
        load_learner(bad)


def test_tampered_weights_fail_the_digest(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tiny_checkpoint))
    _, meta = read_checkpoint(tiny_checkpoint)
    key = next(k for k in tensors if k.endswith("weight"))
    tensors[key] = tensors[key] + 1
    bad = tmp_path / "x.safetensors"
    save_file(tensors, str(bad), metadata={"fewshot": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="digest"):
        load_learner(bad)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, tiny_checkpoint):
    learner, meta = load_learner(tiny_checkpoint)
    out = tmp_path / "copy.safetensors"
    save_checkpoint(out, learner, {k: v for k, v in meta.items() if k != "weights_sha256"})
    assert [p.name for p in tmp_path.iterdir()] == ["copy.safetensors"]
    assert load_learner(out)[1]["weights_sha256"] == meta["weights_sha256"]


def test_old_omniglot_checkpoint_without_preprocessing_record():
    meta = {"dataset": {"dataset": "omniglot", "image_size": 28}, "encoder_config": {"in_channels": 1}}
    assert preprocessing_from_metadata(meta) == Preprocessing(28, 1, invert=True)
    with pytest.raises(CheckpointError, match="prepare images"):
        preprocessing_from_metadata({"dataset": {"dataset": "folder"}})
