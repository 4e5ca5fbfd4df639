"""Contract tests generated from the encoder registry: every registered encoder is checked."""

from __future__ import annotations

import json

import pytest
import torch

from fewshot.encoders import ENCODERS, create_encoder
from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError, ModelUnavailableError

# Small constructor arguments so that the contract runs in milliseconds; encoders not listed
# are built with their defaults.
SMALL = {
    "conv4": {"in_channels": 1, "hidden": 8, "image_size": 28},
    "resnet12": {"in_channels": 3, "channels": [4, 6, 8, 10], "image_size": 32},
    "identity": {"embed_dim": 12},
    "clip": {"model": "micro-clip", "pretrained": None, "device": "cpu"},  # random weights
    # ImageNet networks: random weights at a small side (no download, no weights package)
    "timm": {"model": "resnet18", "pretrained": None, "image_size": 32},
    "torchvision": {"model": "resnet18", "pretrained": None, "image_size": 32},
    **{f"efficientnet-lite{v}": {"pretrained": None, "image_size": 32} for v in range(3)},
}


def build(name: str) -> Encoder:
    try:
        return create_encoder(name, **SMALL.get(name, {}))
    except (ModelUnavailableError, ImportError) as err:  # e.g. clip without local weights
        pytest.skip(f"{name}: cannot be built offline ({err})")


def inputs_for(encoder: Encoder, n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if encoder.input_size is None:
        return torch.randn(n, encoder.embed_dim, generator=g)
    return torch.rand(n, *encoder.input_size, generator=g)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encode_shape(name):
    encoder = build(name).eval()
    x = inputs_for(encoder)
    z = encoder.encode(x)
    assert z.shape == (3, encoder.embed_dim)
    assert z.dtype.is_floating_point
    assert torch.isfinite(z).all()
    encoder.train()
    batched = encoder.encode_batched(x, batch_size=2)
    torch.testing.assert_close(batched, z.float(), rtol=1e-4, atol=1e-5)
    # encode_batched leaves the encoder as it found it: training mode and standard layout
    assert encoder.training
    assert all(p.is_contiguous() for p in encoder.parameters())


@pytest.mark.parametrize("name", ENCODERS.names())
def test_config_round_trip_rebuilds_same_architecture(name):
    encoder = build(name).eval()
    config = json.loads(json.dumps(encoder.config()))  # must be JSON-able
    rebuilt = create_encoder(name, **config).eval()
    assert type(rebuilt) is type(encoder)
    assert rebuilt.config() == config
    assert rebuilt.embed_dim == encoder.embed_dim
    original = {k: v.shape for k, v in encoder.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == original
    rebuilt.load_state_dict(encoder.state_dict())
    x = inputs_for(encoder)
    torch.testing.assert_close(rebuilt.encode(x), encoder.encode(x))


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(FewshotError, match="unknown encoder 'nope'.*conv4"):
        create_encoder("nope")


def test_resnet12_standard_architecture():
    encoder = create_encoder("resnet12", in_channels=3, image_size=84)
    assert encoder.embed_dim == 640
    assert len(encoder.blocks) == 4
    convs = [m for m in encoder.blocks[0].body if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3
    assert [b.body[0].out_channels for b in encoder.blocks] == [64, 160, 320, 640]
    leaky = [m for m in encoder.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.1 for m in leaky)
    # about 12.4M parameters, as reported for ResNet-12 (64-160-320-640)
    assert 12.0e6 < sum(p.numel() for p in encoder.parameters()) < 12.8e6


def test_resnet12_halves_resolution_per_block_and_pools_globally():
    encoder = create_encoder("resnet12", in_channels=1, channels=[4, 4, 4, 8], image_size=28).eval()
    features = encoder.blocks(torch.rand(2, 1, 28, 28))
    assert features.shape == (2, 8, 1, 1)
    assert encoder.encode(torch.rand(2, 1, 84, 84)).shape == (2, 8)  # any input side works


def test_resnet12_rejects_wrong_channel_list():
    with pytest.raises(ValueError, match="four"):
        create_encoder("resnet12", channels=[8, 8])
