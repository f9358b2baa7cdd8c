"""Static network construction, as nnUNetv2_predict does it: from the trainer class and the plans only."""

import inspect

import pytest
import torch
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_mae.architectures import MAEPretrainingNetwork, ViTSegmentationNetwork
from nnunet_mae.training.trainers import (nnUNetTrainerMAEFinetune, nnUNetTrainerMAEPretrain, nnUNetTrainerViT,
                                          nnUNetTrainerViT_patchdec, nnUNetTrainerViT_token16)


def configuration(patch_size):
    return ConfigurationManager({"patch_size": list(patch_size), "architecture": {}, "batch_size": 2})


def test_build_rounds_odd_non_cubic_patches_to_the_token_grid():
    net = nnUNetTrainerViT.build_network_architecture(None, configuration((37, 53, 41)), 2, 3, False)
    assert isinstance(net, ViTSegmentationNetwork)
    assert net.encoder.input_shape == (40, 56, 40)
    assert net.encoder.patch_embed.in_channels == 2
    assert net.decoder.seg_layers.out_channels == 3
    net16 = nnUNetTrainerViT_token16.build_network_architecture(None, configuration((40, 56, 40)), 1, 3, False)
    assert net16.encoder.input_shape == (48, 64, 48) and net16.encoder.grid == (3, 4, 3)


def test_build_2d_and_decoder_variant():
    net = nnUNetTrainerViT_patchdec.build_network_architecture(None, configuration((56, 40)), 1, 3, False)
    assert net.encoder.grid == (7, 5)
    assert net(torch.randn(1, 1, 56, 40)).shape == (1, 3, 56, 40)


def test_token_larger_than_patch_axis_is_refused():
    with pytest.raises(ValueError, match="fewer than the token size"):
        nnUNetTrainerViT_token16.build_network_architecture(None, configuration((12, 64, 64)), 1, 3, False)


def test_predict_style_signature():
    params = inspect.signature(nnUNetTrainerViT.build_network_architecture).parameters
    assert list(params)[:5] == ["plans_manager", "configuration_manager", "num_input_channels",
                                "num_output_channels", "enable_deep_supervision"]


def test_pretraining_checkpoint_loads_with_nnunet_stock_loader(tmp_path):
    """`nnUNetv2_train -tr nnUNetTrainerViT -pretrained_weights <MAE checkpoint>` uses this loader."""
    cm = configuration((16, 24, 16))
    mae = nnUNetTrainerMAEPretrain.build_network_architecture(None, cm, 1, 3, False)
    assert isinstance(mae, MAEPretrainingNetwork)
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": mae.state_dict()}, path)
    vit = nnUNetTrainerViT.build_network_architecture(None, cm, 1, 3, False)
    load_pretrained_weights(vit, str(path))
    assert torch.equal(vit.encoder.blocks[0].attn.qkv.weight, mae.encoder.blocks[0].attn.qkv.weight)
    finetune = nnUNetTrainerMAEFinetune.build_network_architecture(None, cm, 1, 3, False)
    assert finetune.state_dict().keys() == vit.state_dict().keys()


def test_trainer_rounds_the_planned_patch_for_its_data_loader_too(tmp_path, monkeypatch):
    """The loader crops configuration_manager.patch_size: it must be the rounded patch the network is built for
    (PlansManager caches configurations, so the trainer must not ask it again after changing the plans)."""
    from tests.training.tiny_trainer import tiny_trainer

    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path, monkeypatch, patch_size=(20, 28, 28))
    assert list(trainer.configuration_manager.patch_size) == [24, 32, 32]
    assert trainer.plans_manager.plans["configurations"]["3d_fullres"]["patch_size"] == [24, 32, 32]  # plans.json
    cascade = tiny_trainer(nnUNetTrainerMAEFinetune, tmp_path, monkeypatch, configuration="3d_cascade_fullres",
                           patch_size=(20, 28, 28))
    assert list(cascade.configuration_manager.patch_size) == [24, 32, 32]
    assert cascade.configuration_manager.previous_stage_name == "3d_lowres"
