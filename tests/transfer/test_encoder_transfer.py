import pytest
import torch

from nnunet_mae.architectures import MAEPretrainingNetwork, ViTSegmentationNetwork
from nnunet_mae.transfer.encoder_transfer import TransferError, transfer_encoder_weights

TINY = dict(embed_dim=48, depth=4, num_heads=4, num_classes=3)


def test_encoder_values_equal_after_loading_and_decoder_stays_fresh():
    source = MAEPretrainingNetwork(input_channels=1, input_shape=(16, 24, 16), **TINY)
    target = ViTSegmentationNetwork(input_channels=1, input_shape=(16, 24, 16), **TINY)
    decoder_before = {k: v.clone() for k, v in target.decoder.state_dict().items()}
    report = transfer_encoder_weights(source.state_dict(), target)
    assert report.ok and not report.adapted
    src, tgt = source.state_dict(), target.state_dict()
    encoder_keys = [k for k in tgt if k.startswith("encoder.")]
    assert sorted(report.loaded) == sorted(encoder_keys)
    assert all(torch.equal(src[k], tgt[k]) for k in encoder_keys)
    assert all(torch.equal(v, target.decoder.state_dict()[k]) for k, v in decoder_before.items())
    assert any(k.startswith("mae_decoder.") for k in report.skipped)
    assert all(not k.startswith("encoder.") for k in report.skipped)


def test_position_embedding_is_resampled_for_another_patch():
    source = ViTSegmentationNetwork(input_channels=1, input_shape=(16, 24, 16), **TINY)
    target = ViTSegmentationNetwork(input_channels=1, input_shape=(32, 24, 16), **TINY)
    report = transfer_encoder_weights(source.state_dict(), target, source_grid=(2, 3, 2), target_grid=(4, 3, 2))
    assert report.ok and list(report.adapted) == ["encoder.pos_embed"]
    assert "2x3x2" not in report.format()  # shapes are printed as tensor shapes, grids as tuples
    assert target.encoder.pos_embed.shape == (1, 24, 48)
    # the first and last grid positions along the resampled axis stay close to the source corners
    src = source.encoder.pos_embed.view(2, 3, 2, 48)
    tgt = target.encoder.pos_embed.detach().view(4, 3, 2, 48)
    assert torch.allclose(tgt[0], src[0], atol=0.5 * (src[1] - src[0]).abs().max().item() + 1e-6)


def test_one_channel_stem_is_repeated_over_channels_and_divided():
    source = ViTSegmentationNetwork(input_channels=1, input_shape=(16, 16, 16), **TINY)
    target = ViTSegmentationNetwork(input_channels=4, input_shape=(16, 16, 16), **TINY)
    report = transfer_encoder_weights(source.state_dict(), target)
    assert "encoder.patch_embed.weight" in report.adapted
    w_src, w_tgt = source.encoder.patch_embed.weight, target.encoder.patch_embed.weight
    assert torch.allclose(w_tgt, w_src.repeat(1, 4, 1, 1, 1) / 4)
    x = torch.randn(1, 1, 16, 16, 16)  # same image in every channel -> same tokens
    assert torch.allclose(target.encoder.patch_embed(x.repeat(1, 4, 1, 1, 1)), source.encoder.patch_embed(x), atol=1e-5)


def test_incompatible_encoders_are_reported_and_raise():
    source = ViTSegmentationNetwork(input_channels=2, input_shape=(16, 16, 16), **TINY)
    target = ViTSegmentationNetwork(input_channels=3, input_shape=(16, 16, 16), **TINY)
    report = transfer_encoder_weights(source.state_dict(), target, load=False)
    assert "encoder.patch_embed.weight" in report.incompatible
    with pytest.raises(TransferError, match="cannot be adapted"):
        report.raise_if_incomplete("pretrained.pth")
    bigger = ViTSegmentationNetwork(input_channels=2, input_shape=(16, 16, 16), embed_dim=48, depth=6, num_heads=4,
                                    num_classes=3)
    report = transfer_encoder_weights(source.state_dict(), bigger, load=False)
    assert "encoder.blocks.5.attn.qkv.weight" in report.missing and not report.ok


def test_load_false_changes_nothing():
    source = ViTSegmentationNetwork(input_channels=1, input_shape=(16, 16, 16), **TINY)
    target = ViTSegmentationNetwork(input_channels=1, input_shape=(16, 16, 16), **TINY)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    assert transfer_encoder_weights(source.state_dict(), target, load=False).ok
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


@pytest.mark.parametrize("source_channels", [1, 2])
def test_cascade_stem_loads_the_images_and_zeroes_the_segmentation_channels(source_channels):
    source = ViTSegmentationNetwork(input_channels=source_channels, input_shape=(16, 16, 16), **TINY)
    target = ViTSegmentationNetwork(input_channels=2 + 3, input_shape=(16, 16, 16), **TINY)  # 2 images + 3 labels
    report = transfer_encoder_weights(source.state_dict(), target, image_channels=2)
    assert report.ok and "cascade" in report.adapted["encoder.patch_embed.weight"]
    images = torch.randn(1, 2, 16, 16, 16)
    segmentation = torch.rand(1, 3, 16, 16, 16)
    source_input = images if source_channels == 2 else images.mean(1, keepdim=True)
    torch.testing.assert_close(target.encoder.patch_embed(torch.cat([images, segmentation], 1)),
                               source.encoder.patch_embed(source_input), atol=1e-5, rtol=1e-5)
    if source_channels == 2:  # without image_channels, 2 pre-training channels do not map onto 5 inputs
        report = transfer_encoder_weights(source.state_dict(), target, load=False)
        assert "encoder.patch_embed.weight" in report.incompatible
