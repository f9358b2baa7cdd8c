"""The checkpoint metadata: round trip through a checkpoint dict, and the compatibility check's refusals."""

import pytest

from nnunet_mae.transfer.encoder_transfer import TransferError
from nnunet_mae.transfer.metadata import TransferMetadata

VIT_S = {"embed_dim": 384, "depth": 12, "num_heads": 6, "token_size": (8, 8, 8), "input_shape": (40, 56, 40)}
SETTINGS = ("embed_dim", "depth", "num_heads", "token_size")


def metadata(**changes) -> TransferMetadata:
    values = dict(trainer_name="nnUNetTrainerMAEPretrain", network_kwargs=dict(VIT_S), token_grid=(5, 7, 5),
                  token_order="C", patch_size=[40, 56, 40], spacing=[1.0, 1.0, 1.0],
                  normalization_schemes=["ZScoreNormalization"], use_mask_for_norm=[False], channel_names=["MRI"],
                  input_channels=1, dataset_name="Dataset004_Hippocampus", configuration="3d_fullres")
    return TransferMetadata(**{**values, **changes})


def test_round_trip_keeps_every_entry_including_unknown_newer_ones():
    written = {**metadata().to_dict(), "written_by_a_newer_version": 3}
    read = TransferMetadata.from_dict(written)
    assert read.to_dict() == written and read.backbone == "vit" and read.token_grid == (5, 7, 5)


def test_checkpoint_without_metadata_or_with_an_incomplete_one_is_refused():
    with pytest.raises(TransferError, match="carries no 'nnunet_mae' metadata.*Pre-train with X"):
        TransferMetadata.from_checkpoint({"network_weights": {}}, "f.pth", "X")
    partial = metadata().to_dict()
    del partial["token_grid"]
    with pytest.raises(TransferError, match="lacks token_grid"):
        TransferMetadata.from_checkpoint({"nnunet_mae": partial}, "f.pth", "X")


def test_old_checkpoints_without_backbone_are_vits():
    old = metadata().to_dict()
    del old["backbone"]
    TransferMetadata.from_dict(old).check_fits(metadata(), SETTINGS, "f.pth", "cmd")  # fits a ViT: no error
    with pytest.raises(TransferError, match="holds a vit encoder.*builds a primusv3 network"):
        TransferMetadata.from_dict(old).check_fits(metadata(backbone="primusv3"), SETTINGS, "f.pth", "cmd")


def test_other_size_and_other_dimensionality_are_refused_with_the_fix():
    tiny = metadata(network_kwargs={**VIT_S, "embed_dim": 192, "num_heads": 3})
    with pytest.raises(TransferError, match="with embed_dim 192, num_heads 3;.*builds embed_dim 384, num_heads 6"):
        tiny.check_fits(metadata(), SETTINGS, "f.pth", "cmd")
    flat = metadata(patch_size=[56, 40], configuration="2d", network_kwargs={**VIT_S, "input_shape": (56, 40)})
    with pytest.raises(TransferError, match="holds a 2D encoder.*needs a 3D one.*`nnUNetv2_train 4 3d_fullres`"):
        flat.check_fits(metadata(), SETTINGS, "f.pth", "nnUNetv2_train 4 3d_fullres")
    metadata(patch_size=[48, 48, 48]).check_fits(metadata(), SETTINGS, "f.pth", "cmd")  # another patch: resampled
