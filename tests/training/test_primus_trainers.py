"""The PrimusV3 backbone of the trainers: nnU-Net's own network, transfer from the MAE network, layer decay."""

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.primus.primus_trainers import nnUNet_PrimusV3S_Trainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_mae.architectures.encoder_layout import encoder_layout
from nnunet_mae.architectures.tokens import token_grid
from nnunet_mae.training.param_groups import build_param_groups
from nnunet_mae.training.trainers import (nnUNetTrainerGMIMPretrain, nnUNetTrainerMAEFinetune_PrimusV3S,
                                          nnUNetTrainerMAEPretrain_PrimusV3S)
from nnunet_mae.transfer.encoder_transfer import transfer_encoder_weights

PATCH = (16, 24, 16)


def configuration(patch_size=PATCH):
    return ConfigurationManager({"patch_size": list(patch_size), "architecture": {}, "batch_size": 2})


def build(trainer, channels=1, patch=PATCH):
    torch.manual_seed(len(patch) + channels)
    return trainer.build_network_architecture(None, configuration(patch), channels, 3, False)


def test_fine_tuning_network_is_nnunets_primusv3s():
    ours, theirs = build(nnUNetTrainerMAEFinetune_PrimusV3S), build(nnUNet_PrimusV3S_Trainer)
    assert type(ours) is type(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict())  # a fine-tuned checkpoint predicts with nnUNet_PrimusV3S_Trainer
    drop = [[getattr(b.drop_path1, "drop_prob", 0.0) for b in n.eva.blocks] for n in (ours, theirs)]
    assert drop[0] == drop[1] and max(drop[0]) == pytest.approx(0.2)  # PrimusV3's drop path


def test_mae_encoder_transfers_completely_and_only_the_encoder():
    source, target = build(nnUNetTrainerMAEPretrain_PrimusV3S), build(nnUNetTrainerMAEFinetune_PrimusV3S)
    head = target.up_projection.state_dict()
    report = transfer_encoder_weights(source.state_dict(), target)
    assert report.ok and not report.adapted
    encoder_keys = [k for k in target.state_dict() if k.startswith(("down_projection.", "eva."))]
    assert sorted(report.loaded) == sorted(encoder_keys)
    assert {k.split(".")[0] for k in report.skipped} == {"up_projection", "mae_decoder", "mask_token"}
    for key in encoder_keys:
        assert torch.equal(target.state_dict()[key], source.state_dict()[key])
    assert all(torch.equal(v, target.up_projection.state_dict()[k]) for k, v in head.items())  # fresh head kept


def test_stem_input_keys_are_exactly_the_tensors_that_depend_on_the_image_channels():
    one, two = build(nnUNetTrainerMAEFinetune_PrimusV3S, 1), build(nnUNetTrainerMAEFinetune_PrimusV3S, 2)
    depends = {k for k, v in one.state_dict().items() if v.shape != two.state_dict()[k].shape}
    assert set(encoder_layout(two).stem_input_keys) == depends
    report = transfer_encoder_weights(build(nnUNetTrainerMAEPretrain_PrimusV3S, 1).state_dict(), two)
    assert report.ok and set(report.adapted) == depends
    key = "down_projection.stem.blocks.0.skip.0.conv.weight"
    assert torch.allclose(two.state_dict()[key].sum(1, keepdim=True),
                          build(nnUNetTrainerMAEPretrain_PrimusV3S, 1).state_dict()[key])


def test_position_embedding_is_resampled_for_another_patch():
    source = build(nnUNetTrainerMAEPretrain_PrimusV3S, patch=PATCH)
    target = build(nnUNetTrainerMAEFinetune_PrimusV3S, patch=(24, 24, 24))
    report = transfer_encoder_weights(source.state_dict(), target, source_grid=token_grid(PATCH, (8, 8, 8)),
                                      target_grid=(3, 3, 3))
    assert report.ok and list(report.adapted) == ["eva.pos_embed"]


def test_layer_decay_runs_over_the_eva_blocks():
    net = build(nnUNetTrainerMAEFinetune_PrimusV3S)
    depth = len(net.eva.blocks)
    groups = build_param_groups(net, weight_decay=0.05, layer_decay=0.75)

    def scale(p):
        return next(g["lr_scale"] for g in groups if any(q is p for q in g["params"]))

    assert all(scale(p) == 1.0 for p in net.up_projection.parameters())
    assert scale(net.eva.blocks[-1].mlp.fc1_g.weight) == pytest.approx(0.75)
    assert scale(net.eva.blocks[0].mlp.fc1_g.weight) == pytest.approx(0.75 ** depth)
    assert scale(net.eva.pos_embed) == scale(net.down_projection.stem.blocks[0].conv1.conv.weight) == pytest.approx(
        0.75 ** (depth + 1))


def test_2d_configuration_is_refused_with_the_vit_trainers_named():
    with pytest.raises(ValueError, match="3D only.*nnUNetTrainerViT"):
        nnUNetTrainerMAEFinetune_PrimusV3S.build_network_architecture(None, configuration((56, 40)), 1, 3, False)


def test_gmim_says_it_is_vit_only():
    class GMIMOnPrimus(nnUNetTrainerGMIMPretrain):
        backbone = "primusv3"

    with pytest.raises(ValueError, match="GMIM pre-trains the vit backbone only.*nnUNetTrainerMAEPretrain_PrimusV3S"):
        GMIMOnPrimus.build_network_architecture(None, configuration(), 1, 3, False)


@pytest.mark.parametrize("size", ["B", "M", "L"])
def test_larger_primus_trainers_build_nnunets_networks_and_pair_up(size):
    from dynamic_network_architectures.architectures import primus

    from nnunet_mae.training import trainers

    pretrain = getattr(trainers, f"nnUNetTrainerMAEPretrain_PrimusV3{size}")
    finetune = getattr(trainers, f"nnUNetTrainerMAEFinetune_PrimusV3{size}")
    assert pretrain.finetune_trainer_name == finetune.__name__ and finetune.pretrain_trainer_name == pretrain.__name__
    assert pretrain.drop_path_rate == 0.0 and finetune.drop_path_rate == 0.2
    kwargs = finetune.network_kwargs(configuration(), 1, 3)
    assert kwargs["primus_size"] == size and kwargs["token_size"] == (8, 8, 8)
    from nnunet_mae.backbones.primusv3 import SIZES
    assert SIZES[size][0] is getattr(primus, f"PrimusV3{size}")
