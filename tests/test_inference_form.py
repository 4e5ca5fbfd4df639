"""The inference form of an encoder computes the same function, faster, and leaves the original alone."""

from __future__ import annotations

import torch
from torch import nn

from fewshot.encoders import create_encoder
from fewshot.encoders.inference import MAX_BATCH, inference_form, probe_batch_size


def with_running_stats(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters, then eval mode."""
    g = torch.Generator().manual_seed(seed)
    for module in encoder.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return encoder.eval()


def count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def test_conv4_form_folds_batchnorm_and_keeps_outputs():
    torch.manual_seed(0)
    encoder = with_running_stats(create_encoder("conv4"))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    form = inference_form(encoder)
    assert count(encoder, nn.BatchNorm2d) == 4  # the original is untouched
    assert count(form, nn.BatchNorm2d) == 0
    # every activation now follows its max-pool
    for block in form.blocks:
        assert [type(m) for m in block] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU]
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(form(x), encoder(x), rtol=1e-5, atol=1e-5)
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_resnet12_form_folds_every_batchnorm():
    torch.manual_seed(0)
    encoder = with_running_stats(
        create_encoder("resnet12", in_channels=1, channels=(8, 8, 16, 16), image_size=28)
    )
    form = inference_form(encoder)
    assert count(encoder, nn.BatchNorm2d) == 16
    assert count(form, nn.BatchNorm2d) == 0
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(form(x), encoder(x), rtol=1e-5, atol=1e-5)


def test_activation_moved_after_max_pool_is_exact():
    layers = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2)).eval()
    form = inference_form(layers)
    assert [type(m) for m in form] == [nn.MaxPool2d, nn.LeakyReLU]
    x = torch.randn(3, 4, 8, 8)
    assert torch.equal(form(x), layers(x))


def test_batchnorm_without_running_stats_is_not_folded():
    layers = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    form = inference_form(layers)
    assert form is layers


def test_nothing_to_rewrite_returns_the_encoder_itself():
    encoder = create_encoder("identity", embed_dim=5)
    assert inference_form(encoder) is encoder


def test_probe_batch_size_from_largest_activation():
    encoder = create_encoder("conv4").eval()
    # the first block's conv output is 64 x 28 x 28 float32 = 200,704 bytes per image
    assert probe_batch_size(encoder, torch.rand(1, 1, 28, 28), target_bytes=8 << 20) == 32
    assert probe_batch_size(encoder, torch.rand(1, 1, 28, 28), target_bytes=100) == 1
    assert probe_batch_size(nn.Identity(), torch.rand(1, 3), target_bytes=8 << 20) == MAX_BATCH


def test_encode_batched_uses_the_form_and_restores_the_encoder():
    torch.manual_seed(0)
    encoder = with_running_stats(create_encoder("conv4")).train()
    x = torch.rand(70, 1, 28, 28)
    z = encoder.encode_batched(x)  # default batch size: probed (32 here), so three batches
    assert encoder.training
    assert count(encoder, nn.BatchNorm2d) == 4
    encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(z, encoder(x), rtol=1e-5, atol=1e-5)


def test_encode_batched_progress_bar_counts_images(capsys):
    encoder = create_encoder("conv4")
    encoder.encode_batched(torch.rand(40, 1, 28, 28), batch_size=16, progress=True)
    err = capsys.readouterr().err
    assert "embed" in err and "/40" in err  # a bar over the 40 images
    encoder.encode_batched(torch.rand(40, 1, 28, 28), batch_size=16)
    assert capsys.readouterr().err == ""


def test_cpu_batch_has_a_floor_for_large_inputs():
    from fewshot.encoders.inference import MIN_CPU_BATCH, cpu_batch_size

    big = nn.Conv2d(3, 64, 3, padding=1)  # (1, 64, 224, 224) float32 = 12.8 MB: the probe says 1
    sample = torch.rand(1, 3, 224, 224)
    assert probe_batch_size(big, sample) == 1 and cpu_batch_size(big, sample) == MIN_CPU_BATCH
    assert cpu_batch_size(nn.Identity(), torch.rand(1, 3)) == MAX_BATCH
