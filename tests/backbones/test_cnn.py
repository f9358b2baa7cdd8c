"""MAE for nnU-Net's own CNN (backbones/cnn.py) on the plans nnU-Net's planners write for the synthetic dataset 990:
nnUNetPlans (PlainConvUNet) and the ResEnc M and L presets (ResidualEncoderUNet).

The networks are nnU-Net's; a pre-training checkpoint loads through nnU-Net's own `maybe_load_checkpoint`
(`-pretrained_weights`) into nnU-Net's own `nnUNetTrainer`; the masking and the loss are nnssl's."""

from __future__ import annotations

import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.run.run_training import maybe_load_checkpoint
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_mae.backbones.cnn import CNN, bottleneck_stride
from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
from nnunet_mae.training.trainers import (nnUNetTrainerMAEFinetune, nnUNetTrainerMAEFinetune_CNN,
                                          nnUNetTrainerMAEPretrain, nnUNetTrainerMAEPretrain_CNN)
from nnunet_mae.transfer.checkpoint_io import safe_torch_load
from nnunet_mae.transfer.encoder_transfer import TransferError
from nnunet_mae.transfer.locate import PRETRAINED_ENV
from tests.cli_helpers import run
from tests.conftest import DATASET, DATASET_ID

PLANS = ("nnUNetPlans", "nnUNetResEncUNetMPlans", "nnUNetResEncUNetLPlans")
NETWORKS = {"nnUNetPlans": "PlainConvUNet", "nnUNetResEncUNetMPlans": "ResidualEncoderUNet",
            "nnUNetResEncUNetLPlans": "ResidualEncoderUNet"}


@pytest.fixture(scope="module")
def planned(workspace):
    """The preprocessed folder of dataset 990 with the ResEnc M and L plans next to nnUNetPlans."""
    root, env = workspace
    for planner in ("nnUNetPlannerResEncM", "nnUNetPlannerResEncL"):
        run(["nnUNetv2_plan_experiment", "-d", DATASET_ID, "-pl", planner], env)
    return root, env, root / "preprocessed" / DATASET


def _managers(folder, plans_name):
    plans = PlansManager(str(folder / f"{plans_name}.json"))
    return plans, plans.get_configuration("3d_fullres"), load_json(folder / "dataset.json")


def _trainer(cls, root, monkeypatch, folder, plans_name, fold=0):
    """A real trainer instance on dataset 990's plans (nnU-Net 2.8.1's paths read the environment on each use)."""
    monkeypatch.setenv("nnUNet_preprocessed", str(root / "preprocessed"))
    monkeypatch.setenv("nnUNet_results", str(root / "results_inprocess"))
    plans = {**load_json(folder / f"{plans_name}.json"), "continue_training": False}  # nnU-Net 2.8.1's run_training
    return cls(plans, "3d_fullres", fold, load_json(folder / "dataset.json"), torch.device("cpu"))


def _shapes(network):
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}


@pytest.mark.parametrize("plans_name", PLANS)
def test_networks_are_nnunets_own(planned, plans_name):
    _, _, folder = planned
    plans, configuration, _ = _managers(folder, plans_name)
    theirs = nnUNetTrainer.build_network_architecture(plans, configuration, 1, 3, True)
    finetuning = nnUNetTrainerMAEFinetune_CNN.build_network_architecture(plans, configuration, 1, 3, True)
    pretraining = nnUNetTrainerMAEPretrain_CNN.build_network_architecture(plans, configuration, 1, 3, True)
    assert type(theirs).__name__ == NETWORKS[plans_name]
    assert type(finetuning) is type(pretraining) is type(theirs)
    assert _shapes(finetuning) == _shapes(theirs)
    own, nnunet = _shapes(pretraining), _shapes(theirs)
    assert own.keys() == nnunet.keys()  # no deep supervision outputs are missing: seg_layers exist for every stage
    differing = {k for k in own if own[k] != nnunet[k]}
    assert differing and all(".seg_layers." in k for k in differing)  # one output per input channel instead of 3
    assert pretraining.decoder.deep_supervision is False


def test_block_mask_is_the_bottleneck_and_masks_three_quarters(planned, monkeypatch):
    root, _, folder = planned
    plans, configuration, _ = _managers(folder, "nnUNetResEncUNetMPlans")
    block = CNN.token_size(nnUNetTrainerMAEPretrain_CNN, configuration)
    assert block == bottleneck_stride(configuration.network_arch_init_kwargs)
    trainer = _trainer(nnUNetTrainerMAEPretrain_CNN, root, monkeypatch, folder, "nnUNetResEncUNetMPlans")
    trainer.initialize()
    images = torch.randn(2, 1, *configuration.patch_size)
    pred, target, mask = trainer.mask_and_reconstruct(images, torch.Generator().manual_seed(0))
    assert pred.shape == target.shape and mask.shape == pred.shape[:2]
    assert (mask.sum(1) == round(0.75 * mask.shape[1])).all()  # 75% of the blocks of every image
    assert pred.shape[2] == torch.tensor(block).prod()


def test_masked_blocks_reach_the_network_as_zeros_and_only_they_count_in_the_loss():
    class Spy(torch.nn.Module):
        def forward(self, x):
            self.seen = x
            return x * 2.0

    images = torch.randn(1, 1, 8, 8, 8) + 5.0  # no zero voxel by chance
    mask = torch.tensor([[1, 0, 0, 1, 0, 1, 0, 1]], dtype=torch.float32)  # blocks of 4^3
    spy = Spy()
    pred = CNN.mae_forward(spy, images, None, None, mask, (4, 4, 4))
    from nnunet_mae.architectures.tokens import patchify
    seen = patchify(spy.seen, (4, 4, 4))
    assert (seen[mask.bool()] == 0).all() and (seen[~mask.bool()] != 0).all()
    target = patchify(images, (4, 4, 4))
    loss = masked_reconstruction_loss(pred, target, mask, False)
    assert torch.isclose(loss, ((pred - target) ** 2)[mask.bool()].mean())
    changed = pred.clone()
    changed[~mask.bool()] += 100.0  # visible blocks do not count
    assert torch.isclose(masked_reconstruction_loss(changed, target, mask, False), loss)


def test_recipe_is_nnssls():
    assert nnUNetTrainerMAEPretrain_CNN.backbone == "cnn"
    pre, fine = CNN.training_recipe("pretraining"), CNN.training_recipe("finetuning")
    assert (pre["optimizer_type"], pre["momentum"], pre["initial_lr"], pre["weight_decay"]) == ("sgd", 0.99, 1e-2, 3e-5)
    assert fine["initial_lr"] == 1e-3 and fine["warmup_fraction"] > 0 and fine["enable_deep_supervision"]


@pytest.mark.parametrize("plans_name", PLANS)
def test_checkpoint_loads_into_nnunets_own_trainer_with_pretrained_weights(planned, plans_name, monkeypatch,
                                                                          tmp_path):
    """nnU-Net's own path for -pretrained_weights: maybe_load_checkpoint -> load_pretrained_weights (strict: every
    key but .seg_layers. present with the same shape)."""
    root, _, folder = planned
    pretrainer = _trainer(nnUNetTrainerMAEPretrain_CNN, root, monkeypatch, folder, plans_name, fold="all")
    pretrainer.initialize()
    checkpoint = tmp_path / "checkpoint_final.pth"
    pretrainer.save_checkpoint(str(checkpoint))
    stock = _trainer(nnUNetTrainer, root, monkeypatch, folder, plans_name)
    maybe_load_checkpoint(stock, False, False, str(checkpoint))
    loaded, pretrained = stock.network.state_dict(), safe_torch_load(checkpoint)["network_weights"]
    for key, value in loaded.items():
        if ".seg_layers." not in key:
            assert torch.equal(value, pretrained[key]), key


def test_finetuner_finds_the_encoder_and_loads_every_encoder_tensor(planned, monkeypatch):
    root, _, folder = planned
    plans_name = "nnUNetResEncUNetMPlans"
    pretrainer = _trainer(nnUNetTrainerMAEPretrain_CNN, root, monkeypatch, folder, plans_name, fold="all")
    pretrainer.initialize()
    pretrainer.save_checkpoint(f"{pretrainer.output_folder}/checkpoint_final.pth")
    finetuner = _trainer(nnUNetTrainerMAEFinetune_CNN, root, monkeypatch, folder, plans_name)
    finetuner.initialize()
    finetuner.start_from_pretrained_encoder()  # finds fold_all of the pre-training trainer, loads, reports
    encoder = {k: v for k, v in finetuner.network.state_dict().items() if k.startswith("encoder.")}
    source = pretrainer.network.state_dict()
    assert encoder and all(torch.equal(v, source[k]) for k, v in encoder.items())
    assert not any(torch.equal(v, source[k]) for k, v in finetuner.network.state_dict().items()
                   if ".seg_layers." in k and v.shape == source[k].shape)
    assert f"{pretrainer.output_folder}/checkpoint_final.pth" in open(finetuner.log_file).read()


def test_vit_checkpoint_and_other_plans_are_refused_naming_the_fix(planned, monkeypatch, tmp_path):
    root, _, folder = planned
    vit = _trainer(nnUNetTrainerMAEPretrain, root, monkeypatch, folder, "nnUNetPlans", fold="all")
    vit.initialize()
    vit_checkpoint = tmp_path / "vit.pth"
    vit.save_checkpoint(str(vit_checkpoint))
    plain = _trainer(nnUNetTrainerMAEPretrain_CNN, root, monkeypatch, folder, "nnUNetPlans", fold="all")
    plain.initialize()
    plain_checkpoint = tmp_path / "plain.pth"
    plain.save_checkpoint(str(plain_checkpoint))

    resenc = _trainer(nnUNetTrainerMAEFinetune_CNN, root, monkeypatch, folder, "nnUNetResEncUNetMPlans")
    resenc.initialize()
    monkeypatch.setenv(PRETRAINED_ENV, str(plain_checkpoint))
    with pytest.raises(TransferError, match="pre-train with these plans: .*-tr nnUNetTrainerMAEPretrain_CNN "
                                            "-p nnUNetResEncUNetMPlans"):
        resenc.load_pretrained_encoder()
    monkeypatch.setenv(PRETRAINED_ENV, str(vit_checkpoint))
    with pytest.raises(TransferError, match="holds a vit encoder.*builds a cnn network.*: nnUNetTrainerMAEFinetune[.]"):
        resenc.load_pretrained_encoder()
    vit_finetuner = _trainer(nnUNetTrainerMAEFinetune, root, monkeypatch, folder, "nnUNetPlans")
    vit_finetuner.initialize()
    monkeypatch.setenv(PRETRAINED_ENV, str(plain_checkpoint))
    with pytest.raises(TransferError, match="holds a cnn encoder.*: nnUNetTrainerMAEFinetune_CNN[.]"):
        vit_finetuner.load_pretrained_encoder()
