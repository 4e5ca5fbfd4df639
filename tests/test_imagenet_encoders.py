"""timm and torchvision architectures by name: name -> architecture -> preprocessing, weights
files, checkpoint round trips, greyscale input, intermediate layers, offline refusal.

Tiny random-weight models only (``pretrained none``, small image sizes): nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot.build import build_encoder
from fewshot.errors import FewshotError
from fewshot.preprocessing import Preprocessing

pytest.importorskip("timm", reason="timm encoders need timm (pip install 'fewshot[pretrained]')")
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_timm(**options):
    return build_encoder("timm:resnet18", options={"pretrained": "none", "image_size": 32, **options})


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network and empty caches: a test that would download fails instead."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FEWSHOT_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_timm_name_builds_the_architecture_with_its_preprocessing():
    source = tiny_timm()
    encoder = source.encoder
    assert source.name == "timm" and type(encoder.network).__name__ == "ResNet"
    assert encoder.embed_dim == 512 and encoder.input_size == (3, 32, 32)
    prep = Preprocessing.from_dict(encoder.preprocessing())
    # timm's own configuration for resnet18 (its default tag a1_in1k): bicubic, crop 0.95
    assert (prep.interpolation, prep.crop_pct, prep.resize) == ("bicubic", 0.95, "crop")
    assert prep.mean == pytest.approx((0.485, 0.456, 0.406)) and prep.normalize_in == "encoder"
    assert source.meta["untrained"] and encoder.config()["pretrained"] is None


def test_torchvision_name_builds_the_architecture_with_its_weights_transform():
    source = build_encoder("torchvision:mobilenet_v3_small", options={"pretrained": "none", "image_size": 64})
    encoder = source.encoder
    assert type(encoder.network).__name__ == "MobileNetV3"
    assert encoder.embed_dim == 1024  # the input of the removed last linear layer
    prep = Preprocessing.from_dict(encoder.preprocessing())
    assert (prep.interpolation, prep.crop_pct) == ("bilinear", 224 / 256)
    x = torch.rand(2, 3, 64, 64)
    assert encoder.encode(x).shape == (2, 1024)


def test_same_seed_same_random_weights():
    a, b = tiny_timm().encoder.eval(), tiny_timm().encoder.eval()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(a(x), b(x))


def test_preprocess_resizes_and_crops_as_timm_does():
    timm_data = pytest.importorskip("timm.data")
    encoder = tiny_timm().encoder
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    ours = encoder.preprocess(image)  # [0, 1]: this encoder normalises itself
    config = timm_data.resolve_data_config(model=encoder.network)
    config["input_size"] = (3, 32, 32)
    theirs = timm_data.create_transform(**config)(image)  # normalised
    mean, std = torch.tensor(config["mean"]).view(3, 1, 1), torch.tensor(config["std"]).view(3, 1, 1)
    torch.testing.assert_close((ours - mean) / std, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(encoder.input(ours[None])[0], theirs, atol=1e-5, rtol=0)


def test_greyscale_tensors_are_replicated_resized_and_normalised():
    encoder = tiny_timm().encoder.eval()
    grey = torch.rand(3, 1, 28, 28)  # Omniglot / Fashion-MNIST style
    rgb = torch.nn.functional.interpolate(grey.expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear")
    torch.testing.assert_close(encoder(grey), encoder(rgb))
    assert encoder.encode_batched(grey).shape == (3, 512)
    with pytest.raises(FewshotError, match="channels"):
        encoder(torch.rand(1, 2, 32, 32))


def test_intermediate_layer_features_are_pooled():
    encoder = tiny_timm(layer="layer2").encoder.eval()
    assert encoder.embed_dim == 128
    x = torch.rand(2, 3, 32, 32)
    z = encoder(x)
    full = encoder.network.layer2(
        encoder.network.layer1(
            encoder.network.maxpool(
                encoder.network.act1(encoder.network.bn1(encoder.network.conv1(encoder.input(x))))
            )
        )
    )
    torch.testing.assert_close(z, full.mean(dim=(2, 3)))
    tv = build_encoder("torchvision:resnet18", options={"pretrained": "none", "layer": "layer3"}).encoder
    assert tv.embed_dim == 256 and tv.encode(torch.rand(1, 3, 40, 40)).shape == (1, 256)
    with pytest.raises(FewshotError, match="layer='nope'.*layer1"):
        tiny_timm(layer="nope")


@pytest.mark.parametrize("spec", ["timm:resnet18@layer2", "torchvision:resnet18@layer2"])
def test_a_layer_is_named_in_the_encoder_spec_of_every_command(spec):
    by_spec = build_encoder(spec, options={"pretrained": "none", "image_size": 32}, seed=3).encoder
    by_option = build_encoder(
        spec.split("@")[0], options={"pretrained": "none", "image_size": 32, "layer": "layer2"}, seed=3
    ).encoder
    assert by_spec.config()["layer"] == "layer2" and by_spec.embed_dim == 128
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(by_spec.eval()(x), by_option.eval()(x))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("timm:resnet18@", "give NAME@LAYER"),
        ("timm:resnet18@nope", "layer='nope'"),
        ("conv4@layer2", "does not apply to the conv4 encoder"),
    ],
)
def test_a_bad_layer_in_the_spec_is_one_clear_error(spec, message):
    with pytest.raises(FewshotError, match=message):
        build_encoder(spec, options={"pretrained": "none"} if ":" in spec else None)


def test_weights_file_loads_and_checkpoint_round_trip_needs_no_download(tmp_path):
    from safetensors.torch import save_file

    from fewshot.checkpoints import learner_metadata, save_checkpoint
    from fewshot.learners.protonet import ProtoNet
    from fewshot.model_loading import load_learner

    trained = build_encoder("timm:resnet18", options={"pretrained": "none", "image_size": 32}, seed=5).encoder
    weights = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in trained.network.state_dict().items()}, str(weights))
    source = tiny_timm(pretrained=str(weights))
    encoder = source.encoder.eval()
    assert encoder.weights_from == str(weights) and not source.meta["untrained"]
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(encoder(x), trained.eval()(x))

    learner = ProtoNet(encoder)
    meta = {**learner_metadata("protonet", "timm", learner), "preprocessing": encoder.preprocessing()}
    path = save_checkpoint(tmp_path / "proto.safetensors", learner, meta)
    weights.unlink()  # the checkpoint alone must do: no weights file, no download
    loaded, meta = load_learner(path)
    assert meta["encoder_config"]["pretrained"] is None
    assert meta["encoder_config"]["pretrained_from"] == str(weights)
    torch.testing.assert_close(loaded.encoder(x), encoder(x))
    assert loaded.encoder.preprocessing() == encoder.preprocessing()


def test_a_file_for_another_architecture_is_one_clear_error(tmp_path):
    from safetensors.torch import save_file

    weights = tmp_path / "other.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3, 3, 3)}, str(weights))
    with pytest.raises(FewshotError, match="does not fit"):
        tiny_timm(pretrained=str(weights))
    with pytest.raises(FewshotError, match="no such weights file"):
        tiny_timm(pretrained=str(tmp_path / "missing.safetensors"))


def test_pth_files_are_read_without_unpickling(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(FewshotError, match="unreadable weights file"):
        tiny_timm(pretrained=str(path))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("timm:resnet50", "https://huggingface.co/timm/resnet50"),
        ("torchvision:resnet18", "download.pytorch.org/models/resnet18"),
    ],
)
def test_offline_without_weights_is_one_line_saying_where_to_put_them(spec, fragment):
    from fewshot.encoders.pretrained import WeightsUnavailableError

    with pytest.raises(WeightsUnavailableError) as err:
        build_encoder(spec)
    message = str(err.value)
    assert "\n" not in message and fragment in message and "--pretrained" in message


def test_unknown_architecture_is_refused():
    with pytest.raises(FewshotError, match="unknown timm architecture 'resnet5000'"):
        build_encoder("timm:resnet5000", options={"pretrained": "none"})
    with pytest.raises(FewshotError, match="unknown torchvision architecture"):
        build_encoder("torchvision:resnet5000", options={"pretrained": "none"})


def test_preprocessing_record_comes_from_the_encoder():
    from fewshot.transfer.sources import preprocessing_record

    source = tiny_timm()
    assert preprocessing_record(source) == source.encoder.preprocessing()


def test_old_preprocessing_records_still_read():
    old = {"image_size": 28, "channels": 1, "invert": True, "mean": None, "std": None, "resize": "torch"}
    prep = Preprocessing.from_dict(old)
    assert (prep.interpolation, prep.crop_pct, prep.normalize_in) == ("bilinear", None, "transform")
    assert Preprocessing.from_dict(prep.to_dict()) == prep


def test_records_without_the_new_fields_are_written_as_before():
    old = {"image_size": 28, "channels": 1, "invert": True, "mean": None, "std": None, "resize": "torch"}
    assert Preprocessing.from_dict(old).to_dict() == old


def test_fine_tuning_blocks_of_an_imagenet_encoder_are_its_stages():
    from fewshot.build import build_encoder
    from fewshot.transfer.strategies import encoder_blocks

    encoder = build_encoder("timm:resnet18", options={"pretrained": "none"}).encoder
    blocks = encoder_blocks(encoder)
    network = encoder.network
    stages = [network.layer1, network.layer2, network.layer3, network.layer4]
    assert blocks == [network.conv1, network.bn1, *stages]


def test_named_tensor_sets_load_at_most_native_size_for_encoders_that_resize():
    """An ImageNet encoder resizes each batch itself, so a named set is not materialised at
    the network's side (70,000 Fashion-MNIST images at 224 px would be 42 GB): digits come at
    their native 8 px and the encoder sees the same upsampled input batch by batch."""
    from fewshot.build import load_data, load_for_encoder

    source = tiny_timm(image_size=48)
    data = load_for_encoder(source, "digits", "test")
    assert tuple(data.data.shape[1:]) == (1, 8, 8)
    native = load_data("digits", "test", image_size=8)
    assert torch.equal(data.data, native.data) and torch.equal(data.labels, native.labels)
    encoder = source.encoder.eval()
    with torch.no_grad():
        z = encoder.encode_batched(data.data[:16], 8)
        direct = encoder.network(encoder.input(data.data[:16]))
    assert z.shape == (16, encoder.embed_dim)
    torch.testing.assert_close(z, direct, rtol=1e-4, atol=1e-4)
    conv4 = build_encoder(None)  # the shipped Conv-4 reads 28 px tensors: loaded at its side
    assert tuple(load_for_encoder(conv4, "digits", "test").data.shape[1:]) == (1, 28, 28)
