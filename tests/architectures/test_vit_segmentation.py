import pytest
import torch

from nnunet_mae.architectures import MAEPretrainingNetwork, ViTSegmentationNetwork

TINY = dict(embed_dim=48, depth=4, num_heads=4)


@pytest.mark.parametrize("shape,channels,token,decoder", [
    ((40, 56, 40), 1, 8, "unetr"),
    ((24, 40, 16), 3, 8, "unetr"),
    ((32, 48, 32), 2, 16, "unetr"),
    ((16, 64, 64), 1, (8, 16, 16), "unetr"),
    ((56, 40), 1, 8, "unetr"),
    ((40, 56, 40), 4, 8, "patch"),
    ((48, 32), 2, 16, "patch"),
])
def test_output_shape(shape, channels, token, decoder):
    net = ViTSegmentationNetwork(input_channels=channels, num_classes=3, input_shape=shape, token_size=token,
                                 decoder=decoder, **TINY)
    out = net(torch.randn(2, channels, *shape))
    assert out.shape == (2, 3, *shape)


@pytest.mark.parametrize("decoder", ["unetr", "patch"])
def test_every_trainable_parameter_gets_a_gradient(decoder):
    net = ViTSegmentationNetwork(input_channels=2, num_classes=3, input_shape=(16, 24, 16), decoder=decoder,
                                 drop_path_rate=0.1, **TINY)
    net(torch.randn(2, 2, 16, 24, 16)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert missing == []


def test_other_input_size_uses_resampled_position_embedding():
    net = ViTSegmentationNetwork(input_channels=1, num_classes=2, input_shape=(16, 16, 16), **TINY).eval()
    assert net(torch.randn(1, 1, 32, 16, 24)).shape == (1, 2, 32, 16, 24)


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ViTSegmentationNetwork(input_channels=1, num_classes=2, input_shape=(16, 16, 16), embed_dim=50, depth=2,
                               num_heads=4)
    with pytest.raises(ValueError, match="multiple of the token size"):
        ViTSegmentationNetwork(input_channels=1, num_classes=2, input_shape=(20, 16, 16), **TINY)
    with pytest.raises(ValueError, match="power of two"):
        ViTSegmentationNetwork(input_channels=1, num_classes=2, input_shape=(24, 24, 24), token_size=12, **TINY)
    with pytest.raises(ValueError, match="decoder="):
        ViTSegmentationNetwork(input_channels=1, num_classes=2, input_shape=(16, 16, 16), decoder="fpn", **TINY)


def test_mae_encoder_sees_only_visible_tokens_and_segmentation_decoder_is_frozen():
    net = MAEPretrainingNetwork(input_channels=2, num_classes=3, input_shape=(16, 24, 16), mae_decoder_dim=32,
                                mae_decoder_heads=4, **TINY)
    seen = []
    net.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    num_tokens = 2 * 3 * 2
    ids = torch.stack([torch.randperm(num_tokens) for _ in range(2)])
    ids_restore = torch.argsort(ids, dim=1)
    pred = net(torch.randn(2, 2, 16, 24, 16), ids[:, :3], ids_restore)
    assert seen == [torch.Size([2, 3, 48])]
    assert pred.shape == (2, num_tokens, 8 * 8 * 8 * 2)
    pred.square().mean().backward()
    assert all(not p.requires_grad for p in net.decoder.parameters())
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert all(n.startswith(("encoder.", "mae_decoder.")) for n in trainable)
    assert all(p.grad is not None for n, p in net.named_parameters() if p.requires_grad)


def test_mae_network_holds_every_key_of_the_segmentation_network():
    kwargs = dict(input_channels=1, num_classes=3, input_shape=(16, 16, 16), **TINY)
    seg = ViTSegmentationNetwork(**kwargs).state_dict()
    mae = MAEPretrainingNetwork(**kwargs).state_dict()
    assert all(k in mae and mae[k].shape == v.shape for k, v in seg.items())


@pytest.mark.parametrize("ndim", [2, 3])
def test_onednn_inference_conv_matches_the_reference_convolution(ndim):
    from nnunet_mae.architectures.decoders import Conv2d, Conv3d

    conv = (Conv3d if ndim == 3 else Conv2d)(5, 7, 3, padding=1)
    x = torch.randn(1, 5, *([12] * ndim))
    reference = (torch.nn.functional.conv3d if ndim == 3 else torch.nn.functional.conv2d)(
        x, conv.weight, conv.bias, padding=1)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), reference, atol=1e-5, rtol=1e-5)
    out = conv(x)  # with autograd: the normal path, gradients flow
    out.sum().backward()
    assert conv.weight.grad is not None
    assert isinstance(conv, torch.nn.Conv3d if ndim == 3 else torch.nn.Conv2d)  # same state-dict keys as before
